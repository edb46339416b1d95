"""plugins/module_utils/sms_files: backup journal, preflight checks and undo, tested against their contract.

The journal keeps each original once, records pending work durably and
retires itself without ever naming a backup that is gone; the preflight
refuses read-only folders and full disks before anything changes; a
transaction puts back every byte, mode and date a failed run changed and
removes what it created. Everything goes through sms_fs volumes, so a link
planted anywhere is refused and nothing outside is read or written.
"""

import errno
import hashlib
import json
import os
import stat
import subprocess
import types

import pytest

from ansible_collections.sms.hotfix.plugins.module_utils import sms_files
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    JOURNAL_ROOM,
    BackupJournal,
    Transaction,
    check_free_space,
    check_new_folders,
    check_writable,
    dump_json,
    iso_utc,
    read_json,
    write_json,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import LocalVolume, PathRefused, SmsFileError
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import parse_iso_utc

OLD = 898516800  # 1998-06-22T12:00:00Z
STATE = ("MS", "SMS", "Hotfix", "Q216552")
BIN = ("MS", "SMS", "BIN")


# -- helpers --------------------------------------------------------------------------------------
def put(path, data, mtime=OLD, mode=None):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as handle:
        handle.write(data)
    if mode is not None:
        os.chmod(str(path), mode)
    os.utime(str(path), (mtime, mtime))


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def snapshot(root, dir_dates=False):
    """Everything below `root` (lstat, links never followed): kind, bytes or target, mode, mtime_ns."""
    out = {}

    def visit(path, rel):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns if dir_dates else None)
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), os.path.join(rel, name))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", read(path), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        else:
            out[rel] = ("other", stat.S_IFMT(st.st_mode), st.st_mtime_ns)

    if os.path.lexists(str(root)):
        visit(str(root), ".")
    return out


def on_disk(journal):
    return json.loads(read(journal.path))


