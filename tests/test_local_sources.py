"""Conformance suite for the local sources, in the style of vdirsyncer's StorageTests.

Each source gets a small "kit" that builds its on-disk form; :class:`TestConformance`
runs the same cases against every kit through :class:`FakePipeline`, which plays the
store (the ``known`` filter) and commits each batch with its cursor the way the real
pipeline does. Source-specific behaviour and the real corpus follow.
"""

from __future__ import annotations

import email.parser
import logging
import mailbox
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import connectors.local_common as local_common
from connectors.base import Batch, RawItem, Source, SourceError
from connectors.eml import EmlFolderSource
from connectors.ics_folder import IcsFolderSource
from connectors.maildir import MaildirSource, split_name
from connectors.mbox import MboxSource
from tests.corpus import require_corpus

KEY = re.compile(rb"(?:Message-ID: <|UID:)(m\d+@test)")


def rfc822(i: int, pad: int = 0) -> bytes:
    return (
        f"From: a{i}@example.com\nTo: b@example.com\nSubject: message {i}\nMessage-ID: <m{i}@test>\n\n"
        f"Body {i}\n{'x' * pad}\n"
    ).encode()


def ics(i: int, pad: int = 0, summary: str = "Meeting") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:m{i}@test\r\nDTSTART:20260302T150000Z\r\nSUMMARY:{summary} {i}{'x' * pad}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def key(item: RawItem) -> str:
    found = KEY.search(item.data)
    assert found, item
    return found.group(1).decode()


class FakePipeline:
    """The store as the sources see it: stored ids per folder and committed cursors."""

    def __init__(self) -> None:
        self.stored: dict[str, set[str]] = {}
        self.cursors: dict[str, str] = {}
        self.batches: list[Batch] = []

    def known(self, folder: str) -> Callable[[list[str]], set[str]]:
        return lambda ids: {i for i in ids if i in self.stored.get(folder, set())}

    def sync(self, source: Source, crash_after: int | None = None) -> list[RawItem]:
        """Items delivered; with ``crash_after``, stop after that many batches (a kill)."""
        self.batches, delivered = [], []
        for folder in source.folders():
            stream = source.changes(folder, self.cursors.get(folder), self.known(folder))
            for batch in stream:
                self.batches.append(batch)
                delivered += batch.items
                self.stored.setdefault(folder, set()).update(i.provider_id for i in batch.items)
                self.stored[folder].difference_update(batch.deleted)
                if batch.cursor is not None:
                    self.cursors[folder] = batch.cursor
                if crash_after is not None and len(self.batches) >= crash_after:
                    stream.close()  # type: ignore[attr-defined]
                    return delivered
        return delivered


class Kit:
    """Builds one source's on-disk form with messages keyed ``m<i>@test``."""

    cls: Callable[..., Any]
    unit_is_file = True  # one item per file (mbox: one file per folder)

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def target(self) -> Path:
        """The path given to the source."""
        return self.root

    def add(self, i: int, pad: int = 0) -> None:
        raise NotImplementedError

    def path_of(self, i: int) -> Path:
        raise NotImplementedError

    def source(self, **opts: Any) -> Any:
        return self.cls(path=self.target, **opts)


class MaildirKit(Kit):
    cls = MaildirSource

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def path_of(self, i: int) -> Path:
        # Half in new/ (never seen), half in cur/ with flags, as a real MUA leaves them.
        return self.root / ("new" if i % 2 else "cur") / f"1700000000.M{i}P1.host{'' if i % 2 else ':2,S'}"

    def add(self, i: int, pad: int = 0) -> None:
        self.path_of(i).write_bytes(rfc822(i, pad))


class MboxKit(Kit):
    cls = MboxSource
    unit_is_file = False

    @property
    def target(self) -> Path:
        return self.root / "inbox.mbox"

    def add(self, i: int, pad: int = 0) -> None:
        with open(self.target, "ab") as fh:
            fh.write(f"From a{i}@example.com Mon Mar  2 15:30:00 2026\n".encode() + rfc822(i, pad) + b"\n")


