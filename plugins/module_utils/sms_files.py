# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File primitives shared by the rollout modules (run on the managed host).

Windows semantics are kept on any filesystem: names are matched
case-insensitively and a replaced file keeps the name it had on disk. Nothing
is ever written in place: every write goes to a temporary file in the target's
own folder, is flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import stat
import tempfile

CHUNK = 1024 * 1024


class SmsFileError(Exception):
    """A file operation failed; the message names the path and the cause."""

    def __init__(self, msg, path=None, **facts):
        super().__init__(msg)
        self.msg = msg
        self.path = path
        self.facts = facts


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def iso_utc(epoch):
    stamp = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text):
    """Epoch seconds of an ISO-8601 date; a date without zone is UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    stamp = datetime.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def find_ci(directory, name):
    """Path of the entry of `directory` named `name`, ignoring case, or None.

    Two entries differing only in case cannot exist on the real hosts; if a
    POSIX twin has them, the state is ambiguous and we refuse to guess.
    """
    wanted = name.lower()
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return None
    found = [entry for entry in entries if entry.lower() == wanted]
    if len(found) > 1:
        raise SmsFileError(
            "%s holds %s, which differ only in case; keep one of them and run again"
            % (directory, " and ".join(sorted(found))),
            path=directory,
        )
    return os.path.join(directory, found[0]) if found else None


def file_info(path):
    """Size, date and SHA-256 of a file, or None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return {
        "path": path,
        "name": os.path.basename(path),
        "size": st.st_size,
        "mtime": st.st_mtime,
        "date": iso_utc(st.st_mtime),
        "sha256": sha256_file(path),
    }


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _describe_os_error(exc, path):
    if exc.errno == errno.ENOSPC:
        return "no space left on the device holding %s: free space and run again" % path
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "cannot write in %s (%s): make it writable for the rollout account and run again" % (
            path, exc.strerror)
    return "cannot write %s: %s" % (path, exc.strerror or exc)


def atomic_write(dest, chunks, mtime=None, mode=None, expect_sha256=None):
    """Write `chunks` (an iterable of bytes) to `dest` atomically.

    Returns the SHA-256 of what was written. On any failure the target is
    untouched and the temporary file removed.
    """
    directory = os.path.dirname(dest) or "."
    digest = hashlib.sha256()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SmsFileError(_describe_os_error(exc, directory), path=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            for block in chunks:
                digest.update(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        written = digest.hexdigest()
        if expect_sha256 and written != expect_sha256:
            raise SmsFileError(
                "the copy for %s has SHA-256 %s, expected %s; the source changed while it was read"
                % (dest, written, expect_sha256), path=dest, expected=expect_sha256, found=written)
        if mode is None:
            try:
                mode = os.stat(dest).st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
        os.chmod(tmp, mode)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, dest)
    except OSError as exc:
        _remove_quietly(tmp)
        raise SmsFileError(_describe_os_error(exc, dest), path=dest)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)
    return written


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _read_chunks(path):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            yield block


def atomic_copy(src, dest, mtime=None, expect_sha256=None):
    """Copy `src` over `dest` atomically, then check the result on disk."""
    if mtime is None:
        mtime = os.stat(src).st_mtime
    written = atomic_write(dest, _read_chunks(src), mtime=mtime, expect_sha256=expect_sha256)
    found = sha256_file(dest)
    if found != written:
        raise SmsFileError(
            "%s reads back with SHA-256 %s after the copy, expected %s; check the disk" % (dest, found, written),
            path=dest, expected=written, found=found)
    return found


def atomic_write_bytes(dest, data, mtime=None):
    return atomic_write(dest, [data], mtime=mtime)


def read_json(path, default=None):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise SmsFileError(
            "%s is not valid JSON (%s); restore it from the backup area or remove it if it holds nothing"
            % (path, exc), path=path)


def write_json(path, data):
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    atomic_write_bytes(path, payload)


def ensure_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise SmsFileError(_describe_os_error(exc, path), path=path)


