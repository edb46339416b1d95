"""plugins/module_utils/sms_replace: the one replacement engine, tested against its contract on disk.

A run backs every original up once (journal first), replaces atomically and
verifies; a failure half-way puts every byte back and leaves no backup or
journal entry of its own; the reverse path puts the original back from its
backup, verified, and retires the journal; the preflight refuses before
anything changes; a dead run's temporary files are removed.
"""

import hashlib
import json
import os

import pytest

from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import LocalVolume, PathRefused, SmsFileError
from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
    BACKUP,
    REMOVE,
    RESTORE,
    WRITE,
    Change,
    Replacement,
    ReplaceFailed,
    find_current,
    restore_change,
)

OLD = 898516800
NEW = OLD + 86400
BIN = ("BIN",)
STATE = ("Hotfix", "Q216552")


def put(path, data, mtime=OLD):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as handle:
        handle.write(data)
    os.utime(str(path), (mtime, mtime))


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def sha(data):
    return hashlib.sha256(data).hexdigest()


class World:
    def __init__(self, tmp):
        self.root = tmp / "drive"
        self.src = tmp / "payload"
        put(self.root / "BIN" / "SMSRUN32.EXE", b"old smsrun32")
        put(self.root / "BIN" / "other.dll", b"old other")
        put(self.src / "Smsrun32.exe", b"new smsrun32", mtime=NEW)
        put(self.src / "new.dll", b"new dll", mtime=NEW)
        put(self.src / "other.dll", b"new other", mtime=NEW)
        self.drive = LocalVolume(str(self.root))
        self.payload = LocalVolume(str(self.src))
        self.journal = BackupJournal(self.drive, STATE)

    def change(self, name):
        current, before = find_current(self.drive, BIN, name)
        data = read(self.src / name)
        return Change(
            group="BIN",
            name=name,
            parts=current or BIN + (name,),
            current=current,
            before_sha256=before,
            after_sha256=sha(data),
            source=self.payload,
            source_parts=(name,),
            mtime=NEW,
            size=len(data),
        )

    def engine(self, record=True):
        return Replacement(
            self.drive, self.journal, temp_places=[(self.drive, BIN, False), (self.drive, STATE, True)], record=record
        )

    def state(self):
        return {
            rel: read(os.path.join(top, name))
            for top, _dirs, names in os.walk(str(self.root))
            for name in names
            for rel in [os.path.relpath(os.path.join(top, name), str(self.root))]
        }


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_change_defaults_to_changed_when_the_hashes_differ():
    assert Change(group="BIN", name="a", parts=["BIN", "a"], before_sha256="1", after_sha256="2").changed
    same = Change(group="BIN", name="a", parts=("BIN", "a"), before_sha256="1", after_sha256="1")
    assert not same.changed and same.parts == ("BIN", "a") and same.folder == ("BIN",) and same.key == "BIN/a"
    with pytest.raises(ValueError):
        Change(group="BIN", name="a", parts=("BIN", "a"), action="chmod")


def test_a_run_backs_up_once_replaces_keeps_the_disk_name_and_verifies(world):
    changes = [world.change("Smsrun32.exe"), world.change("new.dll")]
    engine = world.engine()
    engine.preflight(changes)
    engine.run(changes, pending={"bump": "2026-12-08T00:00:00Z"})
    assert read(world.root / "BIN" / "SMSRUN32.EXE") == b"new smsrun32"
    assert os.stat(str(world.root / "BIN" / "SMSRUN32.EXE")).st_mtime == NEW
    assert read(world.root / "BIN" / "new.dll") == b"new dll"
    journal = json.loads(read(world.root / "Hotfix" / "Q216552" / "journal.json"))
    assert journal["pending"] == {"bump": "2026-12-08T00:00:00Z"}
    assert journal["entries"]["BIN/smsrun32.exe"]["sha256"] == sha(b"old smsrun32")
    assert journal["entries"]["BIN/new.dll"] == dict(journal["entries"]["BIN/new.dll"], existed=False, backup=None)
    assert read(world.root / "Hotfix" / "Q216552" / "backup" / "BIN" / "SMSRUN32.EXE") == b"old smsrun32"
    assert changes[0].backup == str(world.root / "Hotfix" / "Q216552" / "backup" / "BIN" / "SMSRUN32.EXE")
    # A second run keeps the first backup (never the hotfix's own file).
    put(world.src / "Smsrun32.exe", b"newer", mtime=NEW)
    again = world.change("Smsrun32.exe")
    world.engine().run([again])
    assert read(world.root / "Hotfix" / "Q216552" / "backup" / "BIN" / "SMSRUN32.EXE") == b"old smsrun32"


def test_a_failure_half_way_puts_every_byte_back_and_drops_its_backups(world, monkeypatch):
    before = world.state()
    changes = [world.change("Smsrun32.exe"), world.change("other.dll")]
    real = LocalVolume.copy_from

    def fail_second(self, source, src_parts, parts, **kw):
        if tuple(parts) == ("BIN", "other.dll"):
            raise SmsFileError("disk full at %s" % self.path(parts), path=self.path(parts))
        return real(self, source, src_parts, parts, **kw)

    monkeypatch.setattr(LocalVolume, "copy_from", fail_second)
    with pytest.raises(ReplaceFailed) as info:
        world.engine().run(changes)
    assert world.state() == before
    assert not (world.root / "Hotfix").exists()
    assert info.value.msg.startswith("disk full at") and info.value.problems == []
    assert info.value.restored == [str(world.root / "BIN" / "SMSRUN32.EXE")]
    assert info.value.facts() == {"restored": info.value.restored}