class EmlKit(Kit):
    cls = EmlFolderSource

    def path_of(self, i: int) -> Path:
        return self.root / ["", "a", "b/c"][i % 3] / f"m{i}.eml"

    def add(self, i: int, pad: int = 0) -> None:
        self.path_of(i).parent.mkdir(parents=True, exist_ok=True)
        self.path_of(i).write_bytes(rfc822(i, pad))


class IcsKit(Kit):
    cls = IcsFolderSource

    def path_of(self, i: int) -> Path:
        return self.root / ["", "work"][i % 2] / f"m{i}.ics"

    def add(self, i: int, pad: int = 0) -> None:
        self.path_of(i).parent.mkdir(parents=True, exist_ok=True)
        self.path_of(i).write_bytes(ics(i, pad))


def make_unreadable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """chmod 000 cannot stop root (as in CI containers), so the read itself fails."""
    real = local_common._read_bytes

    def read(p: Path) -> bytes:
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real(p)

    monkeypatch.setattr(local_common, "_read_bytes", read)


@pytest.fixture(params=[MaildirKit, MboxKit, EmlKit, IcsKit], ids=["maildir", "mbox", "eml", "ics"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Kit:
    made: Kit = request.param(tmp_path / "box")
    made.root.mkdir(exist_ok=True)
    for i in range(12):
        made.add(i)
    return made


ALL = [f"m{i}@test" for i in range(12)]


class TestConformance:
    def test_first_sync_delivers_each_once(self, kit: Kit) -> None:
        pipe = FakePipeline()
        got = pipe.sync(kit.source(batch_size=5))
        assert sorted(map(key, got)) == sorted(ALL)
        assert len(pipe.batches) == 3 and pipe.batches[-1].progress == (12, 12)
        assert len({i.provider_id for i in got}) == 12

    def test_no_change_sync_reads_nothing(self, kit: Kit) -> None:
        pipe = FakePipeline()
        pipe.sync(kit.source())
        again = kit.source()
        assert pipe.sync(again) == []
        assert (again.stats.files_read, again.stats.bytes_read) == (0, 0)  # type: ignore[attr-defined]

    def test_new_message_delivered_alone(self, kit: Kit) -> None:
        pipe = FakePipeline()
        pipe.sync(kit.source())
        kit.add(12)
        assert [key(i) for i in pipe.sync(kit.source())] == ["m12@test"]

    def test_crash_then_resume_loses_nothing(self, kit: Kit) -> None:
        pipe = FakePipeline()
        first = pipe.sync(kit.source(batch_size=4), crash_after=1)
        assert len(first) == 4
        rest = pipe.sync(kit.source(batch_size=4))
        assert set(map(key, first + rest)) == set(ALL)
        assert pipe.sync(kit.source()) == []

    def test_batches_bounded_by_count(self, kit: Kit) -> None:
        pipe = FakePipeline()
        assert len(pipe.sync(kit.source(batch_size=3))) == 12
        assert [len(b.items) for b in pipe.batches] == [3, 3, 3, 3]

    def test_batches_bounded_by_bytes(self, kit: Kit) -> None:
        kit.add(12, pad=5000)  # larger than batch_bytes on its own: a batch of its own
        pipe = FakePipeline()
        assert len(pipe.sync(kit.source(batch_bytes=600))) == 13
        assert len(pipe.batches) >= 3
        for batch in pipe.batches:
            assert sum(len(i.data) for i in batch.items) <= 600 or len(batch.items) == 1
        assert [len(b.items) for b in pipe.batches if len(b.items[0].data) > 5000] == [1]

    def test_unreadable_file_does_not_stop_folder(self, kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
        if not kit.unit_is_file:
            pytest.skip("an mbox folder is one file: see test_mbox_directory_and_unreadable_file")
        make_unreadable(monkeypatch, kit.path_of(5))
        got = FakePipeline().sync(kit.source(batch_size=4))
        assert sorted(key(i) for i in got if i.data) == sorted(set(ALL) - {"m5@test"})
        assert len([i for i in got if not i.data]) == 1

    def test_corrupt_cursor_is_a_full_listing(self, kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
        pipe = FakePipeline()
        pipe.sync(kit.source())
        pipe.cursors = {folder: "{not json" for folder in pipe.cursors}
        kit.add(12)
        with caplog.at_level(logging.WARNING):
            got = pipe.sync(kit.source())
        assert "corrupt cursor" in caplog.text
        assert "m12@test" in map(key, got)  # other items may be re-delivered (ics): harmless
        assert pipe.sync(kit.source()) == []

    def test_path_with_tilde(self, kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(kit.root.parent))
        source = kit.cls(path=f"~/{kit.target.relative_to(kit.root.parent)}")
        assert source.path == kit.target
        assert len(FakePipeline().sync(source)) == 12


# --- Maildir ---------------------------------------------------------------------------


def test_maildir_flag_rename_is_not_a_new_message(tmp_path: Path) -> None:
    kit = MaildirKit(tmp_path / "box")
    kit.add(1)  # new/1700000000.M1P1.host
    pipe = FakePipeline()
    [item] = pipe.sync(kit.source())
    assert item.provider_id == "1700000000.M1P1.host" and item.flags == ()
    os.rename(kit.path_of(1), tmp_path / "box/cur/1700000000.M1P1.host:2,FRS")
    again = kit.source()
    assert pipe.sync(again) == [] and again.stats.files_read == 0


def test_maildir_flags_and_unique_name() -> None:
    flags = ("\\Seen", "\\Answered", "\\Flagged")
    assert split_name("1.M2P3.host,S=42:2,FRSa") == ("1.M2P3.host,S=42", flags)  # "a": a Dovecot keyword
    assert split_name("1.M2P3.host:2,DT") == ("1.M2P3.host", ("\\Deleted", "\\Draft"))
    assert split_name("1.M2P3.host") == ("1.M2P3.host", ())


def test_maildir_subfolders_discovered_trash_excluded(tmp_path: Path) -> None:
    root = tmp_path / "box"
    for name in ["", ".Sent", ".Archive.2024", ".Trash", ".Junk", ".Spam", ".Drafts", ".INBOX.Trash"]:
        MaildirKit(root / name)
    (root / ".notafolder").mkdir()
    (root / "tmp" / "delivering").write_bytes(rfc822(99))  # tmp/ is never read
    MaildirKit(root / ".Sent").add(2)
    assert MaildirSource(path=root).folders() == ["INBOX", "Archive.2024", "Sent"]
    assert MaildirSource(path=root, folders=["Trash", "Sent"]).folders() == ["Sent", "Trash"]
    pipe = FakePipeline()
    assert [(key(i), i.flags) for i in pipe.sync(MaildirSource(path=root))] == [("m2@test", ("\\Seen",))]


def test_maildir_unchanged_dirs_are_not_even_listed(tmp_path: Path) -> None:
    kit = MaildirKit(tmp_path / "box")
    for i in range(3):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source())
    # Fresh mtimes are not trusted (a delivery in the same clock tick would not change
    # them): age the dirs, sync once to record them, then nothing is listed.
    old = time.time() - 3600
    for sub in ("cur", "new"):
        os.utime(kit.root / sub, (old, old))
    pipe.sync(kit.source())
    quiet = kit.source()
    assert pipe.sync(quiet) == [] and quiet.stats.files_listed == 0
    kit.add(3)  # a delivery touches new/
    assert [key(i) for i in pipe.sync(kit.source())] == ["m3@test"]


def test_maildir_only_the_last_batch_claims_the_listing(tmp_path: Path) -> None:
    kit = MaildirKit(tmp_path / "box")
    for i in range(7):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source(batch_size=3))
    assert [b.cursor is None for b in pipe.batches] == [True, True, False]


def test_maildir_file_moved_while_syncing_is_found(tmp_path: Path) -> None:
    kit = MaildirKit(tmp_path / "box")
    kit.add(1)
    kit.add(3)
    source = kit.source()

    def known(ids: list[str]) -> set[str]:
        # A concurrent MUA: between our listing and our reading, it reads m1 and deletes m3.
        os.rename(kit.path_of(1), kit.root / "cur" / "1700000000.M1P1.host:2,S")
        kit.path_of(3).unlink()
        return set()

    [batch] = list(source.changes("INBOX", None, known))
    assert [(key(i), i.flags) for i in batch.items] == [("m1@test", ("\\Seen",))]


# --- mbox ------------------------------------------------------------------------------


def test_mbox_append_reads_only_the_new_bytes(tmp_path: Path) -> None:
    kit = MboxKit(tmp_path)
    for i in range(5):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source())
    before = kit.target.stat().st_size
    kit.add(5)
    source = kit.source()
    assert [key(i) for i in pipe.sync(source)] == ["m5@test"]
    assert source.stats.bytes_read == kit.target.stat().st_size - before


def test_mbox_crash_resumes_mid_file(tmp_path: Path) -> None:
    kit = MboxKit(tmp_path)
    for i in range(10):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source(batch_size=4), crash_after=1)
    source = kit.source(batch_size=4)
    assert [key(i) for i in pipe.sync(source)] == ALL[4:10]
    assert source.stats.bytes_read < kit.target.stat().st_size * 0.7