class BackupJournal:
    """Originals kept once per hotfix, with a journal to restore them.

    `root` is the hotfix's state folder (`.../Hotfix/<KB>`). Originals go to
    `root/backup/<group>/<name as it was on disk>`, and `root/journal.json`
    records, per key (`<group>/<lower-case name>`), the original name, size,
    date and SHA-256 — or that there was no original. An entry, once written,
    is never replaced: a later run must not back up the hotfix's own file.
    """

    def __init__(self, root):
        self.root = root
        self.path = os.path.join(root, "journal.json")
        self._data = None

    @property
    def data(self):
        if self._data is None:
            self._data = read_json(self.path, default={"version": 1, "entries": {}})
        return self._data

    @staticmethod
    def key(group, name):
        return "%s/%s" % (group, name.lower())

    def entry(self, group, name):
        return self.data["entries"].get(self.key(group, name))

    def entries(self):
        return dict(self.data["entries"])

    def backup_path(self, entry):
        return os.path.join(self.root, entry["backup"]) if entry.get("backup") else None

    def record(self, group, name, current_path):
        """Back up `current_path` (or its absence) once; return the entry."""
        existing = self.entry(group, name)
        if existing is not None:
            return existing
        if current_path is None:
            entry = {"name": name, "existed": False, "backup": None}
        else:
            info = file_info(current_path)
            relative = os.path.join("backup", group, info["name"])
            target = os.path.join(self.root, relative)
            ensure_dir(os.path.dirname(target))
            atomic_copy(current_path, target, mtime=info["mtime"], expect_sha256=info["sha256"])
            entry = {
                "name": info["name"], "existed": True, "backup": relative,
                "size": info["size"], "date": info["date"], "mtime": info["mtime"],
                "sha256": info["sha256"],
            }
        entry["recorded"] = iso_utc(_now())
        self.data["entries"][self.key(group, name)] = entry
        ensure_dir(self.root)
        write_json(self.path, self.data)
        return entry

    def retire(self):
        """Set the journal and its backups aside after a completed rollback.

        They move to `root/retired/<UTC stamp>/`, so the next rollout backs up
        the originals it finds then (a service pack may have changed them)
        instead of trusting this journal. The journal moves first: a crash
        in between leaves backups no journal names, never a journal naming
        backups that are gone. Returns the new folder, or None.
        """
        if not os.path.exists(self.path):
            return None
        import time
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(_now()))
        target = os.path.join(self.root, "retired", stamp)
        suffix = 1
        while os.path.exists(target):
            suffix += 1
            target = os.path.join(self.root, "retired", "%s-%d" % (stamp, suffix))
        ensure_dir(target)
        try:
            os.rename(self.path, os.path.join(target, "journal.json"))
            backups = os.path.join(self.root, "backup")
            if os.path.isdir(backups):
                os.rename(backups, os.path.join(target, "backup"))
        except OSError as exc:
            raise SmsFileError(_describe_os_error(exc, self.root), path=self.root)
        self._data = None
        return target

    def retire_entries(self, keys):
        """Set aside the entries `keys` (and their backups) after a rollback of part of the journal.

        Like retire(), for a rollback limited to some platforms: the entries
        go to `root/retired/<UTC stamp>/journal.json` and their backups under
        it, the journal keeps the others. When `keys` covers every entry, the
        whole journal is retired. The journal is rewritten before the backups
        move, so it never names a backup that is gone. Returns the new folder,
        or None when none of `keys` is in the journal.
        """
        entries = self.data["entries"]
        keys = [key for key in keys if key in entries]
        if not keys:
            return None
        if set(keys) == set(entries):
            return self.retire()
        target = self._retired_folder()
        moved = {key: entries[key] for key in keys}
        try:
            ensure_dir(target)
            write_json(os.path.join(target, "journal.json"), dict(self.data, entries=moved))
            remaining = dict(self.data, entries={k: v for k, v in entries.items() if k not in moved})
            write_json(self.path, remaining)
            self._data = remaining
            for entry in moved.values():
                source = self.backup_path(entry)
                if source and os.path.lexists(source):
                    dest = os.path.join(target, entry["backup"])
                    ensure_dir(os.path.dirname(dest))
                    os.rename(source, dest)
                    folder = os.path.dirname(source)
                    if not os.listdir(folder):
                        os.rmdir(folder)
        except OSError as exc:
            raise SmsFileError(_describe_os_error(exc, self.root), path=self.root)
        return target

    def _retired_folder(self):
        import time
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(_now()))
        target = os.path.join(self.root, "retired", stamp)
        suffix = 1
        while os.path.exists(target):
            suffix += 1
            target = os.path.join(self.root, "retired", "%s-%d" % (stamp, suffix))
        return target

    def verify(self, entry):
        """Raise unless the backup of `entry` is intact."""
        if not entry.get("existed"):
            return
        path = self.backup_path(entry)
        if not os.path.isfile(path):
            raise SmsFileError("the backup %s is missing; the original cannot be restored from it" % path, path=path)
        found = sha256_file(path)
        if found != entry["sha256"]:
            raise SmsFileError(
                "the backup %s has SHA-256 %s but the journal recorded %s; it cannot be trusted"
                % (path, found, entry["sha256"]), path=path, expected=entry["sha256"], found=found)


def _now():
    import time
    return time.time()