def ro_bind(request, folder):
    """Make `folder` a read-only bind mount of itself (root ignores permission bits); unmounted after the test."""
    folder = str(folder)
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root; the os.access variant of this test runs instead")
    done = subprocess.run(["mount", "--bind", folder, folder], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(
            "cannot bind-mount here (%s); the os.access variant of this test runs instead" % done.stderr.strip()
        )

    def unmount():
        if subprocess.run(["umount", folder], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", folder], capture_output=True, check=False)

    request.addfinalizer(unmount)
    done = subprocess.run(["mount", "-o", "remount,bind,ro", folder], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot remount read-only here: %s" % done.stderr.strip())


def tiny_tmpfs(request, folder, size="64k"):
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the fstatvfs variant of this test runs instead")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.strip())
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False))
    return folder


class Host:
    """A client drive: BIN with two originals, SMS.INI, and the hotfix's state folder (not made yet)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = tmp / "drive"
        put(self.root.joinpath(*BIN) / "SMSRUN32.EXE", b"original smsrun32", mode=0o640)
        put(self.root.joinpath(*BIN) / "Smssrv32.exe", b"original smssrv32", mtime=OLD + 60)
        put(self.root / "SMS.INI", b"[SMS]\r\nVersion=1.2\r\n")
        self.outside = tmp / "outside"
        put(self.outside / "f", b"OUTSIDE: never read, never written", mtime=OLD - 1)
        put(self.outside / "journal.json", dump_json({"version": 1, "entries": {}}), mtime=OLD - 2)
        os.utime(str(self.outside), (OLD, OLD))
        self.drive = LocalVolume(str(self.root), label="client01's drive")
        self.journal = BackupJournal(self.drive, STATE)

    def bin(self, name):
        return BIN + (name,)

    def record(self, name, journal=None):
        return (journal or self.journal).record("BIN", name, self.drive, self.bin(name))

    def state_root(self):
        return self.root.joinpath(*STATE)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


# -- dates and JSON --------------------------------------------------------------------------------
def test_dates_round_trip():
    assert iso_utc(916356060) == "1999-01-14T23:21:00Z"
    assert parse_iso_utc("1999-01-14T23:21:00Z") == 916356060
    assert parse_iso_utc(" 1999-01-14T23:21:00 ") == 916356060
    assert parse_iso_utc("1999-01-15T00:21:00+01:00") == 916356060


def test_json_helpers(tmp_path):
    volume = LocalVolume(str(tmp_path))
    assert read_json(volume, ("j.json",), default={"x": 1}) == {"x": 1}
    assert read_json(volume, ("no", "j.json")) is None
    write_json(volume, ("j.json",), {"b": 1, "a": [1, 2]})
    assert read(tmp_path / "j.json") == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert read_json(volume, ("j.json",)) == {"a": [1, 2], "b": 1}
    assert os.listdir(str(tmp_path)) == ["j.json"]
    for bad in (b"{broken", b"\xff\xfe"):
        put(tmp_path / "j.json", bad)
        with pytest.raises(SmsFileError) as info:
            read_json(volume, ("j.json",))
        assert str(tmp_path / "j.json") in info.value.msg and "not valid JSON" in info.value.msg


# -- the backup journal ----------------------------------------------------------------------------
def test_record_keeps_the_original_once(host):
    entry = host.journal.record("BIN", "smsrun32.exe", host.drive, host.bin("SMSRUN32.EXE"))
    assert entry["name"] == "SMSRUN32.EXE" and entry["existed"] is True and entry["size"] == 17
    assert entry["backup"] == "backup/BIN/SMSRUN32.EXE" and entry["date"] == "1998-06-22T12:00:00Z"
    assert entry["sha256"] == hashlib.sha256(b"original smsrun32").hexdigest() and entry["mtime"] == OLD
    backup = host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE"
    assert host.journal.backup_path(entry) == str(backup)
    assert read(backup) == b"original smsrun32" and os.stat(str(backup)).st_mtime == OLD
    assert list(on_disk(host.journal)["entries"]) == ["BIN/smsrun32.exe"]
    journal_before = snapshot(host.state_root(), dir_dates=True)

    # the hotfix replaced the file; a second run must not back up the hotfix's own bytes
    put(host.root.joinpath(*BIN) / "SMSRUN32.EXE", b"the hotfix", mtime=OLD + 1000)
    again = host.journal.record("BIN", "SMSRUN32.exe", host.drive, host.bin("SMSRUN32.EXE"))
    assert again == entry
    fresh = BackupJournal(host.drive, STATE)
    assert fresh.record("BIN", "Smsrun32.EXE", host.drive, host.bin("SMSRUN32.EXE")) == entry
    assert fresh.entry("BIN", "SMSRUN32.EXE") == entry
    assert snapshot(host.state_root(), dir_dates=True) == journal_before, "the journal or backup was rewritten"


def test_record_without_an_original(host):
    entry = host.journal.record("BIN", "NEW.DLL")
    assert entry["existed"] is False and entry["backup"] is None and entry["name"] == "NEW.DLL"
    assert host.journal.backup_path(entry) is None
    host.journal.verify(entry)
    assert on_disk(host.journal)["entries"]["BIN/new.dll"]["existed"] is False
    assert not (host.state_root() / "backup").exists()


def test_record_without_save_is_durable_only_after_save(host):
    host.journal.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"), save=False)
    host.journal.record("BIN", "NEW.DLL", save=False)
    assert not (host.state_root() / "journal.json").exists()
    assert (host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE").exists(), "the backup is on disk first"
    host.journal.save()
    assert sorted(on_disk(host.journal)["entries"]) == ["BIN/new.dll", "BIN/smsrun32.exe"]


@pytest.mark.parametrize("where", ["original", "original_folder", "state_folder", "backup_folder"])
def test_record_refuses_a_link_and_writes_nothing_outside(host, where):
    drive = host.root
    source = host.bin("SMSRUN32.EXE")
    if where == "original":
        os.unlink(str(drive.joinpath(*source)))
        os.symlink(str(host.outside / "f"), str(drive.joinpath(*source)))
        link = drive.joinpath(*source)
    elif where == "original_folder":
        os.symlink(str(host.outside), str(drive / "MS" / "LINKED"))
        source, link = ("MS", "LINKED", "f"), drive / "MS" / "LINKED"
    elif where == "state_folder":
        os.symlink(str(host.outside), str(drive / "MS" / "SMS" / "Hotfix"))
        link = drive / "MS" / "SMS" / "Hotfix"
    else:
        os.makedirs(str(host.state_root()))
        os.symlink(str(host.outside), str(host.state_root() / "backup"))
        link = host.state_root() / "backup"
    outside = snapshot(host.outside, dir_dates=True)
    with pytest.raises(PathRefused) as info:
        host.journal.record("BIN", source[-1], host.drive, source)
    assert str(link) in info.value.msg and "symbolic link" in info.value.msg
    assert snapshot(host.outside, dir_dates=True) == outside
    assert not (host.state_root() / "journal.json").exists()
    assert not os.path.isfile(str(host.state_root() / "backup" / "BIN" / source[-1]))


def test_a_journal_file_that_is_a_link_is_refused(host):
    os.makedirs(str(host.state_root()))
    os.symlink(str(host.outside / "journal.json"), str(host.state_root() / "journal.json"))
    outside = snapshot(host.outside, dir_dates=True)
    with pytest.raises(PathRefused) as info:
        host.journal.entries()
    assert host.journal.path in info.value.msg
    with pytest.raises(PathRefused):
        Transaction(host.journal)
    with pytest.raises(PathRefused):
        host.journal.set_pending(bump=True)
    assert snapshot(host.outside, dir_dates=True) == outside
    assert os.path.islink(host.journal.path)


@pytest.mark.parametrize(
    "text, says",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a backup journal"),
        (b'{"entries": []}', "not a backup journal"),
        (b'{"version": 1}', "not a backup journal"),
    ],
)
def test_a_damaged_journal_is_named(host, text, says):
    put(host.state_root() / "journal.json", text)
    with pytest.raises(SmsFileError) as info:
        host.journal.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    assert host.journal.path in info.value.msg and says in info.value.msg
    assert read(host.state_root() / "journal.json") == text
    assert not (host.state_root() / "backup").exists()


def test_verify_finds_a_damaged_missing_or_linked_backup(host):
    entry = host.record("SMSRUN32.EXE")
    host.journal.verify(entry)
    backup = host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE"
    put(backup, b"original smsrun3X")
    with pytest.raises(SmsFileError) as info:
        host.journal.verify(entry)
    assert str(backup) in info.value.msg and "cannot be trusted" in info.value.msg
    assert info.value.facts["expected"] == entry["sha256"]
    assert info.value.facts["found"] == hashlib.sha256(b"original smsrun3X").hexdigest()
    os.unlink(str(backup))
    with pytest.raises(SmsFileError) as info:
        host.journal.verify(entry)
    assert str(backup) in info.value.msg and "missing" in info.value.msg
    # a link to a copy of the original outside is not a backup
    put(host.outside / "copy", b"original smsrun32")
    os.symlink(str(host.outside / "copy"), str(backup))
    with pytest.raises(SmsFileError) as info:
        host.journal.verify(entry)
    assert str(backup) in info.value.msg
    os.unlink(str(backup))
    os.rmdir(str(backup.parent))
    with pytest.raises(SmsFileError) as info:
        host.journal.verify(entry)
    assert "missing" in info.value.msg


def test_pending_work_is_durable(host):
    assert host.journal.pending == {}
    assert host.journal.set_pending(bump=True) is True
    assert on_disk(host.journal)["pending"] == {"bump": True}
    assert BackupJournal(host.drive, STATE).pending == {"bump": True}
    st = os.stat(host.journal.path)
    assert host.journal.set_pending(bump=True) is False
    assert host.journal.set_pending(other=None) is False
    after = os.stat(host.journal.path)
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), "an unchanged journal is not rewritten"
    # a record keeps the flag
    host.record("SMSRUN32.EXE")
    assert BackupJournal(host.drive, STATE).pending == {"bump": True}
    assert host.journal.set_pending(bump=False, done="2026-01-01") is True
    assert BackupJournal(host.drive, STATE).pending == {"done": "2026-01-01"}
    assert host.journal.set_pending(done=None) is True
    stored = on_disk(host.journal)
    assert "pending" not in stored and list(stored["entries"]) == ["BIN/smsrun32.exe"]
    assert BackupJournal(host.drive, STATE).pending == {}


def test_retire_sets_journal_and_backups_aside(host, monkeypatch):
    first = host.record("SMSRUN32.EXE")
    journal_bytes = read(host.journal.path)
    monkeypatch.setattr(sms_files.time, "time", lambda: 1767225600.0)  # 2026-01-01T00:00:00Z
    retired = host.journal.retire()
    assert retired == str(host.state_root() / "retired" / "20260101T000000Z")
    assert read(os.path.join(retired, "journal.json")) == journal_bytes
    assert read(os.path.join(retired, "backup", "BIN", "SMSRUN32.EXE")) == b"original smsrun32"
    assert not (host.state_root() / "journal.json").exists() and not (host.state_root() / "backup").exists()
    assert host.journal.entries() == {}
    # the next rollout backs up what it finds then (a service pack changed it)
    put(host.root.joinpath(*BIN) / "SMSRUN32.EXE", b"service pack")
    second = host.record("SMSRUN32.EXE")
    assert second["sha256"] != first["sha256"]
    assert read(host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE") == b"service pack"
    again = host.journal.retire()
    assert again == retired + "-2", "a second retire in the same second gets its own folder"
    assert read(os.path.join(retired, "backup", "BIN", "SMSRUN32.EXE")) == b"original smsrun32"
    assert host.journal.retire() is None


def test_retire_entries_sets_aside_only_those(host):
    put(host.root.joinpath(*BIN) / "Alpha" / "x", b"unused")
    host.record("SMSRUN32.EXE")
    host.record("Smssrv32.exe")
    host.journal.record("BIN", "NEW.DLL")
    host.journal.record("INI", "SMS.INI", host.drive, ("SMS.INI",))
    assert host.journal.retire_entries(["BIN/nothing.exe"]) is None
    before = on_disk(host.journal)

    retired = host.journal.retire_entries(["BIN/smsrun32.exe", "BIN/new.dll", "BIN/unknown.exe"])
    kept = on_disk(host.journal)
    assert sorted(kept["entries"]) == ["BIN/smssrv32.exe", "INI/sms.ini"]
    assert kept["entries"]["BIN/smssrv32.exe"] == before["entries"]["BIN/smssrv32.exe"]
    moved = json.loads(read(os.path.join(retired, "journal.json")))
    assert sorted(moved["entries"]) == ["BIN/new.dll", "BIN/smsrun32.exe"]
    assert moved["entries"]["BIN/smsrun32.exe"] == before["entries"]["BIN/smsrun32.exe"]
    assert read(os.path.join(retired, "backup", "BIN", "SMSRUN32.EXE")) == b"original smsrun32"
    assert not (host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE").exists()
    assert read(host.state_root() / "backup" / "BIN" / "Smssrv32.exe") == b"original smssrv32"
    assert host.journal.entry("BIN", "SMSRUN32.EXE") is None and host.journal.entry("BIN", "smssrv32.exe")
    # the last entries, no pending work: the whole journal goes
    last = host.journal.retire_entries(["BIN/smssrv32.exe", "INI/sms.ini"])
    assert last != retired and not (host.state_root() / "journal.json").exists()
    assert read(os.path.join(last, "backup", "BIN", "Smssrv32.exe")) == b"original smssrv32"
    assert read(os.path.join(last, "backup", "INI", "SMS.INI")) == b"[SMS]\r\nVersion=1.2\r\n"
    journal = json.loads(read(os.path.join(last, "journal.json")))
    assert sorted(journal["entries"]) == ["BIN/smssrv32.exe", "INI/sms.ini"]


def test_retire_entries_keeps_pending_work(host):
    host.record("SMSRUN32.EXE")
    host.journal.set_pending(bump=True)
    retired = host.journal.retire_entries(["BIN/smsrun32.exe"])
    assert retired is not None
    stored = on_disk(host.journal)
    assert stored["entries"] == {} and stored["pending"] == {"bump": True}
    assert BackupJournal(host.drive, STATE).pending == {"bump": True}
    moved = json.loads(read(os.path.join(retired, "journal.json")))
    assert list(moved["entries"]) == ["BIN/smsrun32.exe"] and not moved.get("pending")
    assert read(os.path.join(retired, "backup", "BIN", "SMSRUN32.EXE")) == b"original smsrun32"
    assert not (host.state_root() / "backup" / "BIN").exists()


def journal_names_only_existing_backups(host):
    journal = BackupJournal(host.drive, STATE)
    for entry in journal.entries().values():
        if entry.get("existed"):
            assert os.path.isfile(journal.backup_path(entry)), "the journal names a backup that is gone"


def fail_on_rename(monkeypatch, volume, number):
    calls = []
    real = volume.rename

    def rename(src, dst):
        calls.append(src)
        if len(calls) == number:
            raise SmsFileError("simulated crash at rename %d" % number)
        return real(src, dst)

    monkeypatch.setattr(volume, "rename", rename)


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_in_retire_never_leaves_a_journal_naming_missing_backups(host, monkeypatch, crash_at):
    host.record("SMSRUN32.EXE")
    fail_on_rename(monkeypatch, host.drive, crash_at)
    with pytest.raises(SmsFileError):
        host.journal.retire()
    journal_names_only_existing_backups(host)


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_in_retire_entries_never_leaves_a_journal_naming_missing_backups(host, monkeypatch, crash_at):
    host.record("SMSRUN32.EXE")
    host.record("Smssrv32.exe")
    host.journal.record("BIN", "NEW.DLL")
    fail_on_rename(monkeypatch, host.drive, crash_at)
    with pytest.raises(SmsFileError):
        host.journal.retire_entries(["BIN/smsrun32.exe", "BIN/smssrv32.exe"])
    journal_names_only_existing_backups(host)
    assert list(on_disk(host.journal)["entries"]) == ["BIN/new.dll"]


# -- the transaction -------------------------------------------------------------------------------
def a_run(host, txn):
    """What a client upgrade does: back up, replace a file, add a file, rename the INI aside and write it."""
    txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    txn.record("BIN", "NEW.DLL")
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    host.drive.write_bytes(host.bin("SMSRUN32.EXE"), b"hotfix", mtime=OLD + 99, mode=0o755)
    txn.remember(host.drive, None, host.bin("NEW.DLL"))
    host.drive.write_bytes(host.bin("NEW.DLL"), b"new")
    txn.remember(host.drive, ("SMS.INI",), ("SMS.OLD",))
    host.drive.rename(("SMS.INI",), ("SMS.OLD",))
    txn.remember(host.drive, None, ("SMS.INI",))
    host.drive.write_bytes(("SMS.INI",), b"[SMS]\r\nVersion=1.2.1\r\n")
    txn.makedirs(host.drive, ("MS", "SMS", "LOGS", "Q216552"))


def test_rollback_puts_every_byte_mode_and_date_back(host):
    before = snapshot(host.root)
    txn = Transaction(host.journal)
    a_run(host, txn)
    assert snapshot(host.root) != before
    restored, problems = txn.rollback()
    assert problems == []
    drive = host.root
    expected = (drive.joinpath(*BIN) / "SMSRUN32.EXE", drive.joinpath(*BIN) / "NEW.DLL", drive / "SMS.INI")
    assert sorted(restored) == sorted(str(p) for p in expected)
    assert snapshot(host.root) == before, "the drive is not as it was (bytes, modes, dates, folders)"
    assert host.journal.entries() == {}


def test_rollback_restores_the_date_to_the_nanosecond(host):
    path = str(host.root.joinpath(*BIN) / "SMSRUN32.EXE")
    os.utime(path, ns=(1700000000123456789, 1700000000123456789))
    txn = Transaction()
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    host.drive.write_bytes(host.bin("SMSRUN32.EXE"), b"hotfix")
    txn.rollback()
    assert read(path) == b"original smsrun32"
    assert os.stat(path).st_mtime_ns == 1700000000123456789


def test_rollback_keeps_an_earlier_journal(host):
    earlier = host.record("Smssrv32.exe")
    host.journal.set_pending(bump=True)
    journal_file = host.state_root() / "journal.json"
    os.utime(str(journal_file), (OLD, OLD))
    before = snapshot(host.root)
    txn = Transaction(host.journal)
    a_run(host, txn)
    assert sorted(on_disk(host.journal)["entries"]) == ["BIN/new.dll", "BIN/smsrun32.exe", "BIN/smssrv32.exe"]
    restored, problems = txn.rollback()
    assert problems == []
    assert snapshot(host.root) == before
    fresh = BackupJournal(host.drive, STATE)
    assert fresh.entries() == {"BIN/smssrv32.exe": earlier} and fresh.pending == {"bump": True}
    assert host.journal.entries() == {"BIN/smssrv32.exe": earlier}, "the journal object reloads what is on disk"


def test_rollback_removes_a_half_made_backup(host, monkeypatch):
    """A backup copy that fails its read-back check after the rename is still this run's, and goes."""
    before = snapshot(host.root)
    txn = Transaction(host.journal)
    monkeypatch.setattr(host.drive, "sha256", lambda parts: "0" * 64)
    with pytest.raises(SmsFileError) as info:
        txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    assert "reads back" in info.value.msg
    assert (host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE").exists()
    monkeypatch.undo()
    restored, problems = txn.rollback()
    assert problems == []
    assert snapshot(host.root) == before


def test_rollback_after_a_refused_link_leaves_nothing(host):
    os.unlink(str(host.root.joinpath(*BIN) / "SMSRUN32.EXE"))
    os.symlink(str(host.outside / "f"), str(host.root.joinpath(*BIN) / "SMSRUN32.EXE"))
    before, outside = snapshot(host.root), snapshot(host.outside, dir_dates=True)
    txn = Transaction(host.journal)
    txn.record("BIN", "Smssrv32.exe", host.drive, host.bin("Smssrv32.exe"))
    with pytest.raises(PathRefused):
        txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    txn.rollback()
    assert snapshot(host.root) == before and snapshot(host.outside, dir_dates=True) == outside


def test_rollback_skips_a_file_the_failed_step_never_touched(host):
    path = host.root.joinpath(*BIN) / "SMSRUN32.EXE"
    inode = os.stat(str(path)).st_ino
    txn = Transaction()
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    restored, problems = txn.rollback()
    assert restored == [] and problems == []
    assert os.stat(str(path)).st_ino == inode, "an untouched file is not rewritten"


def test_rollback_does_not_follow_a_link_planted_during_the_run(host):
    path = host.root.joinpath(*BIN) / "SMSRUN32.EXE"
    txn = Transaction()
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    os.unlink(str(path))
    os.symlink(str(host.outside / "f"), str(path))
    outside = snapshot(host.outside, dir_dates=True)
    restored, problems = txn.rollback()
    assert restored == [] and len(problems) == 1
    assert str(path) in problems[0] and "symbolic link" in problems[0]
    assert snapshot(host.outside, dir_dates=True) == outside


def test_rollback_restores_the_journal_even_when_a_backup_cannot_be_removed(host):
    """One problem (a backup folder swapped for a link) is reported; the rest of the undo still happens."""
    txn = Transaction(host.journal)
    txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    folder = host.state_root() / "backup" / "BIN"
    os.rename(str(folder), str(host.tmp / "moved-aside"))
    os.symlink(str(host.outside), str(folder))
    outside = snapshot(host.outside, dir_dates=True)
    restored, problems = txn.rollback()
    assert len(problems) == 1 and str(folder) in problems[0]
    assert snapshot(host.outside, dir_dates=True) == outside
    assert not (host.state_root() / "journal.json").exists(), "the journal still names this run's backup"


def test_rollback_removes_a_state_folder_it_made_from_nothing(tmp_path):
    """A state folder configured by the operator (the volume's top) that the run made goes again on rollback."""
    put(tmp_path / "drive" / "SMSRUN32.EXE", b"original")
    drive = LocalVolume(str(tmp_path / "drive"))
    state = LocalVolume(str(tmp_path / "state" / "client01"), label="client01's state folder")
    journal = BackupJournal(state, ())
    txn = Transaction(journal)
    txn.record("BIN", "SMSRUN32.EXE", drive, ("SMSRUN32.EXE",))
    txn.remember(drive, ("SMSRUN32.EXE",))
    drive.write_bytes(("SMSRUN32.EXE",), b"hotfix")
    restored, problems = txn.rollback()
    assert problems == [] and read(tmp_path / "drive" / "SMSRUN32.EXE") == b"original"
    assert not (tmp_path / "state" / "client01" / "journal.json").exists()
    assert not (tmp_path / "state" / "client01" / "backup").exists()
    assert not (tmp_path / "state").exists(), "the run made %s and left it" % (tmp_path / "state" / "client01")


def _full_disk_for_put_back(monkeypatch, volume, marker):
    """From now on, a write into a path holding `marker` fails with ENOSPC (the disk filled meanwhile)."""
    real = volume.write

    def write(parts, chunks, **kwargs):
        if marker in volume.path(parts):
            raise SmsFileError(sms_fs_error(volume.path(parts)), path=volume.path(parts))
        return real(parts, chunks, **kwargs)

    monkeypatch.setattr(volume, "write", write)


def sms_fs_error(path):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import describe_os_error

    return describe_os_error(OSError(errno.ENOSPC, "No space left on device"), path)


def test_a_failed_put_back_keeps_that_files_backup_and_journal_entry(host, monkeypatch):
    """The put-back of SMSRUN32.EXE fails (the disk is full): its backup is the only original left, and stays."""
    txn = Transaction(host.journal)
    txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"), save=False)
    txn.record("BIN", "Smssrv32.exe", host.drive, host.bin("Smssrv32.exe"), save=False)
    host.journal.save()
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    host.drive.write_bytes(host.bin("SMSRUN32.EXE"), b"hotfix smsrun32")
    txn.remember(host.drive, host.bin("Smssrv32.exe"))  # its copy then failed: never touched
    _full_disk_for_put_back(monkeypatch, host.drive, os.path.join("BIN", "SMSRUN32.EXE"))
    restored, problems = txn.rollback()
    assert restored == [] and len(problems) == 1 and "no space left" in problems[0], problems
    backup = host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE"
    assert read(backup) == b"original smsrun32", "the only copy of the original is gone"
    assert stat.S_IMODE(os.stat(str(backup)).st_mode) == 0o640, "the backup keeps the original's mode"
    assert not (host.state_root() / "backup" / "BIN" / "Smssrv32.exe").exists(), "an unneeded backup stays"
    assert sorted(on_disk(host.journal)["entries"]) == ["BIN/smsrun32.exe"]
    assert txn.owed_backups() == [str(backup)]
    note = txn.owed_note()
    assert str(backup) in note and host.journal.path in note and "roll back" in note
    # the journal is enough for a later restore, byte for byte
    monkeypatch.undo()
    entry = BackupJournal(host.drive, STATE).entry("BIN", "SMSRUN32.EXE")
    BackupJournal(host.drive, STATE).restore(entry, host.drive, host.bin("SMSRUN32.EXE"))
    assert read(host.root.joinpath(*BIN) / "SMSRUN32.EXE") == b"original smsrun32"
    assert stat.S_IMODE(os.stat(str(host.root.joinpath(*BIN) / "SMSRUN32.EXE")).st_mode) == 0o640


def test_a_failed_put_back_with_a_journal_that_cannot_be_rewritten_keeps_every_backup(host, monkeypatch):
    txn = Transaction(host.journal)
    txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"), save=False)
    txn.record("BIN", "Smssrv32.exe", host.drive, host.bin("Smssrv32.exe"), save=False)
    host.journal.save()
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    host.drive.write_bytes(host.bin("SMSRUN32.EXE"), b"hotfix smsrun32")
    _full_disk_for_put_back(monkeypatch, host.drive, os.sep)  # nothing can be written any more
    restored, problems = txn.rollback()
    assert len(problems) == 2 and "journal" in problems[1], problems
    entries = on_disk(host.journal)["entries"]
    assert sorted(entries) == ["BIN/smsrun32.exe", "BIN/smssrv32.exe"]
    for entry in entries.values():  # the journal on disk names only backups that are there
        assert (
            hashlib.sha256(read(host.state_root().joinpath(*entry["backup"].split("/")))).hexdigest() == entry["sha256"]
        )


def test_a_put_back_that_does_not_read_back_is_not_counted_as_done(host, monkeypatch):
    txn = Transaction(host.journal)
    txn.record("BIN", "SMSRUN32.EXE", host.drive, host.bin("SMSRUN32.EXE"))
    txn.remember(host.drive, host.bin("SMSRUN32.EXE"))
    host.drive.write_bytes(host.bin("SMSRUN32.EXE"), b"hotfix smsrun32")
    real = host.drive.sha256
    monkeypatch.setattr(host.drive, "sha256", lambda parts: "0" * 64 if parts[-1] == "SMSRUN32.EXE" else real(parts))
    restored, problems = txn.rollback()
    assert restored == [] and "reads back" in problems[0]
    assert (host.state_root() / "backup" / "BIN" / "SMSRUN32.EXE").exists()
    assert sorted(on_disk(host.journal)["entries"]) == ["BIN/smsrun32.exe"]


# -- checks before a change ------------------------------------------------------------------------
def test_check_writable_passes_on_writable_folders_and_files(host):
    check_writable(host.drive, [BIN, (), ("MS",)], [host.bin("SMSRUN32.EXE"), ("SMS.INI",)])
    check_writable(host.drive)


def test_check_writable_names_a_folder_or_file_it_cannot_write(host, monkeypatch):
    before = snapshot(host.root, dir_dates=True)
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: path not in ("BIN", "SMS.INI") and real(path, mode, **kw)
    )
    with pytest.raises(SmsFileError) as info:
        check_writable(host.drive, [("MS",), BIN], [])
    assert "cannot write in %s" % host.drive.path(BIN) in info.value.msg and "read-only" in info.value.msg
    with pytest.raises(SmsFileError) as info:
        check_writable(host.drive, [("MS",)], [("SMS.INI",)])
    assert "cannot change %s" % host.drive.path(("SMS.INI",)) in info.value.msg
    check_writable(host.drive, [("MS",)], [host.bin("SMSRUN32.EXE")])
    assert snapshot(host.root, dir_dates=True) == before


def test_check_writable_on_a_read_only_mount(request, host):
    ro_bind(request, host.root.joinpath(*BIN))
    with pytest.raises(SmsFileError) as info:
        check_writable(host.drive, [BIN])
    assert "cannot write in %s" % host.drive.path(BIN) in info.value.msg
    with pytest.raises(SmsFileError) as info:
        check_writable(host.drive, [], [host.bin("SMSRUN32.EXE")])
    assert "cannot change %s" % host.drive.path(host.bin("SMSRUN32.EXE")) in info.value.msg
    check_writable(host.drive, [("MS", "SMS"), ()], [("SMS.INI",)])


def test_check_writable_of_a_missing_top_names_its_nearest_parent(tmp_path, monkeypatch):
    state = LocalVolume(str(tmp_path / "state" / "client01"))
    check_writable(state, [()])
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False)
    with pytest.raises(SmsFileError) as info:
        check_writable(state, [()])
    assert "cannot write in %s:" % tmp_path in info.value.msg
    assert not (tmp_path / "state").exists()