def _rewrite(path: Path, keep: list[int], extra: tuple[int, ...] = ()) -> None:
    """The mbox written anew, as an MUA does on expunge."""
    path.unlink()
    kit = MboxKit(path.parent)
    for i in [*keep, *extra]:
        kit.add(i)


def test_mbox_rewrite_triggers_rescan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kit = MboxKit(tmp_path)
    for i in range(4):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source())
    _rewrite(kit.target, keep=[1, 2, 3])  # the first message expunged: the rest moved
    with caplog.at_level(logging.INFO):
        got = pipe.sync(kit.source())
    assert "rescanning" in caplog.text
    # Moved messages get new ids (new offsets): re-delivered, folded by Message-ID.
    assert [key(i) for i in got] == ["m1@test", "m2@test", "m3@test"]


def test_mbox_new_message_on_a_stored_offset_is_delivered(tmp_path: Path) -> None:
    kit = MboxKit(tmp_path)
    for i in range(3):
        kit.add(i)
    pipe = FakePipeline()
    stored = pipe.sync(kit.source())
    _rewrite(kit.target, keep=[0, 1], extra=(7,))  # last one expunged, then m7 arrives in its place
    got = pipe.sync(kit.source())
    assert [key(i) for i in got] == ["m7@test"]
    assert got[0].provider_id.split(":")[0] == stored[2].provider_id.split(":")[0]