# -- checks before a change, and undoing a change that failed half-way -------------------------------
def existing_ancestor(path):
    """`path`, or its nearest parent that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def missing_dirs(path):
    """Folders from `path` up that do not exist yet, deepest first."""
    out = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        out.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return out


def check_writable(folders, files=()):
    """Raise unless every folder of `folders` and file of `files` is writable.

    A read-only mount fails this check even for root (os.access reports EROFS).
    """
    for folder in sorted(set(folders)):
        if not os.access(folder, os.W_OK):
            raise SmsFileError(
                "cannot write in %s: it is read-only (or not writable for this account); make it writable "
                "and run again" % folder, path=folder)
    for path in sorted(set(files)):
        if not os.access(path, os.W_OK):
            raise SmsFileError(
                "cannot change %s: it is read-only (or not writable for this account); make it writable "
                "and run again" % path, path=path)


def check_free_space(needs):
    """`needs`: (existing folder, bytes) pairs, summed per filesystem; raise when one lacks the room.

    Each file is rounded up to whole blocks, plus one block for its folder entry.
    """
    by_dev = {}
    for folder, size in needs:
        st = os.statvfs(folder)
        dev = os.stat(folder).st_dev
        block = st.f_frsize or 4096
        rounded = ((size + block - 1) // block) * block + block
        slot = by_dev.setdefault(dev, {"folder": folder, "need": 0, "have": st.f_bavail * st.f_frsize})
        slot["need"] += rounded
    for slot in by_dev.values():
        if slot["need"] > slot["have"]:
            raise SmsFileError(
                "not enough free space on the filesystem of %s: need %d bytes, have %d; free some space "
                "and run again" % (slot["folder"], slot["need"], slot["have"]),
                path=slot["folder"], need=slot["need"], have=slot["have"])


class Transaction:
    """What a run changes, so that a failure half-way can put everything back as it was.

    Before a file is replaced, renamed or removed, `remember_file` keeps its
    bytes, mode and date (or that it did not exist). Backups are taken through
    `record`, which notes the backups and journal entries this run creates.
    `rollback()` puts the files back atomically (temporary file + rename),
    removes this run's backups, restores the journal's bytes and removes the
    folders the run created, if empty.
    """

    def __init__(self, journal=None, folders=()):
        self.journal = journal
        self.journal_bytes = _read_or_none(journal.path) if journal is not None else None
        self.journal_mtime = (os.stat(journal.path).st_mtime
                              if self.journal_bytes is not None else None)
        # Folders this run may create (deepest first), removed again if left empty.
        self.new_dirs = []
        for folder in folders:
            for path in missing_dirs(folder):
                if path not in self.new_dirs:
                    self.new_dirs.append(path)
        self.new_dirs.sort(key=lambda path: path.count(os.sep), reverse=True)
        self.new_backups = []
        self.files = []  # (path before, path after, bytes or None, mtime, mode)

    def record(self, group, name, current_path):
        """`journal.record`, noting the backup it creates (before it exists, so a half-made one goes too)."""
        if self.journal.entry(group, name) is None and current_path is not None:
            backup = os.path.join(self.journal.root, "backup", group, os.path.basename(current_path))
            if not os.path.lexists(backup) and backup not in self.new_backups:
                self.new_backups.append(backup)
        return self.journal.record(group, name, current_path)

    def remember_file(self, path_before, path_after=None):
        """Keep `path_before` as it is now (None: it does not exist), to be put back at `path_after`'s place."""
        if path_after is None:
            path_after = path_before
        if path_before is None:
            self.files.append((None, path_after, None, None, None))
            return
        st = os.stat(path_before)
        with open(path_before, "rb") as handle:
            data = handle.read()
        self.files.append((path_before, path_after, data, st.st_mtime, stat.S_IMODE(st.st_mode)))

    def rollback(self):
        """Undo everything; returns (paths put back or removed, problems)."""
        restored, problems = [], []
        for before, after, data, mtime, mode in reversed(self.files):
            try:
                if before is None:
                    if os.path.lexists(after):
                        os.unlink(after)
                        restored.append(after)
                    continue
                if after != before and os.path.lexists(after):
                    os.rename(after, before)
                if _unchanged(before, data, mtime, mode):
                    continue  # the step failed before touching this file
                atomic_write(before, [data], mtime=mtime, mode=mode)
                restored.append(before)
            except (OSError, SmsFileError) as exc:
                problems.append("%s: %s" % (before or after, getattr(exc, "msg", None) or exc))
        if self.journal is None:
            return restored, problems
        try:
            for path in self.new_backups:
                if os.path.lexists(path):
                    os.unlink(path)
            if self.journal_bytes is None:
                if os.path.lexists(self.journal.path):
                    os.unlink(self.journal.path)
            elif _read_or_none(self.journal.path) != self.journal_bytes:
                atomic_write_bytes(self.journal.path, self.journal_bytes, mtime=self.journal_mtime)
            for folder in self.new_dirs:
                if os.path.isdir(folder) and not os.listdir(folder):
                    os.rmdir(folder)
        except (OSError, SmsFileError) as exc:
            problems.append("state folder %s: %s" % (self.journal.root, getattr(exc, "msg", None) or exc))
        self.journal._data = None
        return restored, problems


def _unchanged(path, data, mtime, mode):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_mtime == mtime and stat.S_IMODE(st.st_mode) == mode and st.st_size == len(data)
            and _read_or_none(path) == data)


def _read_or_none(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
