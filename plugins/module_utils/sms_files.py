# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups, journals, checks before a change and undo, on top of sms_fs volumes.

Every file operation goes through a volume (module_utils/sms_fs.py), which
refuses links and paths that leave it; this module adds what the tiers share:
the backup journal kept once per hotfix, the preflight (writable folders,
free space) and the transaction that puts back what a failed run changed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from typing import Any, Dict, Tuple

from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import SmsFileError

# Room for a journal rewrite (its temporary copy next to the old one).
JOURNAL_ROOM = 64 * 1024


def iso_utc(epoch):
    stamp = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_json(volume, parts, default=None):
    data = volume.read_or_none(parts)
    if data is None:
        return default
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        path = volume.path(parts)
        raise SmsFileError(
            "%s is not valid JSON (%s); restore it from the backup area or remove it if it holds nothing" % (path, exc),
            path=path,
        )


def dump_json(data):
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_json(volume, parts, data):
    volume.write_bytes(parts, dump_json(data))


class BackupJournal:
    """Originals kept once per hotfix, with a journal to restore them.

    The state folder is `parts` of `volume` (`.../Hotfix/<KB>`). Originals go
    to `backup/<group>/<name as it was on disk>` there, and `journal.json`
    records, per key (`<group>/<lower-case name>`), the original name, size,
    date and SHA-256, or that there was no original. An entry, once written,
    is never replaced: a later run must not back up the hotfix's own file.
    The journal also keeps `pending` work (a System.map bump owed after
    files were replaced), so a run killed half-way is finished by the next.
    """

    def __init__(self, volume, parts):
        self.volume = volume
        self.parts = tuple(parts)
        self.root = volume.path(self.parts)
        self.file_parts = self.parts + ("journal.json",)
        self.path = volume.path(self.file_parts)
        self._data = None

    @property
    def data(self):
        if self._data is None:
            self._data = read_json(self.volume, self.file_parts, default={"version": 1, "entries": {}})
            if not isinstance(self._data, dict) or not isinstance(self._data.get("entries"), dict):
                raise SmsFileError(
                    "%s is not a backup journal (no 'entries'); restore it or move it aside" % self.path, path=self.path
                )
        return self._data

    def exists(self):
        return self.volume.entry(self.file_parts).kind == "file"

    @staticmethod
    def key(group, name):
        return "%s/%s" % (group, name.lower())

    def entry(self, group, name):
        return self.data["entries"].get(self.key(group, name))

    def entries(self):
        return dict(self.data["entries"])

    def backup_parts(self, entry):
        return self.parts + tuple(entry["backup"].split("/")) if entry.get("backup") else None

    def backup_path(self, entry):
        parts = self.backup_parts(entry)
        return self.volume.path(parts) if parts else None

    @property
    def pending(self):
        return dict(self.data.get("pending") or {})

    def set_pending(self, **flags):
        """Record (True) or clear (False/None) pending work durably; returns whether the journal changed."""
        pending = self.pending
        for key, value in flags.items():
            if value:
                pending[key] = value
            else:
                pending.pop(key, None)
        if pending == (self.data.get("pending") or {}):
            return False
        self.data["pending"] = pending
        if not pending:
            self.data.pop("pending")
        self.save()
        return True

    def save(self):
        self.volume.makedirs(self.parts)
        write_json(self.volume, self.file_parts, self.data)

    def backup(self, group, name, source, src_parts):
        """Copy the original `src_parts` of volume `source` to the backup area (no journal entry yet).

        The backup keeps the original's mode (and owner, where the rollout runs as root), as the
        journal records them, so that a restore gives back a 0600 file as 0600.
        """
        info = source.entry(src_parts)
        if info.kind != "file" or (info.nlink or 1) > 1:
            source.read(src_parts)  # a link, a hard link or anything but a file is refused, named, first
        relative = "backup/%s/%s" % (group, info.name)
        target = self.parts + ("backup", group, info.name)
        self.volume.makedirs(target[:-1])
        owner = (info.uid, info.gid) if info.uid is not None else None
        digest = self.volume.copy_from(source, src_parts, target, mtime=info.mtime, mode=info.mode, owner=owner)
        entry = {
            "name": info.name,
            "existed": True,
            "backup": relative,
            "size": info.size,
            "date": iso_utc(info.mtime),
            "mtime": info.mtime,
            "sha256": digest,
        }
        if info.mode is not None and source.kind == "local":
            entry["mode"] = "%04o" % info.mode
        if owner is not None:
            entry["uid"], entry["gid"] = owner
        return entry

    def restore(self, entry, volume, parts):
        """Copy the backup of `entry` over `parts` of `volume` with its date, mode and owner; verified."""
        mode = int(entry["mode"], 8) if entry.get("mode") and volume.kind == "local" else None
        owner = (entry["uid"], entry["gid"]) if entry.get("uid") is not None else None
        return volume.copy_from(
            self.volume,
            self.backup_parts(entry),
            parts,
            mtime=entry["mtime"],
            expect_sha256=entry["sha256"],
            mode=mode,
            owner=owner,
        )

    def record(self, group, name, source=None, src_parts=None, save=True):
        """Back up `src_parts` of `source` (None: no original) once; return the entry."""
        existing = self.entry(group, name)
        if existing is not None:
            return existing
        if src_parts is None:
            entry = {"name": name, "existed": False, "backup": None}
        else:
            entry = self.backup(group, name, source, src_parts)
        entry["recorded"] = iso_utc(time.time())
        self.data["entries"][self.key(group, name)] = entry
        if save:
            self.save()
        return entry

    def verify(self, entry):
        """Raise unless the backup of `entry` is intact."""
        if not entry.get("existed"):
            return
        parts = self.backup_parts(entry)
        path = self.volume.path(parts)
        if self.volume.entry(parts).kind != "file":
            raise SmsFileError("the backup %s is missing; the original cannot be restored from it" % path, path=path)
        found = self.volume.sha256(parts)
        if found != entry["sha256"]:
            raise SmsFileError(
                "the backup %s has SHA-256 %s but the journal recorded %s; it cannot be trusted"
                % (path, found, entry["sha256"]),
                path=path,
                expected=entry["sha256"],
                found=found,
            )

    def _retired_parts(self):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time()))
        name, suffix = stamp, 1
        while self.volume.entry(self.parts + ("retired", name)).exists:
            suffix += 1
            name = "%s-%d" % (stamp, suffix)
        return self.parts + ("retired", name)

    def retire(self):
        """Set the journal and its backups aside after a completed rollback.

        They move to `retired/<UTC stamp>/`, so the next rollout backs up the
        originals it finds then (a service pack may have changed them) instead
        of trusting this journal. The journal moves first: a crash in between
        leaves backups no journal names, never a journal naming backups that
        are gone. Returns the new folder's path, or None.
        """
        if not self.exists():
            return None
        target = self._retired_parts()
        self.volume.makedirs(target)
        self.volume.rename(self.file_parts, target + ("journal.json",))
        if self.volume.entry(self.parts + ("backup",)).kind == "dir":
            self.volume.rename(self.parts + ("backup",), target + ("backup",))
        self._data = None
        return self.volume.path(target)

    def retire_entries(self, keys):
        """Set aside the entries `keys` (and their backups) after a rollback of part of the journal.

        When `keys` covers every entry the whole journal is retired. The
        journal is rewritten before the backups move, so it never names a
        backup that is gone. Returns the new folder's path, or None.
        """
        entries = self.data["entries"]
        keys = [key for key in keys if key in entries]
        if not keys:
            return None
        if set(keys) == set(entries) and not self.pending:
            return self.retire()
        target = self._retired_parts()
        moved = {key: entries[key] for key in keys}
        self.volume.makedirs(target)
        write_json(self.volume, target + ("journal.json",), dict(self.data, entries=moved, pending={}))
        remaining = dict(self.data, entries={k: v for k, v in entries.items() if k not in moved})
        write_json(self.volume, self.file_parts, remaining)
        self._data = remaining
        for entry in moved.values():
            source = self.backup_parts(entry)
            if source and self.volume.entry(source).exists:
                dest = target + tuple(entry["backup"].split("/"))
                self.volume.makedirs(dest[:-1])
                self.volume.rename(source, dest)
                self.volume.rmdir(source[:-1])
        return self.volume.path(target)


