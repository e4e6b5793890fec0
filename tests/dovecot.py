"""A throwaway Dovecot IMAP server on loopback, for the IMAP tests and the IMAP benchmark.

Importable outside pytest (``bench/`` uses it)::

    with DovecotServer.start(users=2) as server:
        server.seed("user1", "INBOX", messages)
        ...

Each instance lives in its own temp dir (config, passwd-file, mail store, sockets, log,
a test CA and a server certificate signed by it) and listens on two free loopback ports:
plaintext IMAP and implicit-TLS IMAPS. The master runs in the foreground (``-F``) as our
child, so :meth:`DovecotServer.stop` (also registered with :mod:`atexit`) ends exactly that
process by its pid and never leaves a server running.

Written for Dovecot 2.3 (Debian 12); 2.4 renamed most settings, so another major version
is refused with a clear error rather than started with a config it would misread.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

PASSWORD = "s3cret-Test-pw"  # every test user's password
SPECIAL_FOLDERS = {"Sent": "\\Sent", "Archive": "\\Archive", "Trash": "\\Trash", "Junk": "\\Junk"}
SPECIAL_FOLDERS |= {"Drafts": "\\Drafts"}
APPEND_CHUNK_BYTES = 4_000_000  # one MULTIAPPEND command carries at most this much
APPEND_CHUNK_COUNT = 500
POOL = 500  # users written to the passwd-file at start: user1 .. user500


class DovecotUnavailable(RuntimeError):
    """Dovecot is missing and could not be installed, or would not start."""


def ensure_dovecot() -> str:
    """Path of the ``dovecot`` binary, installing ``dovecot-imapd`` with apt-get when missing."""
    found = shutil.which("dovecot") or (os.path.exists("/usr/sbin/dovecot") and "/usr/sbin/dovecot")
    if not found:
        if os.geteuid() != 0:
            raise DovecotUnavailable(
                "dovecot is not installed and we are not root: run `apt-get install -y dovecot-imapd`"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "dovecot-imapd"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DovecotUnavailable(
                    f"installing Dovecot failed: `{' '.join(cmd)}` exited {done.returncode}: "
                    f"{(done.stderr or done.stdout).strip()[-600:]}"
                )
        found = shutil.which("dovecot") or "/usr/sbin/dovecot"
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout
    if not version.startswith("2.3."):
        raise DovecotUnavailable(f"this harness writes a Dovecot 2.3 config; found Dovecot {version.strip()}")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DovecotUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-600:]}")


def make_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key): a CA and a server cert for 127.0.0.1 and localhost."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-subj",
        "/CN=syncd test CA",
    ]
    _run(
        ["openssl", "req", "-x509", *ec, *ca_ext, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3"],
        directory,
    )
    server = ["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]
    _run(["openssl", "req", *ec, *server], directory)
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "3", "-extfile", "server.ext"]
    _run(["openssl", "x509", "-req", "-in", "server.csr", *sign, "-out", "server.crt"], directory)
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <{root}/tls/server.crt
ssl_key = <{root}/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
# mdbox: Dovecot's indexed storage; SELECT does not scan a directory of one file per message,
# so the server's own cost does not grow with the mailbox (what the no-op benchmark measures).
mail_location = mdbox:~/mdbox
mail_fsync = never
mail_max_userip_connections = 200
mailbox_idle_check_interval = 1 secs
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
# Tests log in with wrong passwords on purpose: no growing per-IP penalty for everyone after.
service anvil {{
  chroot = {anvil_chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot = {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"""