def test_check_writable_refuses_a_folder_that_is_a_link(host):
    os.symlink(str(host.outside), str(host.root / "MS" / "SMS" / "LINKED"))
    outside = snapshot(host.outside, dir_dates=True)
    with pytest.raises(PathRefused) as info:
        check_writable(host.drive, [("MS", "SMS", "LINKED", "deeper")])
    assert host.drive.path(("MS", "SMS", "LINKED")) in info.value.msg
    with pytest.raises(PathRefused) as info:
        check_writable(host.drive, [("MS", "SMS", "LINKED")])
    assert host.drive.path(("MS", "SMS", "LINKED")) in info.value.msg and "symbolic link" in info.value.msg
    assert snapshot(host.outside, dir_dates=True) == outside


def test_check_writable_refuses_a_file_that_is_a_link(host):
    os.symlink(str(host.outside / "f"), str(host.root / "LINKED.INI"))
    with pytest.raises(PathRefused) as info:
        check_writable(host.drive, [()], [("LINKED.INI",)])
    assert host.drive.path(("LINKED.INI",)) in info.value.msg and "symbolic link" in info.value.msg


def test_check_writable_does_not_call_a_missing_folder_read_only(host):
    """Only existing folders are checked; a missing one is not "read-only" (check_new_folders covers it)."""
    try:
        check_writable(host.drive, [("MS", "SMS", "NOTHERE")], [("NOTHERE.INI",)])
    except SmsFileError as exc:
        assert "read-only" not in exc.msg, exc.msg