def test_then_runs_in_the_same_transaction(world):
    before = world.state()
    ini = Change(group="INI", name="SMS.INI", parts=("SMS.INI",), current=None, action=WRITE, data=b"x")

    def then(tx):
        tx.remember(world.drive, None, ("made.txt",))
        world.drive.write_bytes(("made.txt",), b"made")
        raise SmsFileError("the bump failed")

    with pytest.raises(ReplaceFailed) as info:
        world.engine().run([world.change("Smsrun32.exe"), ini], then=then)
    assert world.state() == before and info.value.msg == "the bump failed"


def test_the_reverse_path_restores_verified_removes_what_was_added_and_retires(world):
    forward = [world.change("Smsrun32.exe"), world.change("new.dll")]
    world.engine().run(forward)
    journal = BackupJournal(world.drive, STATE)
    changes = [
        restore_change(world.drive, journal, BIN, "BIN", entry) for _key, entry in sorted(journal.entries().items())
    ]
    assert [(c.action, c.changed) for c in changes] == [(REMOVE, True), (RESTORE, True)]
    engine = Replacement(world.drive, journal, record=False)
    engine.preflight(changes)
    engine.run(changes)
    assert read(world.root / "BIN" / "SMSRUN32.EXE") == b"old smsrun32"
    assert os.stat(str(world.root / "BIN" / "SMSRUN32.EXE")).st_mtime == OLD
    assert not (world.root / "BIN" / "new.dll").exists()
    retired = engine.retire([c.key for c in changes])
    assert retired and not (world.root / "Hotfix" / "Q216552" / "journal.json").exists()
    assert os.path.isfile(os.path.join(retired, "backup", "BIN", "SMSRUN32.EXE"))


def test_the_reverse_path_refuses_a_damaged_backup_before_anything(world):
    world.engine().run([world.change("Smsrun32.exe")])
    put(world.root / "Hotfix" / "Q216552" / "backup" / "BIN" / "SMSRUN32.EXE", b"tampered")
    journal = BackupJournal(world.drive, STATE)
    with pytest.raises(SmsFileError) as info:
        restore_change(world.drive, journal, BIN, "BIN", journal.entry("BIN", "Smsrun32.exe"))
    assert "cannot be trusted" in info.value.msg


def test_restore_puts_the_original_name_back(world):
    world.engine().run([world.change("Smsrun32.exe")])
    os.rename(str(world.root / "BIN" / "SMSRUN32.EXE"), str(world.root / "BIN" / "smsrun32.exe"))
    journal = BackupJournal(world.drive, STATE)
    change = restore_change(world.drive, journal, BIN, "BIN", journal.entry("BIN", "SMSRUN32.EXE"))
    Replacement(world.drive, journal, record=False).run([change])
    assert sorted(os.listdir(str(world.root / "BIN"))) == ["SMSRUN32.EXE", "other.dll"]
    assert read(world.root / "BIN" / "SMSRUN32.EXE") == b"old smsrun32"


def test_preflight_refuses_a_read_only_folder_before_anything(world, monkeypatch):
    before = world.state()
    monkeypatch.setattr(LocalVolume, "writable", lambda self, parts=(): tuple(parts) != BIN)
    with pytest.raises(SmsFileError) as info:
        world.engine().preflight([world.change("Smsrun32.exe")])
    assert "read-only" in info.value.msg and info.value.path == str(world.root / "BIN")
    assert world.state() == before


def test_preflight_counts_the_backups_and_the_journal(world, monkeypatch):
    seen = []
    monkeypatch.setattr(
        "ansible_collections.sms.hotfix.plugins.module_utils.sms_replace.check_free_space",
        lambda needs: seen.extend((v.path(p), n) for v, p, n in needs),
    )
    ini = Change(
        group="INI",
        name="SMS.INI",
        parts=("SMS.INI",),
        current=("SMS.INI",),
        action=BACKUP,
        before_sha256="1",
        after_sha256="2",
    )
    put(world.root / "SMS.INI", b"[SMS]\r\n")
    world.engine().preflight([world.change("Smsrun32.exe"), ini])
    assert (str(world.root / "BIN"), len(b"new smsrun32")) in seen
    assert (str(world.root), len(b"old smsrun32")) in seen and (str(world.root), len(b"[SMS]\r\n")) in seen
    assert (str(world.root), 64 * 1024) in seen


def test_a_dead_runs_temporary_files_are_found_and_removed(world):
    dead = world.root / "BIN" / ".sms-tmp-999999999-0123abcd-SMSRUN32.EXE"
    put(dead, b"half")
    engine = world.engine()
    assert engine.stale_paths() == [str(dead)]
    assert dead.exists()  # planning never removes
    engine.run([])
    assert not dead.exists()


def test_find_current_refuses_a_link(world):
    os.symlink("/etc/passwd", str(world.root / "BIN" / "link.dll"))
    with pytest.raises(PathRefused):
        find_current(world.drive, BIN, "LINK.DLL")
    os.mkdir(str(world.root / "BIN" / "dir.dll"))
    with pytest.raises(SmsFileError) as info:
        find_current(world.drive, BIN, "dir.dll")
    assert info.value.msg == "%s is not a file; remove it or rename it and run again" % (world.root / "BIN" / "dir.dll")
