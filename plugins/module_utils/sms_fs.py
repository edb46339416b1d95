# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where the rollout's modules touch files on a managed host.

A *volume* is a folder tree the operator configured: a host's drive root
(`sms_drive_root`), an SMS root, a logon server's share as a client reaches
it, the hotfix's payload folder. Everything below its top is addressed by
*parts* (a tuple of plain names) and is untrusted: a client's disk may be
written by people who are not the operator, and a share may hold a link.

The rules, enforced here and nowhere else:
- a part is a plain name: no separator, no `..`, no drive, no NUL;
- no link is followed, anywhere: every folder is opened with O_NOFOLLOW
  relative to its parent's descriptor (so a folder swapped for a link while
  we work is refused too), every file is opened with O_NOFOLLOW, and an
  entry that is a symbolic link is refused with a message naming it;
- a Windows junction (a folder that is elsewhere) has a symbolic link as its
  stand-in here and is refused as one; mount points are not refused, as only
  the operator (root) can make them and a read-only mount is a normal setup;
- only regular files are read (a FIFO or device is refused, never opened
  for blocking reads), and only those with one link: a hard link is the same
  file under another name, perhaps outside every managed folder, which
  O_NOFOLLOW cannot see; it is refused like a symbolic link, named with its
  link count, before it is backed up, copied or served;
- a file is never written in place: a temporary file in the target's folder
  (created exclusively), flushed, then renamed over the target.

Names are matched case-insensitively where the caller asks (`find`,
`resolve`): Windows hosts have one file for SMSRUN32.EXE and Smsrun32.exe.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from typing import List, Tuple

# The SMB options and connection settings live in sms_smb_args (every module imports them from there).
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import is_unc

CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_BAD_CHARS = frozenset('/\\\0:*?"<>|')
# Temporary files are named after their writer, so a run killed half-way
# leaves files the next run can tell apart from a live writer's and remove.
TEMP_NAME = re.compile(r"^\.sms-tmp-(\d+)-[0-9a-f]{8}-")


def temp_name(name):
    """A temporary name in the target's folder, naming its writer (the target's name cut to stay short)."""
    return ".sms-tmp-%d-%s-%s" % (os.getpid(), os.urandom(4).hex(), name[:64])