def test_check_new_folders_checks_the_nearest_existing_parent(host, monkeypatch):
    asked = []
    real = os.access

    def access(path, mode, **kw):
        asked.append(path)
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    check_new_folders(host.drive, [STATE + ("backup", "BIN"), BIN + ("deeper",)])
    assert sorted(asked) == ["BIN", "SMS"], "BIN exists; MS/SMS is the nearest existing parent of the state folder"
    assert not (host.root / "MS" / "SMS" / "Hotfix").exists()
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: path != "SMS")
    with pytest.raises(SmsFileError) as info:
        check_new_folders(host.drive, [STATE])
    assert "cannot write in %s" % host.drive.path(("MS", "SMS")) in info.value.msg


def test_check_new_folders_refuses_a_file_or_link_in_the_way(host):
    put(host.root / "MS" / "SMS" / "Hotfix", b"a file where a folder goes")
    with pytest.raises(PathRefused) as info:
        check_new_folders(host.drive, [STATE])
    assert host.drive.path(("MS", "SMS", "Hotfix")) in info.value.msg
    os.unlink(str(host.root / "MS" / "SMS" / "Hotfix"))
    os.symlink(str(host.outside), str(host.root / "MS" / "SMS" / "Hotfix"))
    with pytest.raises(PathRefused) as info:
        check_new_folders(host.drive, [STATE + ("backup",)])
    assert host.drive.path(("MS", "SMS", "Hotfix")) in info.value.msg
    assert not (host.outside / "Q216552").exists()


