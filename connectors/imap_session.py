"""The one module that speaks IMAP: connect, TLS, login (password or XOAUTH2), commands, errors.

Everything above it sees small named values (:class:`Selected`, :class:`~connectors.imap_uids.UidSet`,
dicts of FETCH items) and the three errors of :mod:`connectors.base`:

- :class:`~connectors.base.AuthError`: the server refused the credentials (RFC 5530
  ``AUTHENTICATIONFAILED`` and the like). Retrying cannot help; a person must act.
- :class:`~connectors.base.TransientError`: refused, reset or dropped connections,
  timeouts, ``* BYE`` and RFC 5530 ``UNAVAILABLE``/``INUSE``/``LIMIT`` answers: retry later.
- :class:`~connectors.base.SourceError`: anything else the server refused (an untrusted
  certificate, a folder that cannot be selected), with the server's words.

Secrets: the password or token is read from its environment variable (or token provider)
at login time only and is never kept on an object, put in a message or logged (imapclient
redacts LOGIN and AUTHENTICATE from its protocol log).
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import os
import re
import select
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.response_parser import parse_fetch_response

from connectors.base import AuthError, SourceError, TransientError
from connectors.imap_fetch import parse_fetch
from connectors.imap_uids import UidSet

log = logging.getLogger(__name__)

TLS_MODES = ("tls", "starttls", "none")
# RFC 5530 response codes that say "not now" rather than "no". A SERVERBUG answer to a
# FETCH stays a SourceError: it is how Dovecot reports one broken message, which the sync
# then isolates and quarantines; at login it says the server, not the password, is at fault.
TRANSIENT_CODES = ("UNAVAILABLE", "INUSE", "LIMIT")
LOGIN_TRANSIENT_CODES = (*TRANSIENT_CODES, "SERVERBUG")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ESEARCH_ALL = re.compile(rb"\bALL\s+([0-9:,]+)", re.IGNORECASE)
_VANISHED = re.compile(rb"^\s*(?:\(EARLIER\)\s*)?([0-9:,]+)", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (127/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@dataclass(frozen=True)
class ImapSettings:
    """Where and how to connect. Holds the *names* of secrets, never their values."""

    host: str
    port: int
    tls: str
    username: str
    password_env: str | None = None
    oauth2_token_env: str | None = None
    token_provider: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    ca_file: Path | None = None
    timeout: float = 60.0

    @property
    def where(self) -> str:
        return f"imap {self.username}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Selected:
    """A folder's state as SELECT/EXAMINE reported it (RFC 9051 §6.3.2, RFC 7162 §3.1.2.1)."""

    folder: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None  # None: no CONDSTORE, or the mailbox said NOMODSEQ


def imap_date(day: date) -> str:
    """RFC 9051 ``date-text`` (``1-Feb-2024``), without the locale's month names."""
    return f"{day.day}-{MONTHS[day.month - 1]}-{day.year}"


def _text(value: Any) -> str:
    return " ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value)


def _server_text(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    # imaplib/imapclient prefix the server's words with the command and a bytes repr.
    text = re.sub(r"^(?:\w+ failed: |command: \w+ => )", "", text)
    text = re.sub(r"^b'(.*)'$", r"\1", text)
    return text.strip() or type(exc).__name__


@contextlib.contextmanager
def mapped_errors(settings: ImapSettings, doing: str) -> Iterator[None]:
    """Turn socket, TLS and IMAP failures into the source errors of :mod:`connectors.base`."""
    where = settings.where
    try:
        yield
    except LoginError as exc:
        text = _server_text(exc)
        if any(f"[{code}]" in text.upper() for code in LOGIN_TRANSIENT_CODES):
            raise TransientError(f"{where}: login not possible now: {text}") from None
        raise AuthError(f"{where}: the server refused the login: {text}") from None
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set ca_file to the CA that signed it, or fix the server's certificate"
        ) from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as exc:
        raise TransientError(f"{where}: the TLS connection broke while {doing}: {exc}") from None
    except ssl.SSLError as exc:  # no common protocol version or cipher: a setup problem
        raise SourceError(f"{where}: TLS failed while {doing}: {exc.reason or exc}") from None
    except TimeoutError:
        raise TransientError(f"{where}: timed out while {doing}") from None
    except imaplib.IMAP4.abort as exc:  # BYE, EOF, socket errors: before IMAP4.error (its base)
        raise TransientError(f"{where}: connection lost while {doing}: {_server_text(exc)}") from None
    except imaplib.IMAP4.error as exc:
        text = _server_text(exc)
        if any(f"[{code}]" in text.upper() for code in TRANSIENT_CODES):
            raise TransientError(f"{where}: server busy while {doing}: {text}") from None
        raise SourceError(f"{where}: the server refused {doing}: {text}") from None
    except OSError as exc:  # refused, reset, unreachable, name not resolved
        raise TransientError(f"{where}: cannot reach the server while {doing}: {exc}") from None


def ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    """Certificate and host name checks on; ``ca_file`` replaces the system CAs (a private CA)."""
    cafile = str(settings.ca_file) if settings.ca_file else None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _XOAuth2:
    """SASL XOAUTH2 (Google's and Microsoft's IMAP OAuth): the token, then an empty reply.

    On failure the server sends a base64 JSON challenge and waits for an empty response
    before its tagged NO; answering with the token again would only earn a BAD.
    """

    def __init__(self, user: str, token: str) -> None:
        self._first = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        self._sent = False

    def __call__(self, challenge: bytes) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        return self._first

    def __repr__(self) -> str:
        return "_XOAuth2(<redacted>)"


def _secret(settings: ImapSettings) -> tuple[str, str]:
    """("password" | "xoauth2", value), read now from the environment or the token provider."""
    if settings.token_provider is not None:
        try:
            return "xoauth2", settings.token_provider()
        except SourceError:  # the provider's own AuthError or TransientError says it best
            raise
        except Exception as exc:
            raise AuthError(f"{settings.where}: the token provider failed: {type(exc).__name__}") from None
    name, kind = (
        (settings.oauth2_token_env, "xoauth2")
        if settings.oauth2_token_env
        else (settings.password_env, "password")
    )
    value = os.environ.get(name or "")
    if not value:
        raise AuthError(f"{settings.where}: the environment variable {name} holding the {kind} is not set")
    return kind, value


