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