def test_check_new_folders_with_a_missing_top(tmp_path, monkeypatch):
    state = LocalVolume(str(tmp_path / "state" / "client01"))
    check_new_folders(state, [("backup", "BIN"), ()])
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: path != str(tmp_path))
    with pytest.raises(SmsFileError) as info:
        check_new_folders(state, [("backup", "BIN")])
    assert "cannot write in %s:" % tmp_path in info.value.msg
    assert not (tmp_path / "state").exists()


def fake_statvfs(monkeypatch, blocks, block=4096):
    free = types.SimpleNamespace(f_bavail=blocks, f_frsize=block)
    monkeypatch.setattr(os, "fstatvfs", lambda fd: free)
    monkeypatch.setattr(os, "statvfs", lambda path: free)


def test_check_free_space_rounds_to_blocks_and_sums_per_file_system(host, monkeypatch):
    fake_statvfs(monkeypatch, blocks=3)  # 12288 bytes free
    # 8192 bytes: two blocks plus one for the folder entry, exactly what is free
    check_free_space([(host.drive, BIN, 8192)])
    with pytest.raises(SmsFileError) as info:
        check_free_space([(host.drive, BIN, 8193)])
    assert info.value.facts["need"] == 16384 and info.value.facts["have"] == 12288
    assert (
        "not enough free space on the filesystem of %s: need 16384 bytes, have 12288" % host.drive.path(BIN)
        in info.value.msg
    )
    # two needs on one file system add up, even through two volumes
    other = LocalVolume(str(host.root / "MS"))
    check_free_space([(host.drive, BIN, 1)])
    with pytest.raises(SmsFileError) as info:
        check_free_space([(host.drive, BIN, 1), (other, ("SMS",), 4096)])
    assert info.value.facts["need"] == 8192 + 8192 and info.value.facts["have"] == 12288
    # a file system without a fragment size counts 4 KiB blocks
    fake_statvfs(monkeypatch, blocks=2, block=0)
    with pytest.raises(SmsFileError) as info:
        check_free_space([(host.drive, (), 0), (host.drive, BIN, 0)])
    assert info.value.facts["need"] == 8192 and info.value.facts["have"] == 0
    check_free_space([])