def opened(chunks):
    """`chunks` with its first block already read: the source is opened (and refused) before a temporary
    file is made for the copy."""
    iterator = iter(chunks)
    first = next(iterator, None)

    def replay():
        if first is not None:
            yield first
        yield from iterator

    return replay()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` (the writer a temporary file names) still runs on this host."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class SmsFileError(Exception):
    """A file operation failed; the message names the path and the cause."""

    def __init__(self, msg, path=None, **facts):
        super().__init__(msg)
        self.msg = msg
        self.path = path
        self.facts = facts


class PathRefused(SmsFileError):
    """A path the rollout must not use: a link, a mount inside a volume, a name with a path in it."""


class FileChanged(SmsFileError):
    """The target of a write is no longer the file that was read (another writer changed it meanwhile)."""


def hard_link_refused(path, nlink):
    """The PathRefused for a regular file with more than one link (the same file under another name)."""
    return PathRefused(
        "%s has %d hard links: the same file is also reachable under another name, perhaps outside every folder "
        "the rollout manages, and the rollout never backs up, copies or serves such a file: replace it with a "
        "plain copy of its own (copy it, then move the copy over it) and run again. Refused" % (path, nlink),
        path=path,
        link=True,
        nlink=nlink,
    )


def identity(entry, data):
    """What says a file is still the one read: (inode, size, mtime_ns, SHA-256) of `entry` and its bytes."""
    return (entry.ino, entry.size, entry.mtime_ns, hashlib.sha256(data).hexdigest())


def changed_since(path, was, now, digest):
    """The FileChanged for `path` when (inode, size, mtime_ns) `now` or SHA-256 `digest` differ from `was`."""
    if now is not None and tuple(now) == tuple(was[:3]) and digest == was[3]:
        return None
    return FileChanged("%s was changed by another writer since the rollout read it" % path, path=path, changed=True)


def plain_name(name, what="name"):
    """`name` if it is one plain Windows-style name, else PathRefused."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or any(c in _BAD_CHARS for c in name)
        or name != name.strip()
        or name.endswith(".")
    ):
        raise PathRefused(
            "%s %r is not a plain file or folder name (no path, drive, '..' or wildcard); refused" % (what, name),
            path=None,
        )
    return name


def split_rel(text, what="path"):
    """Parts of a relative path given by the operator (`MS/SMS/BIN`, `MS\\SMS\\BIN`)."""
    parts = tuple(p for p in str(text).replace("\\", "/").split("/") if p and p != ".")
    if not parts and text not in ("", "."):
        raise PathRefused("%s %r names no folder" % (what, text))
    for part in parts:
        plain_name(part, "%s %r: part" % (what, text))
    return parts


def describe_os_error(exc, path):
    """What an OSError means for the operator, naming `path`."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return "no space left on the device holding %s: free space and run again" % path
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "cannot write in %s (%s): make it writable for the rollout account and run again" % (
            path,
            exc.strerror or exc,
        )
    return "cannot use %s: %s" % (path, getattr(exc, "strerror", None) or exc)


class Entry:
    """What is at a path: kind ('file', 'dir', 'link', 'other' or None when missing), size, mtime, mode."""

    __slots__ = (
        "name",
        "kind",
        "size",
        "mtime",
        "mtime_ns",
        "mode",
        "dev",
        "ino",
        "ctime_ns",
        "target",
        "nlink",
        "uid",
        "gid",
    )

    def __init__(self, name, st=None, target=None):
        self.name = name
        self.target = target
        self.nlink = self.uid = self.gid = None
        if st is None:
            self.kind, self.size, self.mtime, self.mtime_ns, self.mode = None, None, None, None, None
            self.dev = self.ino = self.ctime_ns = None
            return
        self.nlink, self.uid, self.gid = st.st_nlink, st.st_uid, st.st_gid
        if stat.S_ISLNK(st.st_mode):
            self.kind = "link"
        elif stat.S_ISREG(st.st_mode):
            self.kind = "file"
        elif stat.S_ISDIR(st.st_mode):
            self.kind = "dir"
        else:
            self.kind = "other"
        self.size, self.mtime, self.mtime_ns = st.st_size, st.st_mtime, st.st_mtime_ns
        self.mode, self.dev, self.ino, self.ctime_ns = stat.S_IMODE(st.st_mode), st.st_dev, st.st_ino, st.st_ctime_ns

    @classmethod
    def of(cls, name, kind, size=None, mtime_ns=None, mode=None, stamp=None, target=None, nlink=None):
        """An entry from what another file system reports (SMB)."""
        entry = cls(name, None, target)
        entry.kind, entry.size, entry.mode, entry.nlink = kind, size, mode, nlink
        if mtime_ns is not None:
            entry.mtime_ns, entry.mtime = mtime_ns, mtime_ns / 1e9
        if stamp is not None:
            entry.dev, entry.ino, entry.ctime_ns = stamp
        return entry

    @property
    def exists(self):
        return self.kind is not None

    def stamp(self):
        """Changes whenever the file's content may have changed (for hash caches)."""
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)


def walk_folders(volume, parts=()):
    """[(folder parts, [Entry])] of `volume`'s folder `parts` and every plain folder below it.

    Only `listdir` is used, which refuses links (reparse points over SMB), so none is entered; one walk for
    every volume kind.
    """
    out, todo = [], [tuple(parts)]
    while todo:
        folder = todo.pop(0)
        entries = volume.listdir(folder)
        out.append((folder, entries))
        todo.extend(folder + (e.name,) for e in entries if e.kind == "dir")
    return out


class Volume:
    """What every volume kind shares: naming, walking, case-insensitive lookup, hashing, copying.

    A subclass (LocalVolume here, sms_smb.SmbVolume) gives the primitives
    that differ by file system: `path`, `entry`, `listdir`, `chunks`, `read`,
    `write`, `rename`, `unlink`, `makedirs`, `writable`, `free_bytes`...;
    the method bodies below are written once for every kind.
    """

    kind = "volume"
    top = ""
    label = ""
    # What a copy that does not read back asks the operator to check.
    reread_hint = "check the disk"

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.top)

    # -- the primitives each kind gives ----------------------------------------------------------
    def path(self, parts=()):  # pragma: no cover - every kind names its paths
        raise NotImplementedError

    def entry(self, parts):  # pragma: no cover
        raise NotImplementedError

    def listdir(self, parts=()):  # pragma: no cover
        raise NotImplementedError

    def chunks(self, parts):  # pragma: no cover
        raise NotImplementedError

    def read(self, parts, links_ok=False):  # pragma: no cover
        raise NotImplementedError

    def write(
        self,
        parts,
        chunks,
        mtime=None,
        mode=None,
        expect_sha256=None,
        sync=True,
        mtime_ns=None,
        owner=None,
        unchanged=None,
    ):  # pragma: no cover
        raise NotImplementedError

    def unlink(self, parts, missing_ok=True):  # pragma: no cover
        raise NotImplementedError

    # -- written once ------------------------------------------------------------------------------
    def walk(self, parts=()):
        """[(folder parts, [Entry])] of folder `parts` and every plain folder below it (links never entered)."""
        return walk_folders(self, parts)

    def find(self, parts, name):
        """The on-disk name of the entry of folder `parts` named `name` in any case, or None.

        Two entries differing only in case cannot exist on the real hosts; if
        a twin has them the state is ambiguous and nothing is guessed.
        """
        wanted = name.lower()
        found = [e.name for e in self.listdir(parts) if e.name.lower() == wanted]
        if len(found) > 1:
            path = self.path(parts)
            raise SmsFileError(
                "%s holds %s, which differ only in case; keep one of them and run again"
                % (path, " and ".join(sorted(found))),
                path=path,
            )
        return found[0] if found else None

    def resolve(self, names, base=()):
        """`base` + `names` with each name replaced by its on-disk spelling; None when one is missing."""
        parts = tuple(base)
        for name in names:
            found = self.find(parts, plain_name(name))
            if found is None:
                return None
            parts += (found,)
        return parts

    def read_or_none(self, parts, links_ok=False):
        try:
            return self.read(parts, links_ok=links_ok)
        except SmsFileError as exc:
            if exc.facts.get("missing"):
                return None
            raise

    def sha256(self, parts):
        digest = hashlib.sha256()
        for block in self.chunks(parts):
            digest.update(block)
        return digest.hexdigest()

    def _link_refusal(self, parts):
        """The PathRefused for a link met where a folder should be, or None for the plain "not a folder"."""
        return None

    def existing(self, parts):
        """The longest existing prefix of folder `parts` (each step a plain folder)."""
        parts = tuple(parts)
        for cut in range(len(parts), 0, -1):
            entry = self.entry(parts[:cut])
            if entry.kind == "dir":
                return parts[:cut]
            if entry.kind == "link":
                refused = self._link_refusal(parts[:cut])
                if refused is not None:
                    raise refused
            if entry.exists:
                raise PathRefused("%s is not a folder; refused" % self.path(parts[:cut]), path=self.path(parts[:cut]))
        return ()

    def stale_temps(self, parts=()):
        """Names of temporary files in folder `parts` left by a writer that is gone (a killed run)."""
        out = []
        for entry in self.listdir(parts):
            match = TEMP_NAME.match(entry.name)
            if match and entry.kind == "file" and not pid_alive(int(match.group(1))):
                out.append(entry.name)
        return out

    def clean_temps(self, parts=()):
        """Remove what `stale_temps` finds; returns the paths removed."""
        removed = []
        for name in self.stale_temps(parts):
            self.unlink(tuple(parts) + (name,))
            removed.append(self.path(tuple(parts) + (name,)))
        return removed

    def write_bytes(self, parts, data, mtime=None, mode=None, sync=True, mtime_ns=None, owner=None, unchanged=None):
        return self.write(
            parts, [data], mtime=mtime, mode=mode, sync=sync, mtime_ns=mtime_ns, owner=owner, unchanged=unchanged
        )

    def copy_from(
        self, source, src_parts, parts, mtime=None, expect_sha256=None, sync=True, verify=True, mode=None, owner=None
    ):
        """Copy file `src_parts` of volume `source` over `parts` atomically, then check it on disk."""
        if mtime is None:
            mtime = source.entry(src_parts).mtime
        written = self.write(
            parts,
            opened(source.chunks(src_parts)),
            mtime=mtime,
            expect_sha256=expect_sha256,
            sync=sync,
            mode=mode,
            owner=owner,
        )
        if verify:
            found = self.sha256(parts)
            if found != written:
                raise SmsFileError(
                    "%s reads back with SHA-256 %s after the copy, expected %s; %s"
                    % (self.path(parts), found, written, self.reread_hint),
                    path=self.path(parts),
                    expected=written,
                    found=found,
                )
        return written


class LocalVolume(Volume):
    """A folder tree on this host's file system, reached without following links below `top`.

    `top` itself is the operator's configured path (it may be a mount point,
    and is resolved as given); `label` names the volume in messages
    ("client01's drive", "the share of LOGON01").
    """

    kind = "local"

    def __init__(self, top, label=None):
        self.top = os.path.abspath(str(top))
        self.label = label or self.top

    # -- naming ---------------------------------------------------------------------------------
    def path(self, parts=()):
        """The path of `parts` as the operator reads it in messages and results."""
        return os.path.join(self.top, *parts) if parts else self.top

    # -- walking ----------------------------------------------------------------------------------
    def _names(self, parts, what="name"):
        """`parts` as a tuple, every one a plain name (checked before anything is opened or made)."""
        parts = tuple(parts)
        for name in parts:
            plain_name(name, what)
        return parts

    def _file_parts(self, parts):
        """`parts` naming an entry below the top (never the top itself)."""
        parts = self._names(parts)
        if not parts:
            raise PathRefused("%s is the volume's top folder, not a file in it; refused" % self.top, path=self.top)
        return parts

    def _refuse_link(self, fd, name, parts):
        """Raise PathRefused when the entry `name` of the open folder `fd` is a symbolic link."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse_entry(fd, name, parts)
        return st

    def _open_top(self):
        try:
            fd = os.open(self.top, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise SmsFileError("%s does not exist" % self.top, path=self.top, missing=True)
        except NotADirectoryError:
            raise SmsFileError("%s is not a folder" % self.top, path=self.top)
        except OSError as exc:
            raise SmsFileError("cannot open %s: %s" % (self.top, exc.strerror or exc), path=self.top)
        return fd

    def _refuse_entry(self, fd, name, parts):
        """The PathRefused for an entry that could not be opened as expected (a link, a file...)."""
        path = self.path(parts)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=fd)
            except OSError:
                target = "?"
            return PathRefused(
                "%s is a symbolic link (to %s); the rollout never follows links on a managed host: "
                "remove the link (or restore the real folder or file) and run again. Refused" % (path, target),
                path=path,
                link=True,
                link_target=target,
            )
        return None

    def _dir_fd(self, parts, create=None):
        """A descriptor of the folder `parts`, each step opened with O_NOFOLLOW from its parent.

        `create`: a list collecting the parts of folders created on the way
        (missing ones are then made), or None to fail on a missing folder.
        """
        parts = self._names(parts, "folder name")
        fd = self._open_top()
        try:
            for index, name in enumerate(parts):
                here = parts[: index + 1]
                try:
                    try:
                        nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        if create is None:
                            raise SmsFileError(
                                "%s does not exist" % self.path(here), path=self.path(here), missing=True
                            )
                        try:
                            os.mkdir(name, 0o755, dir_fd=fd)
                        except FileExistsError:
                            pass
                        except OSError as exc:
                            raise SmsFileError(
                                describe_os_error(exc, self.path(parts[:index])), path=self.path(parts[:index])
                            )
                        create.append(here)
                        # Opened without following a link: a folder swapped for one meanwhile is refused.
                        nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    refused = self._refuse_entry(fd, name, here)
                    if refused is not None:
                        raise refused
                    if exc.errno == errno.ENOTDIR:
                        raise PathRefused("%s is not a folder; refused" % self.path(here), path=self.path(here))
                    raise SmsFileError(
                        "cannot open %s: %s" % (self.path(here), exc.strerror or exc), path=self.path(here)
                    )
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- reading ---------------------------------------------------------------------------------
    def entry(self, parts):
        """Entry of `parts` (kind None when missing); its folders must be plain folders."""
        parts = self._names(parts)
        if not parts:
            try:
                st = os.stat(self.top)
            except FileNotFoundError:
                return Entry("")
            except OSError as exc:
                raise SmsFileError("cannot use %s: %s" % (self.top, exc.strerror or exc), path=self.top)
            return Entry("", st)
        try:
            fd = self._dir_fd(parts[:-1])
        except SmsFileError as exc:
            if exc.facts.get("missing"):
                return Entry(parts[-1])
            raise
        try:
            name = plain_name(parts[-1])
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return Entry(name)
            target = None
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError:
                    target = "?"
            return Entry(name, st, target)
        finally:
            os.close(fd)

    def listdir(self, parts=()):
        """[Entry] of the folder `parts` (links listed as links, never followed); [] when missing."""
        parts = self._names(parts, "folder name")
        try:
            fd = self._dir_fd(parts)
        except SmsFileError as exc:
            if exc.facts.get("missing"):
                return []
            raise
        try:
            out = []
            with os.scandir(fd) as entries:
                for item in entries:
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone while listed
                    out.append(Entry(item.name, st, "?" if stat.S_ISLNK(st.st_mode) else None))
            return sorted(out, key=lambda e: e.name)
        finally:
            os.close(fd)

    def _open_file(self, parts, links_ok=False):
        parts = self._file_parts(parts)
        fd = self._dir_fd(parts[:-1])
        try:
            name = plain_name(parts[-1], "file name")
            try:
                ffd = os.open(name, _READ_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise SmsFileError("%s does not exist" % self.path(parts), path=self.path(parts), missing=True)
            except OSError as exc:
                refused = self._refuse_entry(fd, name, parts)
                if refused is not None:
                    raise refused
                raise SmsFileError(
                    "cannot read %s: %s" % (self.path(parts), exc.strerror or exc), path=self.path(parts)
                )
        finally:
            os.close(fd)
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode):
            os.close(ffd)
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise PathRefused("%s is %s; refused" % (self.path(parts), kind), path=self.path(parts))
        if st.st_nlink > 1 and not links_ok:
            os.close(ffd)
            raise hard_link_refused(self.path(parts), st.st_nlink)
        return ffd, st

    def chunks(self, parts):
        """Iterate the bytes of the regular file `parts` (one link only)."""
        fd, _st = self._open_file(parts)
        with os.fdopen(fd, "rb") as handle:
            while True:
                block = handle.read(CHUNK)
                if not block:
                    break
                yield block

    def read(self, parts, links_ok=False):
        """The bytes of the regular file `parts`; `links_ok` lets a file with several links through (a lock
        file mid-creation), for reads that are never backed up, copied or served."""
        fd, _st = self._open_file(parts, links_ok=links_ok)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def read_stamped(self, parts):
        """(bytes, Entry) of the regular file `parts`, both from the one open file: `identity(entry, bytes)`
        is what a write with `unchanged=` checks the target still has just before its rename."""
        fd, st = self._open_file(parts)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
        return data, Entry(parts[-1], st)

    # -- checks before a change -------------------------------------------------------------------
    def writable(self, parts=()):
        """Whether the existing folder or file `parts` can be written (a read-only mount or an immutable
        file fails this even for root)."""
        parts = tuple(parts)
        if not parts:
            # A top that does not exist yet (a state folder to make) is writable if its parent is.
            return os.access(self._top_or_parent(), os.W_OK)
        parts = self._names(parts)
        fd = self._dir_fd(parts[:-1])
        try:
            if self._refuse_link(fd, parts[-1], parts) is None:
                raise SmsFileError("%s does not exist" % self.path(parts), path=self.path(parts), missing=True)
            try:
                return os.access(parts[-1], os.W_OK, dir_fd=fd, follow_symlinks=False)
            except NotImplementedError:  # pragma: no cover - platforms without faccessat flags
                return os.access(self.path(parts), os.W_OK)
        finally:
            os.close(fd)

    def _top_or_parent(self):
        """The top, or its nearest parent that exists (the operator's configured path: no link check)."""
        path = self.top
        while not os.path.exists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        return path

    def free_bytes(self, parts=()):
        """(device, bytes free, block size) of the file system holding the existing folder `parts`."""
        if not parts and not os.path.isdir(self.top):
            st = os.statvfs(self._top_or_parent())
            return os.stat(self._top_or_parent()).st_dev, st.f_bavail * st.f_frsize, st.f_frsize or 4096
        fd = self._dir_fd(tuple(parts))
        try:
            st = os.fstatvfs(fd)
            return os.fstat(fd).st_dev, st.f_bavail * st.f_frsize, st.f_frsize or 4096
        finally:
            os.close(fd)

    # -- writing ---------------------------------------------------------------------------------
    def makedirs(self, parts):
        """Make folder `parts` (and missing parents); returns the parts of the folders created.

        A missing top (an operator-configured state folder) is made first, as given.
        """
        parts = self._names(parts, "folder name")
        created: List[Tuple[str, ...]] = []
        if not os.path.lexists(self.top):
            missing, path = [], self.top
            while not os.path.lexists(path) and os.path.dirname(path) != path:
                missing.append(path)
                path = os.path.dirname(path)
            self._made_top = missing  # deepest first: what rmdir_top may take away again
            try:
                os.makedirs(self.top, exist_ok=True)
            except OSError as exc:
                raise SmsFileError(describe_os_error(exc, self._top_or_parent()), path=self._top_or_parent())
        fd = self._dir_fd(parts, create=created)
        os.close(fd)
        return created

    def write(
        self,
        parts,
        chunks,
        mtime=None,
        mode=None,
        expect_sha256=None,
        sync=True,
        mtime_ns=None,
        owner=None,
        unchanged=None,
    ):
        """Write `chunks` to `parts` atomically; returns the SHA-256 written.

        A temporary file is created exclusively in the target's folder, filled,
        flushed (`sync`), given `mode` (default: the target's, or 0644), `owner`
        ((uid, gid), set when running as root) and `mtime`, then renamed over
        the target. On any failure the target is untouched and the temporary
        file removed. A target that is a link or a folder is refused before
        anything is written. `unchanged`: `identity()` of what `read_stamped` gave;
        just before the rename the target must still have it, else
        FileChanged (another writer changed it since it was read).
        """
        parts = self._file_parts(parts)
        path = self.path(parts)
        fd = self._dir_fd(parts[:-1])
        tmp = None
        try:
            name = parts[-1]
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISREG(st.st_mode):
                refused = self._refuse_entry(fd, name, parts)
                raise refused or PathRefused("%s is not a regular file; refused" % path, path=path)
            if mode is None:
                mode = stat.S_IMODE(st.st_mode) if st is not None else 0o644
            digest = hashlib.sha256()
            for _attempt in range(100):
                tmp = temp_name(name)
                try:
                    wfd = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=fd)
                    break
                except FileExistsError:
                    tmp = None
                    continue
            else:  # pragma: no cover
                raise SmsFileError("cannot make a temporary file in %s" % self.path(parts[:-1]))
            with os.fdopen(wfd, "wb") as handle:
                for block in chunks:
                    digest.update(block)
                    handle.write(block)
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), mode)
                if owner is not None and os.geteuid() == 0:
                    os.fchown(handle.fileno(), owner[0], owner[1])
                if mtime_ns is None and mtime is not None:
                    mtime_ns = int(round(mtime * 1e9))
                if mtime_ns is not None:
                    os.utime(handle.fileno(), ns=(mtime_ns, mtime_ns))
            written = digest.hexdigest()
            if expect_sha256 and written != expect_sha256:
                raise SmsFileError(
                    "the copy for %s has SHA-256 %s, expected %s; the source changed while it was read"
                    % (path, written, expect_sha256),
                    path=path,
                    expected=expect_sha256,
                    found=written,
                )
            if unchanged is not None:
                self._check_unchanged(fd, name, path, unchanged)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            tmp = None
            if sync:
                try:
                    os.fsync(fd)
                except OSError:
                    pass
            return written
        except OSError as exc:
            raise SmsFileError(describe_os_error(exc, path), path=path)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
            os.close(fd)

    def _check_unchanged(self, fd, name, path, was):
        """Raise FileChanged unless the entry `name` of folder `fd` still has the identity `was`."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        now, digest = None, None
        if st is not None and stat.S_ISREG(st.st_mode):
            now = (st.st_ino, st.st_size, st.st_mtime_ns)
            if now == tuple(was[:3]):
                rfd = os.open(name, _READ_FLAGS, dir_fd=fd)
                with os.fdopen(rfd, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
        refused = changed_since(path, was, now, digest)
        if refused is not None:
            raise refused

    def rename(self, src_parts, parts):
        """Rename within the volume (no link followed on either side; the target is replaced)."""
        src_parts, parts = self._file_parts(src_parts), self._file_parts(parts)
        sfd = self._dir_fd(src_parts[:-1])
        try:
            dfd = self._dir_fd(parts[:-1])
            try:
                self._refuse_link(sfd, src_parts[-1], src_parts)
                self._refuse_link(dfd, parts[-1], parts)
                os.rename(src_parts[-1], parts[-1], src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as exc:
                raise SmsFileError(describe_os_error(exc, self.path(parts)), path=self.path(parts))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def unlink(self, parts, missing_ok=True):
        parts = self._file_parts(parts)
        fd = self._dir_fd(parts[:-1])
        try:
            self._refuse_link(fd, parts[-1], parts)
            os.unlink(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            if not missing_ok:
                raise SmsFileError("%s does not exist" % self.path(parts), path=self.path(parts), missing=True)
        except OSError as exc:
            raise SmsFileError(describe_os_error(exc, self.path(parts)), path=self.path(parts))
        finally:
            os.close(fd)

    def rmdir(self, parts):
        """Remove the folder `parts` if it is empty; returns whether it was removed."""
        parts = self._file_parts(parts)
        fd = self._dir_fd(parts[:-1])
        try:
            os.rmdir(parts[-1], dir_fd=fd)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def rmdir_top(self):
        """Remove the top (and the parents made with it) if empty: an operator's state folder a failed run made."""
        for path in getattr(self, "_made_top", None) or [self.top]:
            try:
                os.rmdir(path)
            except OSError:
                return False
        return True

    def set_mtime(self, parts, mtime):
        """Give the file `parts` a new date (no link followed); content untouched."""
        parts = self._file_parts(parts)
        fd = self._dir_fd(parts[:-1])
        try:
            self._refuse_link(fd, parts[-1], parts)
            ns = int(round(mtime * 1e9))
            os.utime(parts[-1], ns=(ns, ns), dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            raise SmsFileError(describe_os_error(exc, self.path(parts)), path=self.path(parts))
        finally:
            os.close(fd)

    def create_exclusive(self, parts, data, sync=True):
        """Create file `parts` with `data` only if nothing is there; False when something is.

        The file appears with its whole content at once (a temporary file, then a
        hard link to the name), so no reader ever sees it empty.
        """
        parts = self._file_parts(parts)
        fd = self._dir_fd(parts[:-1])
        name = parts[-1]
        tmp = temp_name(name)
        try:
            try:
                wfd = os.open(tmp, _CREATE_FLAGS, 0o644, dir_fd=fd)
                with os.fdopen(wfd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    if sync:
                        os.fsync(handle.fileno())
                try:
                    os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
                    return True
                except FileExistsError:
                    return False
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                        raise
                # File systems without hard links: a plain exclusive create.
                try:
                    wfd = os.open(name, _CREATE_FLAGS, 0o644, dir_fd=fd)
                except FileExistsError:
                    return False
                with os.fdopen(wfd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    if sync:
                        os.fsync(handle.fileno())
                return True
            except OSError as exc:
                raise SmsFileError(describe_os_error(exc, self.path(parts)), path=self.path(parts))
        finally:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            os.close(fd)


# -- what a killed run leaves behind -----------------------------------------------------------------
def stale_temps(places):
    """[(volume, folder parts, [names])] of temporary files a killed run left in `places`.

    `places`: (volume, folder parts, deep) for every folder a run writes into;
    `deep` walks every plain folder below too (a state folder: its backup
    folders, push/, retired/), never entering a link. Missing folders are
    skipped. This is the one place the tiers list what to clean.
    """
    found, seen = [], set()
    for volume, parts, deep in places:
        parts = tuple(parts)
        if volume.entry(parts).kind != "dir":
            continue
        folders = volume.walk(parts) if deep else [(parts, None)]
        for folder, _entries in folders:
            key = volume.path(folder)
            if key in seen:
                continue
            seen.add(key)
            names = volume.stale_temps(folder)
            if names:
                found.append((volume, folder, names))
    return found


def clean_temps(found):
    """Remove what `stale_temps` found; returns the paths removed."""
    removed = []
    for volume, folder, _names in found:
        removed.extend(volume.clean_temps(folder))
    return removed


def temp_paths(found):
    return [volume.path(folder + (name,)) for volume, folder, names in found for name in names]


def plain_results(module):
    """Keep Ansible from adding stat facts of a result's `path` to this module's results.

    AnsibleModule adds `state`, `size`, `mode` and owner of whatever a result's
    `path` names, following links: for a refused FIFO that says "state": "file",
    "size": 0, the opposite of the message. Here `path` names where a problem is
    on an untrusted disk, never a file the module made; the module says itself
    what the path is.
    """
    module.add_path_info = lambda kwargs: kwargs
    return module


def split_file(path, depth=1):
    """(top, parts): the folder holding the last `depth` parts of a configured path, local or a share."""
    if is_unc(path):
        pieces = [p for p in path.replace("/", "\\").split("\\") if p]
        if len(pieces) < 2 + depth:
            raise SmsFileError("%s does not name a file inside a share" % path, path=path)
        return "\\\\" + "\\".join(pieces[:-depth]), tuple(pieces[-depth:])
    path = os.path.abspath(path)
    parts: List[str] = []
    while len(parts) < depth:
        path, name = os.path.split(path)
        parts.insert(0, name)
    return path, tuple(parts)


def normal_path(path):
    """A configured path as the modules use it: absolute when local, as given when a share."""
    return path if is_unc(path) else os.path.abspath(path)


def open_volume(path, label=None, smb=None):
    """The volume for a configured path: a local folder, or a share reached over SMB (`\\\\server\\share\\...`).

    `smb` holds the connection settings (username, password, port, ...); the
    SMB client library is imported only for a share.
    """
    if is_unc(path):
        from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb import SmbVolume

        return SmbVolume(path, label=label, **(smb or {}))
    return LocalVolume(path, label=label)