@dataclass
class DovecotServer:
    """A running Dovecot; see the module docstring."""

    root: Path
    imap_port: int
    imaps_port: int
    ca_file: Path
    process: subprocess.Popen[bytes]
    binary: str
    users: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    _uid_gid: tuple[int, int] = (0, 0)

    @classmethod
    def start(cls, users: int = 0, parent: Path | None = None) -> DovecotServer:
        """Start an instance in a new temp dir under ``parent`` with ``users`` users taken from the pool."""
        binary = ensure_dovecot()
        root = Path(tempfile.mkdtemp(prefix="syncd-dovecot-", dir=parent))
        try:
            return cls._start_in(root, binary, users)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    @classmethod
    def _start_in(cls, root: Path, binary: str, users: int) -> DovecotServer:
        # Mail processes run as an unprivileged user (Dovecot refuses root for mail), which
        # must be able to walk down to the mail store.
        root.chmod(0o755)
        (root / "tls").mkdir()
        (root / "mail").mkdir()
        ca_file, _, _ = make_test_ca(root / "tls")
        if os.geteuid() == 0:
            uid, gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
            internal, login, chroots = "dovecot", "dovenull", ("empty", "login")
            os.chown(root / "mail", uid, gid)
        else:  # rootless: every process runs as us, and nothing can chroot
            uid, gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(uid).pw_name
            chroots = ("", "")
        group = "dovecot" if internal == "dovecot" else _group_name(gid)
        imap_port, imaps_port = free_port(), free_port()
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = create\n  }}\n"
            for name, flag in SPECIAL_FOLDERS.items()
        )
        (root / "dovecot.conf").write_text(
            CONF.format(
                root=root,
                internal_user=internal,
                internal_group=group,
                login_user=login,
                imap_port=imap_port,
                imaps_port=imaps_port,
                mailboxes=mailboxes,
                anvil_chroot=chroots[0],
                login_chroot=chroots[1],
            )
        )
        uid_gid = (uid, gid)
        (root / "users").write_text(
            "".join(
                f"user{n}:{PASSWORD}:{uid}:{gid}::{root / 'mail' / f'user{n}'}::\n"
                for n in range(1, POOL + 1)
            )
        )
        log = open(root / "master.out", "wb")  # noqa: SIM115 - the child writes to it until stop()
        process = subprocess.Popen([binary, "-F", "-c", str(root / "dovecot.conf")], stdout=log, stderr=log)
        log.close()
        server = cls(root, imap_port, imaps_port, ca_file, process, binary, _uid_gid=uid_gid)
        atexit.register(server.stop)
        try:
            server._wait_ready()
            for _ in range(users):
                server.add_user()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DovecotUnavailable(f"dovecot exited at start: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise DovecotUnavailable(f"dovecot did not answer within {timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        text = ""
        for name in ("master.out", "dovecot.log"):
            with contextlib.suppress(OSError):
                text += (self.root / name).read_text(errors="replace")
        return text[-chars:]

    def _write_users(self, names: Iterable[str], password: str) -> None:
        uid, gid = self._uid_gid
        with open(self.root / "users", "a") as fh:
            for name in names:
                fh.write(f"{name}:{password}:{uid}:{gid}::{self.root / 'mail' / name}::\n")

    def add_user(self, name: str | None = None, password: str = PASSWORD) -> str:
        """A user with an empty mailbox (its mail store is created at the first login).

        Unnamed users come from a pool written before the server started: Dovecot notices
        a changed passwd-file only by its mtime, at one-second resolution, so a user
        appended right after another may stay unknown for a while. A named user is
        appended and waited for.
        """
        if name is None:
            name = f"user{len(self.users) + 1}"
            if len(self.users) < POOL:
                self.users.append(name)
                return name
        self._write_users([name], password)
        self.users.append(name)
        deadline = time.monotonic() + 5
        while True:
            try:
                self.client(name, password).logout()
                return name
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                os.utime(self.root / "users")

    def client(self, user: str, password: str = PASSWORD, tls: bool = False) -> IMAPClient:
        """A logged-in imapclient connection (to seed and change mailboxes behind the source's back)."""
        if tls:
            import ssl

            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            conn = IMAPClient(self.host, self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        else:
            conn = IMAPClient(self.host, self.imap_port, ssl=False, timeout=30)
        conn.login(user, password)
        return conn

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[IMAPClient]:
        conn = self.client(user)
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def seed(self, user: str, folder: str, messages: Iterable[bytes | dict[str, Any]]) -> int:
        """MULTIAPPEND (RFC 3502) ``messages`` in chunks; creates the folder if needed; how many."""
        count = 0
        with self.session(user) as conn:
            if not conn.folder_exists(folder):
                conn.create_folder(folder)
            chunk: list[bytes | dict[str, Any]] = []
            size = 0
            for msg in messages:
                chunk.append(msg)
                size += len(msg["msg"] if isinstance(msg, dict) else msg)
                if len(chunk) >= APPEND_CHUNK_COUNT or size >= APPEND_CHUNK_BYTES:
                    conn.multiappend(folder, chunk)
                    count, chunk, size = count + len(chunk), [], 0
            if chunk:
                conn.multiappend(folder, chunk)
                count += len(chunk)
        return count

    def append(self, user: str, folder: str, message: bytes, when: datetime | None = None) -> None:
        with self.session(user) as conn:
            conn.append(folder, message, msg_time=when)

    def create_folder(self, user: str, folder: str) -> None:
        with self.session(user) as conn:
            conn.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.session(user) as conn:
            conn.delete_folder(folder)

    def uids(self, user: str, folder: str) -> list[int]:
        with self.session(user) as conn:
            conn.select_folder(folder, readonly=True)
            return sorted(conn.search("ALL"))

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.session(user) as conn:
            return int(conn.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def expunge(self, user: str, folder: str, uids: Sequence[int]) -> None:
        """Flag ``uids`` \\Deleted and UID EXPUNGE them (RFC 4315), leaving the others alone."""
        with self.session(user) as conn:
            conn.select_folder(folder)
            conn.delete_messages(list(uids), silent=True)
            conn.uid_expunge(list(uids))

    def move(self, user: str, folder: str, uids: Sequence[int], target: str) -> None:
        """UID MOVE (RFC 6851): new UIDs in ``target``, an expunge in ``folder``."""
        with self.session(user) as conn:
            conn.select_folder(folder)
            conn.move(list(uids), target)

    def set_flags(self, user: str, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        with self.session(user) as conn:
            conn.select_folder(folder)
            conn.add_flags(list(uids), list(flags), silent=True)

    def kick(self, user: str) -> None:
        """Disconnect every IMAP session of ``user`` (``doveadm kick``)."""
        doveadm = shutil.which("doveadm") or str(Path(self.binary).with_name("doveadm"))
        done = subprocess.run(
            [doveadm, "-c", str(self.root / "dovecot.conf"), "kick", user],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode not in (0, 68):  # 68: EX_NOUSER, nobody was connected
            raise RuntimeError(f"doveadm kick {user} failed: {done.stderr.strip()}")

    def stop(self) -> None:
        """Terminate the master by its pid (it ends its children), then remove the temp dir."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        atexit.unregister(self.stop)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name