# -- checks before a change -----------------------------------------------------------------------
def check_writable(volume, folders=(), files=()):
    """Raise unless every existing folder of `folders` and file of `files` (parts of `volume`) is writable.

    A read-only mount or an immutable file fails this even for root.
    """
    for parts in sorted(set(tuple(f) for f in folders)) + sorted(set(tuple(f) for f in files)):
        if parts and volume.entry(parts).kind is None:
            path = volume.path(parts)
            raise SmsFileError("cannot write in %s: it does not exist" % path, path=path, missing=True)
    for parts in sorted(set(tuple(f) for f in folders)):
        if not volume.writable(parts):
            path = volume.path(parts) if parts or volume.entry(()).exists else volume._top_or_parent()
            raise SmsFileError(
                "cannot write in %s: it is read-only (or not writable for this account); make it "
                "writable and run again" % path,
                path=path,
            )
    for parts in sorted(set(tuple(f) for f in files)):
        if not volume.writable(parts):
            path = volume.path(parts)
            raise SmsFileError(
                "cannot change %s: it is read-only (or not writable for this account); make it "
                "writable and run again" % path,
                path=path,
            )


def check_new_folders(volume, folders):
    """For folders that may not exist yet: their nearest existing parent must be writable."""
    check_writable(volume, [volume.existing(parts) for parts in folders])


