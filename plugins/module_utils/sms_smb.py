# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A volume reached over SMB 2/3 (smbprotocol's `smbclient`), the way SMS itself moves files.

A subclass of sms_fs.Volume, as LocalVolume is: the shared method bodies
(lookup without case, hashing, copying, temporary files of a dead run) are
written once there, and this class gives the SMB primitives, with the same
rules, so the tiers' logic is written once too: a share
(`\\\\server\\share\\optional\\folder`) is the volume's top; below it
every part is a plain name; an entry that is a reparse point
(a symbolic link or a junction, as the server reports it) is refused, never
followed; a file is never written in place (a temporary name in the same
folder, then a rename that replaces the target); names match without case
and keep the case the server gives them.

Limits that SMB sets (named in messages and docs/DESIGN.md):
- a share's server resolves links *inside* the share itself unless it is
  configured not to (Samba: `follow symlinks = no`); a link the server
  resolves reaches the client as a plain file and cannot be told apart;
- there is no `access()`: a folder's write permission shows at the first
  write, which then fails cleanly and the run puts back what it changed;
- no process table is reachable: process state is "unknown".
The password is a module parameter with no_log; it never appears in a
message or a result.
"""

from __future__ import annotations

import hashlib
import re
from typing import List, Tuple


from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    CHUNK,
    Entry,
    PathRefused,
    SmsFileError,
    Volume,
    changed_since,
    hard_link_refused,
    plain_name,
    temp_name,
)

try:
    import smbclient
    from smbprotocol.exceptions import LogonFailure, SMBException, SMBOSError

    HAS_SMB = True
except ImportError:  # pragma: no cover - reported by SmbVolume
    HAS_SMB = False

FILE_ATTRIBUTE_READONLY = 0x1
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
STATUS = {
    0xC0000022: "access denied",
    0xC0000043: "held open on the server (sharing violation)",
    0xC000007F: "no space left on the share's disk",
    0xC000006D: "logon failure (wrong user or password)",
    0xC00000CC: "the share does not exist",
    0xC0000035: "already exists",
    0xC00000BA: "is a folder",
    0xC0000103: "is not a folder",
}
_SMB1 = re.compile(r"SMB1|dialect|negotiat", re.I)


def split_unc(path):
    """(server, share, parts) of `\\\\server\\share\\a\\b` or `//server/share/a/b`."""
    pieces = [p for p in path.replace("/", "\\").split("\\") if p]
    if len(pieces) < 2:
        raise SmsFileError("%s is not a share path like \\\\server\\share (or //server/share)" % path, path=path)
    return pieces[0], pieces[1], tuple(pieces[2:])


class SmbVolume(Volume):
    """A folder tree on an SMB share, reached without following a reparse point below its top."""

    kind = "smb"
    reread_hint = "check the share"

    def __init__(
        self,
        top,
        label=None,
        username=None,
        password=None,
        port=445,
        encrypt=None,
        connection_timeout=15,
        address=None,
        require_signing=True,
    ):
        if not HAS_SMB:
            raise SmsFileError(
                "the Python library smbprotocol is missing on the controller; install the project's "
                "requirements (requirements.txt) and run again"
            )
        self.server, self.share, base = split_unc(top)
        for part in base:
            plain_name(part, "folder name in %s" % top)
        self.base = base
        # The address to connect to may differ from the name shown (a test network, a name that does not resolve).
        self.address = address or self.server
        self.top = "\\\\%s\\%s%s" % (self.server, self.share, "".join("\\" + p for p in base))
        self.label = label or self.top
        self.port = int(port or 445)
        self._checked = set()
        self._session = dict(
            username=username, password=password, port=self.port, encrypt=encrypt, connection_timeout=connection_timeout
        )
        self._require_signing = require_signing
        self._connect()
        self._check_share()

    # -- the connection ---------------------------------------------------------------------------
    def _connect(self):
        try:
            smbclient.register_session(self.address, require_signing=self._require_signing, **self._session)
        except LogonFailure:
            raise SmsFileError(
                "cannot log on to %s as %s: wrong user or password (LogonFailure); check the "
                "inventory's SMB user and password (or the AWX credential) and run again"
                % (self.server, self._session.get("username") or "(no user)"),
                path=self.top,
                smb="logon_failure",
            )
        except (ValueError, OSError, SMBException) as exc:
            text = str(exc)
            if _SMB1.search(text):
                raise SmsFileError(
                    "%s does not speak SMB 2 or 3 (the negotiation failed: %s); an SMB1-only server such as "
                    "Windows NT 4.0 is out of reach of this rollout's SMB client: reach it another way (a "
                    "management host that mounts its shares)" % (self.server, text),
                    path=self.top,
                    smb="smb1",
                )
            raise SmsFileError(
                "cannot reach %s over SMB (port %d): %s; check that the server is up and the address "
                "is right, then run again" % (self.server, self.port, text),
                path=self.top,
                smb="unreachable",
            )

    def _check_share(self):
        unc = "\\\\%s\\%s" % (self.address, self.share)
        try:
            smbclient.lstat(unc)
        except (OSError, SMBException) as exc:
            status = getattr(exc, "ntstatus", None)
            if status in (0xC0000225, 0xC00000CC) or getattr(exc, "errno", None) == 2:
                raise SmsFileError(
                    "the share \\\\%s\\%s does not exist on %s; check the share names of this host in the "
                    "inventory (sms_smb_*_share) and run again" % (self.server, self.share, self.server),
                    path=self.top,
                    smb="no_share",
                )
            raise self._error(exc, (), "open the share")

    def _unc(self, parts=()):
        return "\\\\%s\\%s%s" % (self.address, self.share, "".join("\\" + p for p in self.base + tuple(parts)))

    # -- naming ---------------------------------------------------------------------------------
    def path(self, parts=()):
        return self.top + "".join("\\" + p for p in parts)

    def _error(self, exc, parts, doing="use"):
        path = self.path(parts)
        status = getattr(exc, "ntstatus", None)
        if status in STATUS:
            what = STATUS[status]
            if status == 0xC0000043:
                return SmsFileError(
                    "cannot %s %s: it is %s; close it there (or wait) and run again" % (doing, path, what),
                    path=path,
                    ntstatus=status,
                )
            return SmsFileError("cannot %s %s: %s" % (doing, path, what), path=path, ntstatus=status)
        code = getattr(exc, "errno", None)
        if code == 2:
            return SmsFileError("%s does not exist" % path, path=path, missing=True)
        return SmsFileError("cannot %s %s over SMB: %s" % (doing, path, exc), path=path)

    # -- walking ----------------------------------------------------------------------------------
    def _stat(self, parts):
        """Entry of `parts` itself (no check of its folders)."""
        try:
            st = smbclient.lstat(self._unc(parts))
        except SMBOSError as exc:
            if getattr(exc, "errno", None) == 2:
                return Entry(parts[-1] if parts else "")
            raise self._error(exc, parts, "read")
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "read")
        return self._entry(
            parts[-1] if parts else "",
            st.st_file_attributes,
            st.st_size,
            st.st_mtime_ns,
            (self.server, st.st_ino, st.st_chgtime_ns),
            nlink=getattr(st, "st_nlink", None),
        )

    @staticmethod
    def _entry(name, attributes, size, mtime_ns, stamp, nlink=None):
        if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
            kind = "link"
        elif attributes & FILE_ATTRIBUTE_DIRECTORY:
            kind = "dir"
        else:
            kind = "file"
        mode = 0o444 if attributes & FILE_ATTRIBUTE_READONLY else 0o644
        return Entry.of(
            name,
            kind,
            size=size,
            mtime_ns=mtime_ns,
            mode=mode,
            stamp=stamp,
            target="(a reparse point)" if kind == "link" else None,
            nlink=nlink,
        )

    def _link_refusal(self, parts):
        return self._refused(parts)

    def _refused(self, parts):
        path = self.path(parts)
        return PathRefused(
            "%s is a reparse point (a symbolic link or a junction); the rollout never follows links "
            "on a managed host: remove it (or restore the real folder or file) and run again. Refused" % path,
            path=path,
            link=True,
            link_target="(a reparse point)",
        )

    def _check_folders(self, parts, create=None):
        """Every folder of `parts` exists and is a plain folder (reparse points refused)."""
        for index in range(len(parts)):
            here = tuple(parts[: index + 1])
            plain_name(here[-1], "folder name")
            if here in self._checked:
                continue
            entry = self._stat(here)
            if entry.kind is None:
                if create is None:
                    raise SmsFileError("%s does not exist" % self.path(here), path=self.path(here), missing=True)
                try:
                    smbclient.mkdir(self._unc(here))
                except (OSError, SMBException) as exc:
                    if getattr(exc, "errno", None) != 17:
                        raise self._error(exc, here, "make")
                create.append(here)
            elif entry.kind == "link":
                raise self._refused(here)
            elif entry.kind != "dir":
                raise PathRefused("%s is not a folder; refused" % self.path(here), path=self.path(here))
            self._checked.add(here)

    # -- reading ---------------------------------------------------------------------------------
    def entry(self, parts):
        parts = tuple(parts)
        if not parts:
            return self._stat(())
        try:
            self._check_folders(parts[:-1])
        except SmsFileError as exc:
            if exc.facts.get("missing"):
                return Entry(parts[-1])
            raise
        return self._stat(parts)

    def listdir(self, parts=()):
        parts = tuple(parts)
        try:
            self._check_folders(parts)
        except SmsFileError as exc:
            if exc.facts.get("missing"):
                return []
            raise
        out = []
        try:
            for item in smbclient.scandir(self._unc(parts)):
                info = item.smb_info
                mtime_ns = _filetime_ns(info.last_write_time)
                out.append(
                    self._entry(
                        item.name,
                        info.file_attributes,
                        info.end_of_file,
                        mtime_ns,
                        (self.server, info.file_id, _filetime_ns(info.change_time)),
                    )
                )
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "list")
        return sorted(out, key=lambda e: e.name)

    def _open_checked(self, parts, links_ok=False, entry_out=None):
        parts = tuple(parts)
        if not parts:
            raise PathRefused("%s is a folder, not a file" % self.top, path=self.top)
        self._check_folders(parts[:-1])
        entry = self._stat(parts)
        if entry.kind is None:
            raise SmsFileError("%s does not exist" % self.path(parts), path=self.path(parts), missing=True)
        if entry.kind == "link":
            raise self._refused(parts)
        if entry.kind != "file":
            raise PathRefused("%s is a folder; refused" % self.path(parts), path=self.path(parts))
        # Where the server reports a link count (Samba does), a file with several links is refused as locally.
        if (entry.nlink or 1) > 1 and not links_ok:
            raise hard_link_refused(self.path(parts), entry.nlink)
        if entry_out is not None:
            entry_out.append(entry)
        try:
            return smbclient.open_file(self._unc(parts), mode="rb", share_access="r")
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "read")

    def chunks(self, parts, links_ok=False, entry_out=None):
        handle = self._open_checked(parts, links_ok=links_ok, entry_out=entry_out)
        try:
            while True:
                block = handle.read(CHUNK)
                if not block:
                    break
                yield block
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "read")
        finally:
            handle.close()

    def read(self, parts, links_ok=False):
        return b"".join(self.chunks(parts, links_ok=links_ok))

    def read_stamped(self, parts):
        """(bytes, Entry): as LocalVolume.read_stamped (the entry's inode is the server's file id)."""
        found: List[Entry] = []
        data = b"".join(self.chunks(parts, entry_out=found))
        return data, found[0]

    # -- checks before a change -------------------------------------------------------------------
    def writable(self, parts=()):
        """Over SMB only the read-only attribute can be seen before a write (no access() call exists)."""
        entry = self.entry(tuple(parts))
        if entry.kind is None:
            return True
        return entry.kind == "dir" or not (entry.mode == 0o444)

    def _top_or_parent(self):
        return self.top

    def free_bytes(self, parts=()):
        try:
            volume = smbclient.stat_volume(self._unc(parts) if parts else self._unc(()))
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "read the free space of")
        return (self.server, self.share), volume.caller_available_size, 4096

    # -- writing ---------------------------------------------------------------------------------
    def makedirs(self, parts):
        created: List[Tuple[str, ...]] = []
        self._check_folders(tuple(parts), create=created)
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
        # `mode` and `owner` have no meaning over SMB (the server's ACLs apply): the read-only attribute
        # is what SMB shows as the mode, and a new file gets the folder's inherited ACL.
        parts = tuple(parts)
        path = self.path(parts)
        self._check_folders(parts[:-1])
        name = plain_name(parts[-1], "file name")
        current = self._stat(parts)
        if current.kind not in (None, "file"):
            raise (
                self._refused(parts)
                if current.kind == "link"
                else PathRefused("%s is not a regular file; refused" % path, path=path)
            )
        tmp = parts[:-1] + (temp_name(name),)
        digest = hashlib.sha256()
        try:
            with smbclient.open_file(self._unc(tmp), mode="xb", share_access=None) as handle:
                for block in chunks:
                    digest.update(block)
                    handle.write(block)
                if sync:
                    handle.flush()
            written = digest.hexdigest()
            if expect_sha256 and written != expect_sha256:
                raise SmsFileError(
                    "the copy for %s has SHA-256 %s, expected %s; the source changed while it was read"
                    % (path, written, expect_sha256),
                    path=path,
                    expected=expect_sha256,
                    found=written,
                )
            if mtime_ns is None and mtime is not None:
                mtime_ns = int(round(mtime * 1e9))
            if mtime_ns is not None:
                smbclient.utime(self._unc(tmp), ns=(mtime_ns, mtime_ns))
            if unchanged is not None:
                self._check_unchanged(parts, path, unchanged)
            smbclient.replace(self._unc(tmp), self._unc(parts))
            tmp = None
            return written
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "write")
        finally:
            if tmp is not None:
                try:
                    smbclient.remove(self._unc(tmp))
                except (OSError, SMBException):
                    pass

    def _check_unchanged(self, parts, path, was):
        entry = self._stat(parts)
        now, digest = None, None
        if entry.kind == "file":
            now = (entry.ino, entry.size, entry.mtime_ns)
            if now == tuple(was[:3]):
                digest = self.sha256(parts)
        refused = changed_since(path, was, now, digest)
        if refused is not None:
            raise refused

    def rename(self, src_parts, parts):
        src_parts, parts = tuple(src_parts), tuple(parts)
        self._check_folders(src_parts[:-1])
        self._check_folders(parts[:-1])
        if self._stat(src_parts).kind == "link":
            raise self._refused(src_parts)
        try:
            smbclient.replace(self._unc(src_parts), self._unc(parts))
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "rename %s to" % self.path(src_parts))
        self._checked = {p for p in self._checked if p[: len(src_parts)] != src_parts}

    def unlink(self, parts, missing_ok=True):
        parts = tuple(parts)
        self._check_folders(parts[:-1])
        try:
            smbclient.remove(self._unc(parts))
        except (OSError, SMBException) as exc:
            if getattr(exc, "errno", None) == 2 and missing_ok:
                return
            raise self._error(exc, parts, "remove")

    def rmdir(self, parts):
        parts = tuple(parts)
        try:
            smbclient.rmdir(self._unc(parts))
        except (OSError, SMBException):
            return False
        self._checked.discard(parts)
        return True

    def set_mtime(self, parts, mtime):
        parts = tuple(parts)
        self._check_folders(parts[:-1])
        entry = self._stat(parts)
        if entry.kind == "link":
            raise self._refused(parts)
        ns = int(round(mtime * 1e9))
        try:
            smbclient.utime(self._unc(parts), ns=(ns, ns), follow_symlinks=False)
        except (OSError, SMBException) as exc:
            raise self._error(exc, parts, "set the date of")

    def create_exclusive(self, parts, data, sync=True):
        parts = tuple(parts)
        self._check_folders(parts[:-1])
        try:
            with smbclient.open_file(self._unc(parts), mode="xb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
            return True
        except (OSError, SMBException) as exc:
            if getattr(exc, "errno", None) == 17 or getattr(exc, "ntstatus", None) == 0xC0000035:
                return False
            raise self._error(exc, parts, "create")


def _filetime_ns(value):
    """Nanoseconds since the epoch from what smbprotocol reports (a datetime or a FILETIME count)."""
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return int(round(value.timestamp() * 1e9))
    return (int(value) - 116444736000000000) * 100


__all__ = ["SmbVolume", "split_unc", "HAS_SMB"]