class ImapSession:
    """One logged-in connection. Create with :meth:`connect`; every command maps its errors."""

    def __init__(
        self, settings: ImapSettings, conn: IMAPClient, ignore: frozenset[str] = frozenset()
    ) -> None:
        self.settings = settings
        self.conn = conn
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            # imapclient turns imaplib's protocol trace fully on, and imaplib formats it
            # before the logger can drop it: a repr of every FETCH response, message
            # bodies included, which costs a third of the fetch time and twice its memory.
            conn._imap.debug = 0
        caps = {c.decode().upper() for c in conn.capabilities()}
        self.capabilities = frozenset(caps - ignore)
        self.qresync = "QRESYNC" in self.capabilities and "ENABLE" in self.capabilities
        self.condstore = self.qresync or "CONDSTORE" in self.capabilities
        self.gmail = "X-GM-EXT-1" in self.capabilities
        self.esearch = "ESEARCH" in self.capabilities
        if self.qresync or self.condstore:
            # RFC 7162 §3.2.3: QRESYNC (which implies CONDSTORE) must be ENABLEd before
            # SELECT reports HIGHESTMODSEQ and before FETCH may ask for VANISHED.
            with mapped_errors(settings, "enabling CONDSTORE/QRESYNC"):
                conn.enable("QRESYNC" if self.qresync else "CONDSTORE")

    @classmethod
    def connect(cls, settings: ImapSettings, ignore: frozenset[str] = frozenset()) -> ImapSession:
        kind, secret = _secret(settings)
        conn: IMAPClient | None = None
        with mapped_errors(settings, "connecting"):
            ctx = ssl_context(settings) if settings.tls != "none" else None
            conn = IMAPClient(
                settings.host,
                settings.port,
                ssl=settings.tls == "tls",
                ssl_context=ctx,
                timeout=settings.timeout,
            )
        try:
            with mapped_errors(settings, "logging in"):
                if settings.tls == "starttls":
                    if not conn.has_capability("STARTTLS"):
                        raise SourceError(
                            f"{settings.where}: tls = starttls but the server offers no STARTTLS"
                        )
                    conn.starttls(ctx)
                if kind == "xoauth2":
                    conn.sasl_login("XOAUTH2", _XOAuth2(settings.username, secret))
                else:
                    conn.login(settings.username, secret)
            del secret
            # Capabilities change at login (RFC 9051 §6.2.3): forget any list cached before.
            conn._cached_capabilities = None
            return cls(settings, conn, ignore)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.shutdown()
            raise

    def _run(self, doing: str, call: Callable[[], Any]) -> Any:
        with mapped_errors(self.settings, doing):
            return call()

    def list_folders(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(attributes, hierarchy delimiter, name) of every folder, special-use attributes included.

        ``LIST "" "*" RETURN (SPECIAL-USE)`` (RFC 6154 §5.1, needs LIST-EXTENDED, RFC 5258)
        asks for them explicitly: a plain LIST *may* omit them.
        """
        conn = self.conn

        def run() -> list[Any]:
            if {"SPECIAL-USE", "LIST-EXTENDED"} <= self.capabilities:
                raw = conn._raw_command_untagged(
                    b"LIST", [b'""', b'"*"', b"RETURN", b"(SPECIAL-USE)"], uid=False
                )
                return conn._proc_folder_list(raw)
            return conn.list_folders()

        listing = self._run("listing folders", run)
        out = []
        for flags, delim, name in listing:
            attrs = tuple((f.decode() if isinstance(f, bytes) else str(f)) for f in flags)
            sep = delim.decode() if isinstance(delim, bytes) else str(delim or "")
            out.append((attrs, sep, name if isinstance(name, str) else name.decode()))
        return out

    def select(self, folder: str) -> Selected:
        """EXAMINE (read-only SELECT): we never change \\Seen or \\Recent on the user's mail."""
        resp = self._run(f"selecting {folder!r}", lambda: self.conn.select_folder(folder, readonly=True))
        self.conn._imap.untagged_responses.pop("VANISHED", None)
        modseq = resp.get(b"HIGHESTMODSEQ") if self.condstore and b"NOMODSEQ" not in resp else None
        uidnext = resp.get(b"UIDNEXT")
        if uidnext is None:  # required by RFC 9051 §6.3.2, yet some servers leave it out
            status = self._run("asking UIDNEXT", lambda: self.conn.folder_status(folder, ["UIDNEXT"]))
            uidnext = status.get(b"UIDNEXT", 0)
        return Selected(
            folder=folder,
            uidvalidity=int(resp.get(b"UIDVALIDITY", 0)),
            uidnext=int(uidnext),
            exists=int(resp.get(b"EXISTS", 0)),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    def search(self, lo: int, hi: int, since: date | None = None) -> UidSet:
        """UIDs in ``lo:hi`` (optionally with an internal date since ``since``), as a UidSet.

        Always with an explicit upper bound: in ``N:*`` the ``*`` is the highest UID in use,
        and a range means the same in either order (RFC 3501 §6.4.8 and §9, RFC 9051
        §6.4.9), so ``N:*`` with N above every UID is ``*:N``: the newest message comes
        back again although nothing is new. Results are clipped to ``lo:hi``
        all the same (servers differ). ESEARCH (RFC 4731) returns the result as ranges
        rather than one number per message.
        """
        if lo > hi:
            return UidSet()
        criteria = [b"UID", f"{lo}:{hi}".encode()]
        if since is not None:
            criteria += [b"SINCE", imap_date(since).encode()]

        def run() -> UidSet:
            if self.esearch:
                data = self.conn._raw_command_untagged(
                    b"SEARCH", [b"RETURN", b"(ALL)", *criteria], response_name="ESEARCH"
                )
                found = UidSet()
                for line in data:
                    match = _ESEARCH_ALL.search(line or b"")
                    if match:
                        found = found | UidSet.parse(match.group(1).decode())
                return found
            return UidSet.of(self.conn.search(criteria))

        return self._run("searching UIDs", run) & UidSet([(lo, hi)])

    def fetch(self, uids: UidSet | str, items: Sequence[str], modifiers: Sequence[str] = ()) -> dict:
        """UID FETCH of ``items``; {uid: {item: value}} as imapclient parses it.

        The command runs like imapclient's ``fetch``; the response goes through the fast
        parser of :mod:`connectors.imap_fetch` first, imapclient's parser when it declines.
        """
        imap = self.conn._imap
        args = ["UID", "FETCH", str(uids), "(" + " ".join(items) + ")"]
        if modifiers:
            args.append("(" + " ".join(modifiers) + ")")

        def run() -> dict:
            tag = imap._command(*args)
            typ, data = imap._command_complete("FETCH", tag)
            self.conn._checkok("fetch", typ, data)
            typ, data = imap._untagged_response(typ, data, "FETCH")
            fast = parse_fetch(data)
            return fast if fast is not None else dict(parse_fetch_response(data, True, True))

        return self._run("fetching messages", run)

    def vanished_since(self, modseq: int, hi: int) -> UidSet:
        """UIDs up to ``hi`` expunged since ``modseq`` (RFC 7162 §3.2.6 ``VANISHED`` modifier).

        The changed messages come back as FETCH responses too (their flags changed); we only
        want the ``* VANISHED (EARLIER)`` responses, which imapclient leaves in imaplib's
        untagged responses.
        """
        if hi < 1:
            return UidSet()
        self.conn._imap.untagged_responses.pop("VANISHED", None)
        self.fetch(f"1:{hi}", ["UID"], [f"CHANGEDSINCE {modseq}", "VANISHED"])
        gone = UidSet()
        for line in self.conn._imap.untagged_responses.pop("VANISHED", []):
            match = _VANISHED.match(line if isinstance(line, bytes) else str(line).encode())
            if match:
                gone = gone | UidSet.parse(match.group(1).decode())
        return gone & UidSet([(1, hi)])

    def idle_start(self) -> None:
        """Enter IDLE (RFC 2177) on the selected folder."""
        self._run("starting IDLE", self.conn.idle)

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in IDLE; True when the folder changed.

        A change is ``EXISTS`` (new mail), ``EXPUNGE``/``VANISHED`` (RFC 7162 §3.2.10) or
        ``FETCH`` (flags). imapclient's ``idle_check`` hides an EOF as "no responses", so
        a readable socket that yields nothing is taken for what it is: a closed connection.
        """
        poller = select.poll()
        poller.register(self.conn.socket().fileno(), select.POLLIN)
        if not poller.poll(max(timeout, 0.0) * 1000):
            return False
        responses = self._run("waiting in IDLE", lambda: self.conn.idle_check(timeout=0))
        if not responses:
            raise TransientError(f"{self.settings.where}: the connection closed during IDLE")
        return self._changed(responses)

    def idle_done(self) -> bool:
        """Leave IDLE; True when responses that came in meanwhile say the folder changed."""
        _, responses = self._run("ending IDLE", self.conn.idle_done)
        return self._changed(responses)

    def _changed(self, responses: list[Any]) -> bool:
        changed = False
        for resp in responses:
            if resp and resp[0] == b"BYE":
                raise TransientError(f"{self.settings.where}: the server ended IDLE: {_text(resp[1:])}")
            kind = resp[1] if len(resp) > 1 and isinstance(resp[0], int) else resp[0] if resp else None
            changed = changed or kind in (b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED")
        return changed

    def close(self) -> None:
        """Log out; a connection that is already dead is just dropped."""
        try:
            self.conn.logout()
        except Exception:
            with contextlib.suppress(Exception):
                self.conn.shutdown()

    def drop(self) -> None:
        """Cut the connection without a goodbye (after an error, or to wake a blocked IDLE)."""
        with contextlib.suppress(Exception):
            self.conn.socket().shutdown(socket.SHUT_RDWR)