def test_mbox_separators_crlf_escapes_and_unterminated_tail(tmp_path: Path) -> None:
    path = tmp_path / "odd.mbox"
    path.write_bytes(
        b"From a@b Mon Mar  2 15:30:00 2026\r\nMessage-ID: <m1@test>\r\n\r\nHi\r\nFrom here on\r\n"
        b">From the escaped line\r\n\r\n"
        b"From a@b Mon Mar  2 15:31:00 2026\r\nMessage-ID: <m2@test>\r\n\r\nno final newline"
    )
    first, second = FakePipeline().sync(MboxSource(path=path))
    # "From " splits only after a blank line (mailbox.mbox would split at "From here on").
    assert first.data == b"Message-ID: <m1@test>\r\n\r\nHi\r\nFrom here on\r\n>From the escaped line\r\n"
    assert second.data.endswith(b"no final newline")


def test_mbox_directory_and_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["a.mbox", "b.MBX", "Inbox", "bad.mbox"]:
        (tmp_path / name).write_bytes(b"From x Mon Mar  2 15:30:00 2026\n" + rfc822(len(name)))
    (tmp_path / "Inbox.msf").write_bytes(b"// index")
    (tmp_path / "notes").write_bytes(b"not a mailbox")
    source = MboxSource(path=tmp_path)
    assert source.folders() == ["Inbox", "a", "b", "bad"]
    real_open = open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("bad.mbox"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("connectors.mbox.open", fake_open, raising=False)
    with pytest.raises(SourceError, match=r"bad\.mbox"):
        list(source.changes("bad", None, lambda ids: set()))
    [batch] = source.changes("a", None, lambda ids: set())
    assert len(batch.items) == 1


def _yaml_message_ids(path: Path) -> list[str]:
    found = re.findall(r"^\s+message-id: (.*)$", path.read_text(), flags=re.MULTILINE)
    return ["" if v == "''" else v for v in found]  # YAML's empty string: no Message-ID


def test_apache_archives_split_like_mailbox_and_ponymail() -> None:
    base = require_corpus() / "emails/apache_mailing_lists"
    yamls = {
        re.search(r"^  corpus/(\S+):$", p.read_text(), flags=re.MULTILINE).group(1): p  # type: ignore[union-attr]
        for p in (base / "yaml").glob("*.yaml")
    }
    total = 0
    for path in sorted((base / "corpus").glob("*.mbox")):
        got = FakePipeline().sync(MboxSource(path=path, batch_size=50))
        parser = email.parser.BytesHeaderParser()
        ids = [str(parser.parsebytes(i.data)["Message-ID"] or "").strip() for i in got]
        assert len(got) == len(mailbox.mbox(path)), path.name
        assert ids == _yaml_message_ids(yamls[path.name]), path.name
        total += len(got)
    assert total == 493  # as SOURCES.md counts them


# --- .eml folders ----------------------------------------------------------------------


def test_eml_patterns_hidden_files_and_ids(tmp_path: Path) -> None:
    for rel in ["a.eml", "sub/B.EML", "sub/deep/c.msg", "sub/deep/d.txt", ".hidden.eml", ".git/e.eml"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rfc822(len(rel)))
    ids = lambda src: sorted(i.provider_id for i in FakePipeline().sync(src))  # noqa: E731
    assert ids(EmlFolderSource(path=tmp_path)) == ["a.eml", "sub/B.EML"]
    both = ["a.eml", "sub/B.EML", "sub/deep/d.txt"]
    assert ids(EmlFolderSource(path=tmp_path, pattern=["*.eml", "*.txt"])) == both
    assert ids(EmlFolderSource(path=tmp_path, recursive=False)) == ["a.eml"]


def test_enron_folder_lists_every_message() -> None:
    enron = require_corpus() / "emails/enron_berkeley_annotated/enron_with_categories"
    everything = lambda ids: set(ids)  # noqa: E731 - a store that holds it all: list only
    by_dir = EmlFolderSource(path=enron, pattern="*.txt", folders_from_subdirs=True)
    assert by_dir.folders() == [str(n) for n in range(1, 9)]
    for folder in by_dir.folders():
        [batch] = by_dir.changes(folder, None, everything)
        assert batch.items == []
    assert (by_dir.stats.files_listed, by_dir.stats.files_read) == (1702, 0)
    # As one INBOX, categories.txt (the label legend) matches "*.txt" too.
    flat = EmlFolderSource(path=enron, pattern="*.txt")
    list(flat.changes("INBOX", None, everything))
    assert flat.stats.files_listed == 1703
    got = FakePipeline().sync(EmlFolderSource(path=enron, pattern="*.txt", folders_from_subdirs=True))
    assert len(got) == 1702 and all(i.data.count(b"Message-ID:") for i in got)


# --- .ics folders ----------------------------------------------------------------------


def test_ics_edit_and_delete(tmp_path: Path) -> None:
    kit = IcsKit(tmp_path)
    for i in range(3):
        kit.add(i)
    pipe = FakePipeline()
    pipe.sync(kit.source())
    kit.path_of(1).write_bytes(ics(1, summary="Moved"))
    kit.path_of(2).unlink()
    got = pipe.sync(kit.source())
    assert [(i.provider_id, b"Moved 1" in i.data) for i in got] == [("work/m1.ics", True)]
    assert pipe.batches[-1].deleted == ["m2.ics"]
    assert pipe.sync(kit.source()) == []


def test_ics_real_calendars() -> None:
    calendars = require_corpus() / "calendar"
    pipe = FakePipeline()
    got = pipe.sync(IcsFolderSource(path=calendars, batch_size=50))
    assert len(got) == 249 and {i.kind for i in got} == {"ics"}
    assert all(i.data for i in got)
    assert pipe.sync(IcsFolderSource(path=calendars)) == []