def test_check_free_space_of_a_missing_state_folder(tmp_path, monkeypatch):
    asked = []
    free = types.SimpleNamespace(f_bavail=0, f_frsize=4096)
    monkeypatch.setattr(os, "statvfs", lambda path: asked.append(path) or free)
    state = LocalVolume(str(tmp_path / "state" / "client01"))
    with pytest.raises(SmsFileError) as info:
        check_free_space([(state, (), JOURNAL_ROOM)])
    assert asked and set(asked) == {str(tmp_path)}
    assert info.value.facts["need"] == JOURNAL_ROOM + 4096
    assert not (tmp_path / "state").exists()


def test_check_free_space_on_a_full_file_system(request, tmp_path, host):
    tiny = tiny_tmpfs(request, tmp_path / "tiny")
    state = LocalVolume(str(tiny / "state"))
    with pytest.raises(SmsFileError) as info:
        check_free_space([(state, (), 1024 * 1024)])
    assert str(tiny) in info.value.msg and info.value.facts["have"] <= 64 * 1024
    # the drive is another file system: its needs are not added to the tiny one's
    check_free_space([(state, (), 16 * 1024), (host.drive, BIN, 1024 * 1024)])
    assert not (tiny / "state").exists()
    # and a write that does not fit is refused cleanly, nothing half-written left
    volume = LocalVolume(str(tiny))
    with pytest.raises(SmsFileError) as info:
        volume.write_bytes(("big.bin",), b"x" * (1024 * 1024))
    assert "no space left" in info.value.msg and os.listdir(str(tiny)) == []


def test_errno_of_a_full_disk_is_described(tmp_path, monkeypatch):
    """The preflight can be wrong (another writer): a write hitting ENOSPC still says what to do."""
    volume = LocalVolume(str(tmp_path))

    def chunks():
        yield b"x"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SmsFileError) as info:
        volume.write(("f",), chunks())
    assert "no space left on the device holding %s" % (tmp_path / "f") in info.value.msg
    assert os.listdir(str(tmp_path)) == []
