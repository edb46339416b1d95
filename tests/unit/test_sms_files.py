"""plugins/module_utils/sms_files: hashing, case-insensitive lookup, atomic
writes (target untouched and no temp file left on failure), backup journal."""

import errno
import hashlib
import json
import os
import subprocess

import pytest

from sms_testlib import write

from ansible_collections.sms.hotfix.plugins.module_utils import sms_files
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    BackupJournal,
    SmsFileError,
    atomic_copy,
    atomic_write,
    atomic_write_bytes,
    find_ci,
    file_info,
    iso_utc,
    parse_iso_utc,
    read_json,
    sha256_file,
    write_json,
)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_sha256_of_a_large_file(tmp_path):
    data = os.urandom(3 * sms_files.CHUNK + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_dates_round_trip():
    assert iso_utc(916356060) == "1999-01-14T23:21:00Z"
    assert parse_iso_utc("1999-01-14T23:21:00Z") == 916356060
    assert parse_iso_utc("1999-01-14T23:21:00") == 916356060
    assert parse_iso_utc("1999-01-15T00:21:00+01:00") == 916356060


def test_find_ci(tmp_path):
    write(str(tmp_path / "SMSRUN32.EXE"), b"x")
    assert find_ci(str(tmp_path), "Smsrun32.exe") == str(tmp_path / "SMSRUN32.EXE")
    assert find_ci(str(tmp_path), "smssrv32.exe") is None
    assert find_ci(str(tmp_path / "missing"), "x") is None


def test_find_ci_refuses_names_differing_only_in_case(tmp_path):
    write(str(tmp_path / "SMSRUN32.EXE"), b"x")
    write(str(tmp_path / "Smsrun32.exe"), b"y")
    with pytest.raises(SmsFileError) as info:
        find_ci(str(tmp_path), "smsrun32.exe")
    assert "SMSRUN32.EXE and Smsrun32.exe" in info.value.msg and str(tmp_path) in info.value.msg


def test_file_info(tmp_path):
    path = str(tmp_path / "a.exe")
    write(path, b"abc", mtime=916356060)
    info = file_info(path)
    assert info["size"] == 3 and info["date"] == "1999-01-14T23:21:00Z" and info["name"] == "a.exe"
    assert info["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert file_info(str(tmp_path / "none")) is None


def test_atomic_write_replaces_keeps_mode_and_sets_date(tmp_path):
    path = str(tmp_path / "f.exe")
    write(path, b"old")
    os.chmod(path, 0o600)
    inode = os.stat(path).st_ino
    digest = atomic_write(path, [b"new ", b"content"], mtime=916356060)
    assert read(path) == b"new content" and digest == hashlib.sha256(b"new content").hexdigest()
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600 and st.st_mtime == 916356060
    assert st.st_ino != inode, "a new file renamed over the old one, never written in place"
    assert os.listdir(str(tmp_path)) == ["f.exe"]


def test_atomic_write_failure_leaves_target_and_no_temp(tmp_path):
    path = str(tmp_path / "f.exe")
    write(path, b"old", mtime=916356060)

    def chunks():
        yield b"half"
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(SmsFileError) as info:
        atomic_write(path, chunks())
    assert "no space left" in info.value.msg and path in info.value.msg
    assert read(path) == b"old" and os.stat(path).st_mtime == 916356060
    assert os.listdir(str(tmp_path)) == ["f.exe"]


def test_atomic_write_checks_expected_hash(tmp_path):
    path = str(tmp_path / "f.exe")
    write(path, b"old")
    with pytest.raises(SmsFileError) as info:
        atomic_write(path, [b"data"], expect_sha256="0" * 64)
    assert "expected " + "0" * 64 in info.value.msg
    assert read(path) == b"old" and os.listdir(str(tmp_path)) == ["f.exe"]


def test_atomic_write_into_a_missing_folder_names_it(tmp_path):
    folder = str(tmp_path / "missing")
    with pytest.raises(SmsFileError) as info:
        atomic_write_bytes(os.path.join(folder, "f"), b"x")
    assert folder in info.value.msg


def test_atomic_write_into_a_read_only_folder(tmp_path):
    """A read-only bind mount as root (permission bits do not stop root), chmod otherwise."""
    folder = str(tmp_path / "ro")
    path = os.path.join(folder, "f")
    write(path, b"old")
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", folder, folder], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True)
            with pytest.raises(SmsFileError) as info:
                atomic_write_bytes(path, b"x")
        finally:
            subprocess.run(["umount", folder], check=False)
    else:
        os.chmod(folder, 0o555)
        try:
            with pytest.raises(SmsFileError) as info:
                atomic_write_bytes(path, b"x")
        finally:
            os.chmod(folder, 0o755)
    assert "cannot write in" in info.value.msg and folder in info.value.msg
    assert read(path) == b"old" and os.listdir(folder) == ["f"]


def test_atomic_copy(tmp_path):
    src = str(tmp_path / "src")
    write(src, b"payload", mtime=916356060)
    dest = str(tmp_path / "dest")
    digest = atomic_copy(src, dest)
    assert read(dest) == b"payload" and digest == hashlib.sha256(b"payload").hexdigest()
    assert os.stat(dest).st_mtime == 916356060
    with pytest.raises(SmsFileError):
        atomic_copy(src, dest, expect_sha256="1" * 64, mtime=1)
    assert os.stat(dest).st_mtime == 916356060


def test_json_helpers(tmp_path):
    path = str(tmp_path / "j.json")
    assert read_json(path, default={"x": 1}) == {"x": 1}
    write_json(path, {"b": 1, "a": [1, 2]})
    assert read_json(path) == {"a": [1, 2], "b": 1}
    assert read(path).endswith(b"\n")
    write(path, b"{broken")
    with pytest.raises(SmsFileError) as info:
        read_json(path)
    assert path in info.value.msg and "not valid JSON" in info.value.msg


def test_backup_journal_records_once(tmp_path):
    original = str(tmp_path / "site" / "SMSRUN32.EXE")
    write(original, b"original bytes", mtime=898516800)
    journal = BackupJournal(str(tmp_path / "state"))
    entry = journal.record("X86.bin", "Smsrun32.exe", original)
    assert entry["name"] == "SMSRUN32.EXE" and entry["existed"] is True and entry["size"] == 14
    assert entry["date"] == "1998-06-22T12:00:00Z"
    backup = journal.backup_path(entry)
    assert backup == str(tmp_path / "state" / "backup" / "X86.bin" / "SMSRUN32.EXE")
    assert read(backup) == b"original bytes" and os.stat(backup).st_mtime == 898516800

    write(original, b"the hotfix")
    again = journal.record("X86.bin", "SMSRUN32.exe", original)
    assert again == entry
    assert read(backup) == b"original bytes"
    fresh = BackupJournal(str(tmp_path / "state"))
    assert fresh.entry("X86.bin", "smsrun32.EXE")["sha256"] == entry["sha256"]
    stored = json.loads(read(fresh.path))
    assert list(stored["entries"]) == ["X86.bin/smsrun32.exe"]


def test_backup_journal_absent_original(tmp_path):
    journal = BackupJournal(str(tmp_path / "state"))
    entry = journal.record("Alpha.bin", "Smssrv32.exe", None)
    assert entry["existed"] is False and journal.backup_path(entry) is None
    journal.verify(entry)


def test_backup_journal_verify(tmp_path):
    original = str(tmp_path / "a.exe")
    write(original, b"original")
    journal = BackupJournal(str(tmp_path / "state"))
    entry = journal.record("X86.bin", "a.exe", original)
    journal.verify(entry)
    backup = journal.backup_path(entry)
    write(backup, b"originaX")
    with pytest.raises(SmsFileError) as info:
        journal.verify(entry)
    assert backup in info.value.msg and "cannot be trusted" in info.value.msg
    os.unlink(backup)
    with pytest.raises(SmsFileError) as info:
        journal.verify(entry)
    assert "missing" in info.value.msg


def test_retire_sets_the_journal_and_backups_aside_and_a_new_journal_starts(tmp_path):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal
    target = tmp_path / "X86.bin"
    target.mkdir()
    original = target / "Smsrun32.exe"
    original.write_bytes(b"original")
    journal = BackupJournal(str(tmp_path / "state"))
    first = journal.record("X86.bin", "Smsrun32.exe", str(original))
    assert (tmp_path / "state" / first["backup"]).read_bytes() == b"original"

    retired = journal.retire()
    assert retired and os.path.isfile(os.path.join(retired, "journal.json"))
    with open(os.path.join(retired, "backup", "X86.bin", "Smsrun32.exe"), "rb") as handle:
        assert handle.read() == b"original"
    assert not (tmp_path / "state" / "journal.json").exists()
    assert journal.entry("X86.bin", "Smsrun32.exe") is None
    # the next rollout backs up what it finds then
    original.write_bytes(b"service pack")
    second = journal.record("X86.bin", "Smsrun32.exe", str(original))
    assert (tmp_path / "state" / second["backup"]).read_bytes() == b"service pack"
    assert journal.retire() != retired
    assert BackupJournal(str(tmp_path / "nothing")).retire() is None


def test_retire_entries_sets_aside_only_those_entries(tmp_path):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal
    for group in ("X86.bin", "Alpha.bin"):
        (tmp_path / group).mkdir()
        (tmp_path / group / "Smsrun32.exe").write_bytes(b"original " + group.encode())
    journal = BackupJournal(str(tmp_path / "state"))
    journal.record("X86.bin", "Smsrun32.exe", str(tmp_path / "X86.bin" / "Smsrun32.exe"))
    journal.record("Alpha.bin", "Smsrun32.exe", str(tmp_path / "Alpha.bin" / "Smsrun32.exe"))
    journal.record("X86.bin", "New.dll", None)
    assert journal.retire_entries(["Mips.bin/x.exe"]) is None

    retired = journal.retire_entries(["X86.bin/smsrun32.exe", "X86.bin/new.dll"])
    kept = json.loads(read(journal.path))
    assert sorted(kept["entries"]) == ["Alpha.bin/smsrun32.exe"]
    assert sorted(json.loads(read(os.path.join(retired, "journal.json")))["entries"]) == [
        "X86.bin/new.dll", "X86.bin/smsrun32.exe"]
    assert read(os.path.join(retired, "backup", "X86.bin", "Smsrun32.exe")) == b"original X86.bin"
    assert not os.path.exists(str(tmp_path / "state" / "backup" / "X86.bin"))
    assert read(str(tmp_path / "state" / "backup" / "Alpha.bin" / "Smsrun32.exe")) == b"original Alpha.bin"
    assert journal.entry("X86.bin", "Smsrun32.exe") is None
    # the last entries: the whole journal goes
    last = journal.retire_entries(["Alpha.bin/smsrun32.exe"])
    assert last != retired and not os.path.exists(journal.path)
    assert read(os.path.join(last, "backup", "Alpha.bin", "Smsrun32.exe")) == b"original Alpha.bin"


def test_transaction_rollback_puts_everything_back(tmp_path):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, Transaction
    folder = tmp_path / "X86.bin"
    folder.mkdir()
    kept = folder / "Kept.exe"
    kept.write_bytes(b"kept")
    os.utime(str(kept), (898516800, 898516800))
    os.chmod(str(kept), 0o640)
    journal = BackupJournal(str(tmp_path / "Hotfix" / "Q216552"))
    txn = Transaction(journal, [os.path.join(journal.root, "backup", "X86.bin")])
    txn.record("X86.bin", "Kept.exe", str(kept))
    txn.record("X86.bin", "New.exe", None)
    txn.remember_file(str(kept))
    atomic_write_bytes(str(kept), b"hotfix", mtime=916356060)
    txn.remember_file(None, str(folder / "New.exe"))
    atomic_write_bytes(str(folder / "New.exe"), b"new")
    restored, problems = txn.rollback()
    assert problems == []
    assert sorted(restored) == sorted([str(kept), str(folder / "New.exe")])
    assert read(str(kept)) == b"kept"
    st = os.stat(str(kept))
    assert st.st_mtime == 898516800 and st.st_mode & 0o7777 == 0o640
    assert sorted(os.listdir(str(folder))) == ["Kept.exe"]
    # the backups and journal of this run are gone, and the folders it created
    assert not os.path.exists(str(tmp_path / "Hotfix"))
    assert journal.entries() == {}


def test_transaction_keeps_an_earlier_journal(tmp_path):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, Transaction
    (tmp_path / "a.exe").write_bytes(b"a")
    (tmp_path / "b.exe").write_bytes(b"b")
    journal = BackupJournal(str(tmp_path / "state"))
    journal.record("G", "a.exe", str(tmp_path / "a.exe"))
    before = read(journal.path)
    txn = Transaction(journal, [os.path.join(journal.root, "backup", "G")])
    txn.record("G", "b.exe", str(tmp_path / "b.exe"))
    assert txn.new_backups == [os.path.join(journal.root, "backup", "G", "b.exe")]
    txn.rollback()
    assert read(journal.path) == before
    assert sorted(os.listdir(os.path.join(journal.root, "backup", "G"))) == ["a.exe"]


def test_preflight_checks(tmp_path, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import check_free_space, check_writable, existing_ancestor, missing_dirs
    deep = tmp_path / "a" / "b"
    assert existing_ancestor(str(deep)) == str(tmp_path)
    assert missing_dirs(str(deep)) == [str(deep), str(tmp_path / "a")]
    check_writable([str(tmp_path)])
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(tmp_path))
    with pytest.raises(SmsFileError) as info:
        check_writable([str(tmp_path)])
    assert "cannot write in %s" % tmp_path in info.value.msg
    monkeypatch.undo()
    check_free_space([(str(tmp_path), 1024)])
    with pytest.raises(SmsFileError) as info:
        check_free_space([(str(tmp_path), 1 << 62)])
    assert "not enough free space" in info.value.msg and info.value.facts["need"] > info.value.facts["have"]