def check_free_space(needs):
    """`needs`: (volume, existing folder parts, bytes); summed per file system, raise when one lacks room.

    Each file is rounded up to whole blocks, plus one block for its folder entry.
    """
    by_dev: Dict[Tuple[str, Any], Dict[str, Any]] = {}
    for volume, parts, size in needs:
        dev, have, block = volume.free_bytes(parts)
        rounded = ((size + block - 1) // block) * block + block
        slot = by_dev.setdefault((volume.kind, dev), {"path": volume.path(parts), "need": 0, "have": have})
        slot["need"] += rounded
    for slot in by_dev.values():
        if slot["need"] > slot["have"]:
            raise SmsFileError(
                "not enough free space on the filesystem of %s: need %d bytes, have %d; free some space "
                "and run again" % (slot["path"], slot["need"], slot["have"]),
                path=slot["path"],
                need=slot["need"],
                have=slot["have"],
            )


# -- undoing a change that failed half-way -----------------------------------------------------------
class Transaction:
    """What a run changes, so that a failure half-way can put everything back as it was.

    Before a file is replaced, renamed or removed, `remember` keeps its bytes,
    mode and date (or that it did not exist). Backups go through `record`,
    which notes the backups and journal entries this run creates; folders
    the run creates are noted with `made`. `rollback()` puts the files back
    atomically and checks each on disk; only then are this run's backups and
    journal entries for it removed. A file whose put-back failed keeps its
    backup and its journal entry (`owed`): the journal names what is owed,
    and the next run or a rollback finishes it.
    """

    def __init__(self, journal=None):
        self.journal = journal
        self.journal_bytes = None
        self.journal_mtime = None
        if journal is not None:
            self.journal_bytes = journal.volume.read_or_none(journal.file_parts)
            if self.journal_bytes is not None:
                self.journal_mtime = journal.volume.entry(journal.file_parts).mtime_ns
        self.new_dirs = []  # (volume, parts), in the order made
        self.new_backups = []
        self.new_keys = []  # journal keys this run adds
        self.sources = {}  # key -> (volume, parts) of the original it backs up
        self.files = []  # (volume, parts before, parts after, bytes or None, mtime, mode)
        self.owed = []  # after rollback(): {"path", "backup", "journal"} of each file not put back

    def made(self, volume, created):
        for parts in created:
            self.new_dirs.append((volume, tuple(parts)))

    def makedirs(self, volume, parts):
        if not volume.entry(()).exists:
            self.new_dirs.append((volume, None))  # the top itself (an operator's state folder), removed last
        self.made(volume, volume.makedirs(parts))

    def record(self, group, name, source=None, src_parts=None, save=True):
        """`journal.record`, noting the backup it creates (before it exists, so a half-made one goes too)."""
        journal = self.journal
        if journal.entry(group, name) is None:
            self.new_keys.append(journal.key(group, name))
            if src_parts is not None:
                self.sources[journal.key(group, name)] = (source, tuple(src_parts))
        if journal.entry(group, name) is None and src_parts is not None:
            backup = journal.parts + ("backup", group, src_parts[-1])
            if not journal.volume.entry(backup).exists and backup not in self.new_backups:
                self.new_backups.append(backup)
            self.makedirs(journal.volume, backup[:-1])
        elif journal.entry(group, name) is None:
            self.makedirs(journal.volume, journal.parts)
        return journal.record(group, name, source, src_parts, save=save)

    def remember(self, volume, parts_before, parts_after=None, snapshot=None):
        """Keep `parts_before` as it is now (None: nothing there), to be put back at `parts_after`'s place.

        `snapshot`: (bytes, Entry) already read, kept instead of reading again.
        """
        if parts_after is None:
            parts_after = parts_before
        if parts_before is None:
            self.files.append((volume, None, tuple(parts_after), None, None, None))
            return
        if snapshot is not None:
            data, info = snapshot
        else:
            info = volume.entry(parts_before)
            data = volume.read(parts_before)
        self.files.append((volume, tuple(parts_before), tuple(parts_after), data, info.mtime_ns, info.mode))

    def forget(self, volume, parts):
        """Drop the last `remember` of `parts` (its bytes were read again, and are remembered anew)."""
        for index in range(len(self.files) - 1, -1, -1):
            if self.files[index][0] is volume and self.files[index][1] == tuple(parts):
                del self.files[index]
                return

    def rollback(self):
        """Undo everything; returns (paths put back or removed, problems). `owed` names what was not."""
        restored, problems, failed = [], [], []
        for volume, before, after, data, mtime, mode in reversed(self.files):
            try:
                if before is None:
                    if volume.entry(after).exists:
                        volume.unlink(after)
                        restored.append(volume.path(after))
                    if volume.entry(after).exists:
                        raise SmsFileError("%s is still there after its removal" % volume.path(after))
                    continue
                if after != before and volume.entry(after).exists:
                    volume.rename(after, before)
                if _unchanged(volume, before, data, mtime, mode):
                    continue  # the step failed before touching this file
                volume.write_bytes(before, data, mtime_ns=mtime, mode=mode)
                found = volume.sha256(before)
                if found != hashlib.sha256(data).hexdigest():
                    raise SmsFileError(
                        "%s reads back with SHA-256 %s after it was put back, not the original's %s"
                        % (volume.path(before), found, hashlib.sha256(data).hexdigest())
                    )
                restored.append(volume.path(before))
            except (OSError, SmsFileError) as exc:
                problems.append("%s: %s" % (volume.path(before or after), getattr(exc, "msg", None) or exc))
                failed.append((volume, before or after))
        journal = self.journal
        if journal is not None:
            self._settle_journal(failed, problems)
        for volume, parts in reversed(self.new_dirs):
            try:
                if parts is None:
                    volume.rmdir_top()
                else:
                    volume.rmdir(parts)
            except (OSError, SmsFileError):
                pass
        return restored, problems

    def _settle_journal(self, failed, problems):
        """Backups and journal entries of this run: gone for files put back, kept for those that were not."""
        journal = self.journal
        failed_names = {parts[-1].lower() for _volume, parts in failed}
        entries = journal.data["entries"] if journal._data is not None else {}

        def is_owed(key):
            if key in self.sources:  # a backup of this very file
                volume, parts = self.sources[key]
                return any(volume is v and parts == p for v, p in failed)
            return key.split("/", 1)[1] in failed_names  # no original: matched by name, erring on keeping

        owed = [key for key in self.new_keys if key in entries and is_owed(key)]
        keep = {journal.backup_parts(entries[key]) for key in owed if entries[key].get("backup")}
        final = entries
        try:
            base: Dict[str, Any] = (
                json.loads(self.journal_bytes.decode("utf-8")) if self.journal_bytes else {"version": 1, "entries": {}}
            )
            final = base["entries"]
            if owed:
                # The journal is rewritten first, naming what is owed: never a backup it names is removed.
                base["entries"].update({key: entries[key] for key in owed})
                if (journal._data or {}).get("pending"):
                    base["pending"] = journal._data["pending"]
                write_json(journal.volume, journal.file_parts, base)
            elif self.journal_bytes is None:
                journal.volume.unlink(journal.file_parts)
            elif journal.volume.read_or_none(journal.file_parts) != self.journal_bytes:
                journal.volume.write_bytes(journal.file_parts, self.journal_bytes, mtime_ns=self.journal_mtime)
        except (OSError, SmsFileError, ValueError) as exc:
            problems.append("journal %s: %s" % (journal.path, getattr(exc, "msg", None) or exc))
            # The journal on disk still names every backup of this run: all of them stay.
            keep, final = set(self.new_backups), entries
        journal._data = None
        # Each step on its own: one backup that cannot go does not keep the others.
        for parts in self.new_backups:
            if parts in keep:
                continue
            try:
                journal.volume.unlink(parts)
            except (OSError, SmsFileError) as exc:
                problems.append("backup %s: %s" % (journal.volume.path(parts), getattr(exc, "msg", None) or exc))
        # What the journal now names for each file not put back: the next run or a rollback finishes it.
        self.owed = [
            {
                "key": key,
                "name": entry["name"],
                "backup": journal.backup_path(entry),
                "journal": journal.path,
                "existed": bool(entry.get("existed")),
            }
            for key, entry in sorted(final.items())
            if (key in owed) or (key not in self.new_keys and key.split("/", 1)[1] in failed_names)
        ]

    def owed_note(self):
        """What a failed put-back left owed, for the failure message ('' when nothing)."""
        if not self.owed:
            return ""
        kept = [
            ("the original of %s is kept in %s" % (item["name"], item["backup"]))
            if item["existed"]
            else "%s did not exist before (the journal records it)" % item["name"]
            for item in self.owed
        ]
        return (
            "; %s, and the journal %s still names it: fix the cause, then run again or roll back "
            "(state=absent) to finish" % ("; ".join(kept), self.owed[0]["journal"])
        )

    def owed_backups(self):
        return [item["backup"] for item in self.owed if item["backup"]]


def _unchanged(volume, parts, data, mtime_ns, mode):
    info = volume.entry(parts)
    if info.kind != "file":
        return False
    return info.mtime_ns == mtime_ns and info.mode == mode and info.size == len(data) and volume.read(parts) == data
