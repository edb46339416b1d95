# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side logic shared by sms_client_upgrade and sms_client_facts.

A client's disk is untrusted: SMS.INI, MS/SMS/BIN and the product's own state
folder may be written by people who are not the operator. Everything here
reads and writes through sms_fs volumes (no link followed, nothing outside
the drive root or the logon server's share), and a logon server is only ever
one the play names as the site's. Errors are raised as ClientError naming
what failed, where, and what to do.
"""

from __future__ import annotations

import re

from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    FileChanged,
    PathRefused,
    SmsFileError,
    identity,
    open_volume,
    plain_name,
    split_rel,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import is_unc, smb_settings
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import IniDocument, IniError, copy_list_version
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import PLATFORM_DIRS

INI_NAME = "SMS.INI"
# The two SMS.INI keys the rollout sets (and a rollback restores): (section, key).
KEY_VERSION = ("SMS", "CopyListVersion")
KEY_PHASE = ("Local", "SetupPhase")
PHASE_INSTALLED = "installed"
PHASE_DEFERRED = "verifying_files"
PHASE_VERIFY = "verify_files"
SHARE_NAME = "SMS_SHR"
# How many times SMS.INI is rebuilt from another writer's new content before the run gives up.
INI_ATTEMPTS = 3
# A NetBIOS computer name: up to 15 characters, none of \ / : * ? " < > | or blanks.
_NETBIOS = re.compile(r"^[A-Za-z0-9!@#$%^&()\-_'{}.~]{1,15}$")


class ClientError(Exception):
    def __init__(self, msg, path=None, **facts):
        super().__init__(msg)
        self.msg = msg
        self.path = path
        self.facts = facts


def wrap(exc):
    """A ClientError from the shared modules' errors."""
    if isinstance(exc, ClientError):
        return exc
    facts = dict(getattr(exc, "facts", {}) or {})
    facts.pop("missing", None)
    if isinstance(exc, PathRefused):
        facts["refused"] = True
    return ClientError(getattr(exc, "msg", str(exc)), path=getattr(exc, "path", None), **facts)


# --- SMS.INI -----------------------------------------------------------------


def drive_volume(drive_root, client, params=None):
    """The client's drive: a local folder, or its drive share (`\\\\CLIENT\\C$`) reached over SMB."""
    try:
        volume = open_volume(drive_root, label="%s's drive" % client, smb=smb_settings(params or {}, drive_root))
    except SmsFileError as exc:
        raise wrap(exc)
    if volume.entry(()).kind != "dir":
        raise ClientError(
            "client drive root %s does not exist; check sms_drive_root for this host" % drive_root, path=drive_root
        )
    return volume


def read_sms_ini(drive, stamped=None):
    """(parts, original bytes, IniDocument) of the client's SMS.INI on volume `drive`.

    A client whose SMS.INI lacks [SMS] or [Servers] is not a working SMS
    client: it is refused, not repaired. `stamped`: a list that gets the
    file's Entry as read (for a write that checks nobody changed it since).
    """
    try:
        name = drive.find((), INI_NAME)
        if name is None:
            raise ClientError(
                "SMS.INI is missing at %s: this host is not an installed SMS client; install it with Client "
                "Setup (or take it out of the client group) and run again" % drive.path((INI_NAME,)),
                path=drive.path((INI_NAME,)),
            )
        parts = (name,)
        data, entry = drive.read_stamped(parts)
        if stamped is not None:
            stamped.append(entry)
    except SmsFileError as exc:
        raise wrap(exc)
    path = drive.path(parts)
    try:
        doc = IniDocument.parse(data, name=path)
    except IniError as exc:
        raise ClientError(
            "SMS.INI is malformed: %s; repair the file (or rerun Client Setup) and run again" % exc.msg,
            path=path,
            line=exc.line,
        )
    present = {section.lower() for section in doc.sections()}
    missing = [section for section in ("SMS", "Servers") if section.lower() not in present]
    if missing:
        raise ClientError(
            "%s has no %s section, so this is not a working SMS client (Client Setup writes both [SMS] and "
            "[Servers]); rerun Client Setup on it (or take it out of the client group) and run again; nothing "
            "was changed" % (path, " and no ".join("[%s]" % m for m in missing)),
            path=path,
        )
    return parts, data, doc


def parse_server(entry):
    """NAME from `\\\\NAME\\SMS_SHR` (or a bare NAME); None when empty; ClientError when not a plain name."""
    text = (entry or "").strip().strip('"').strip()
    if not text:
        return None
    unc = text.replace("/", "\\")
    body = unc.lstrip("\\")
    pieces = body.split("\\")
    name = pieces[0].strip()
    share_ok = len(pieces) == 1 or (len(pieces) == 2 and pieces[1].strip().upper() == SHARE_NAME)
    if not _NETBIOS.match(name) or ".." in name or name.strip(".") == "" or not share_ok:
        raise ClientError(
            "SMS.INI names the logon server %r, which is not \\\\NAME\\%s with a plain server name (NetBIOS: up "
            "to 15 characters, no path, no '..'); the client was left untouched: rerun Client Setup on it"
            % (text, SHARE_NAME),
            logon_server_entry=text,
        )
    return name


def logon_server(doc, ini_path, allowed=None):
    """(NAME, UNC) of the client's logon server as SMS.INI names it, checked against the site's servers.

    `allowed` is the list of the site's logon server names (case-insensitive);
    None only reads (compliance), anything else refuses a server not in it.
    """
    current = doc.get("Servers", "Current_Logon_Server")
    name = parse_server(current)
    if name is None:
        listed = doc.get("Servers", "Logon_Server_List") or ""
        for entry in listed.split(","):
            name = parse_server(entry)
            if name:
                break
    if not name:
        raise ClientError(
            "%s names no logon server ([Servers] Current_Logon_Server or Logon_Server_List are empty or "
            "missing); rerun Client Setup on this client and run again" % ini_path,
            path=ini_path,
        )
    if allowed is not None:
        known = {str(server).strip().lower(): str(server).strip() for server in allowed if str(server).strip()}
        if not known:
            raise ClientError(
                "the play names no logon servers of the site (logon_servers is empty), so the client's server "
                "%s cannot be checked; set sms_logon_server_names (or the logon group) and run again" % name
            )
        if name.lower() not in known:
            raise ClientError(
                "SMS.INI names \\\\%s\\%s as the logon server, which is not one of the site's logon servers (%s); "
                "the client was left untouched: check its SMS.INI (rerun Client Setup) or add the server to "
                "sms_logon_server_names" % (name, SHARE_NAME, ", ".join(sorted(known.values()))),
                path=ini_path,
                logon_server=name,
            )
    return name, "\\\\%s\\%s" % (name, SHARE_NAME)


def share_volume(pattern, server, params=None):
    """The logon server's SMS_SHR share as this client reaches it (a volume of its own).

    A local pattern gets the server's name in lower case (`/mnt/sms/{server}`);
    a share pattern (`\\\\{server}\\SMS_SHR`) is reached over SMB.
    """
    if "{server}" not in pattern:
        raise ClientError(
            "share_path_pattern %r has no {server} placeholder; set it like /mnt/sms/{server} or "
            "\\\\{server}\\SMS_SHR" % pattern
        )
    plain_name(server, "logon server name")
    path = pattern.replace("{server}", server if is_unc(pattern) else server.lower())
    try:
        return open_volume(path, label="the share of %s" % server, smb=smb_settings(params or {}, path))
    except SmsFileError as exc:
        raise wrap(exc)


# --- the logon server ----------------------------------------------------------


def read_server(share, server, unc, platform, copy_list):
    """The logon server's share as the client sees it.

    Returns {share, platform_parts, files: {lower: parts}, copy_list,
    copy_list_version}. A link anywhere in what is read is refused.
    """
    try:
        top = share.entry(())
    except SmsFileError:
        top = None
    if top is None or top.kind != "dir":
        raise ClientError(
            "logon server share %s unreachable at %s; check that the server is up and the share is "
            "mounted (sms_share_path_pattern), then run again" % (unc, share.top),
            path=share.top,
            logon_server=server,
        )
    folder_name = PLATFORM_DIRS[platform]
    try:
        folder = share.find((), folder_name)
        if folder is None or share.entry((folder,)).kind != "dir":
            kind = share.entry((folder,)).kind if folder else None
            if kind == "link":
                share.listdir((folder,))  # raises PathRefused naming the link
            raise ClientError(
                "logon server %s has no %s for platform %s (looked in %s); the site does not serve %s clients "
                "from this server: check the client's platform group or the server's Logon.srv"
                % (unc, folder_name, platform, share.top, platform),
                path=share.path((folder_name,)),
                logon_server=server,
            )
        files = {}
        for entry in share.listdir((folder,)):
            if entry.kind == "link":
                path = share.path((folder, entry.name))
                raise ClientError(
                    "%s on logon server %s is a symbolic link; the rollout never follows links: the client was "
                    "left untouched; remove the link on the server (let the maintenance cycle restore the file) "
                    "and run again" % (path, unc),
                    path=path,
                    logon_server=server,
                    refused=True,
                )
            if entry.kind == "file":
                files[entry.name.lower()] = (folder, entry.name)
        list_name = share.find((), copy_list)
        if list_name is None:
            raise ClientError(
                "logon server %s has no copy list %s (looked in %s); wait for the maintenance cycle to write it "
                "and run again" % (unc, copy_list, share.top),
                path=share.path((copy_list,)),
                logon_server=server,
            )
        version = copy_list_version(share.read((list_name,)))
    except SmsFileError as exc:
        raise wrap(exc)
    if not version:
        raise ClientError(
            "the copy list %s has no CopyListVersion; wait for the maintenance cycle to "
            "regenerate it and run again" % share.path((list_name,)),
            path=share.path((list_name,)),
            logon_server=server,
        )
    return {
        "share": share.top,
        "platform_parts": (folder,),
        "files": files,
        "copy_list": share.path((list_name,)),
        "copy_list_version": version.strip(),
    }


def stale_files(share, manifest_files, server_files):
    """Manifest files the server does not serve with the manifest's SHA-256."""
    stale = []
    for entry in manifest_files:
        parts = server_files.get(entry["name"].lower())
        try:
            found = share.sha256(parts) if parts else None
        except SmsFileError as exc:
            raise wrap(exc)
        if found != entry["sha256"]:
            stale.append({"name": entry["name"], "expected_sha256": entry["sha256"], "found_sha256": found})
    return stale


# --- the client's files ----------------------------------------------------------


def client_bin(drive, client_dir):
    """Parts of the client's SMS binaries folder (a real folder of the drive, never a link)."""
    try:
        parts = split_rel(client_dir, "client_dir")
        if drive.entry(parts).kind in ("dir", "link"):
            drive.listdir(parts)  # every step opened without following a link: a link is refused, named
            return parts
    except SmsFileError as exc:
        raise wrap(exc)
    path = drive.path(parts)
    raise ClientError(
        "the client's SMS folder %s does not exist; this host is not an installed SMS client (client_dir "
        "%s)" % (path, client_dir),
        path=path,
    )


def compare_files(drive, bin_parts, share, server_files, manifest_files):
    """Every file of the server's platform folder against the client's copy (links refused)."""
    services = {f["name"].lower() for f in manifest_files if f.get("service")}
    plan = []
    try:
        for lower, src in sorted(server_files.items()):
            name = drive.find(bin_parts, src[-1])
            dest = bin_parts + ((name or src[-1]),)
            info = drive.entry(dest) if name else None
            if info is not None and info.kind != "file":
                raise PathRefused(
                    "%s is %s; the rollout never follows links or replaces folders on a client: "
                    "restore the real file and run again. Refused"
                    % (drive.path(dest), "a symbolic link" if info.kind == "link" else "not a file"),
                    path=drive.path(dest),
                )
            server_sha = share.sha256(src)
            before = drive.sha256(dest) if info is not None else None
            plan.append(
                {
                    "name": dest[-1],
                    "parts": dest,
                    "path": drive.path(dest),
                    "source": src,
                    "before_sha256": before,
                    "after_sha256": server_sha,
                    "changed": before != server_sha,
                    "service": lower in services,
                    "mtime": share.entry(src).mtime,
                    "size": share.entry(src).size,
                }
            )
    except SmsFileError as exc:
        raise wrap(exc)
    return plan


def write_ini(drive, parts, data, mtime=None):
    """SMS.INI rewritten atomically, then read back."""
    try:
        drive.write_bytes(parts, data, mtime=mtime)
        if drive.read(parts) != data:
            raise ClientError(
                "%s reads back different from what was written; check the disk" % drive.path(parts),
                path=drive.path(parts),
            )
    except SmsFileError as exc:
        raise wrap(exc)


def write_ini_keys(drive, parts, data, entry, targets, tx, first=None):
    """SMS.INI with the keys `targets` set, written only over the very file that was read.

    `data`, `entry`: SMS.INI as read (bytes and Entry, from read_stamped);
    `targets`: [((section, key), value or None to remove)]; `first`: (bytes,
    mtime) to write instead when the file is still as read (a rollback's
    original bytes). Just before the rename the file must still be the one
    read (inode, size, mtime and SHA-256): when another writer (Client
    Setup, a user) changed it meanwhile, the new content is read again and
    only the rollout's keys are set on it, up to INI_ATTEMPTS times; then the
    run fails naming the file. `tx` remembers the file as last read, so a
    put-back never undoes the other writer's change. Returns how many times
    the file was rebuilt from another writer's content.
    """
    path = drive.path(parts)
    for attempt in range(INI_ATTEMPTS):
        if attempt == 0 and first is not None:
            new, mtime = first
        else:
            try:
                doc = IniDocument.parse(data, name=path)
            except IniError as exc:
                raise ClientError(
                    "SMS.INI was changed by another writer while the rollout worked and is now "
                    "malformed: %s; repair the file (or rerun Client Setup) and run again" % exc.msg,
                    path=path,
                    line=exc.line,
                )
            for (section, key), value in targets:
                if value is None:
                    doc.remove(section, key)
                else:
                    doc.set(section, key, value)
            new, mtime = doc.to_bytes(), None
        if new == data:
            return attempt  # the other writer set the same values already
        tx.remember(drive, parts, snapshot=(data, entry))
        try:
            drive.write_bytes(parts, new, mtime=mtime, unchanged=identity(entry, data))
        except FileChanged:
            tx.forget(drive, parts)
            try:
                data, entry = drive.read_stamped(parts)
            except SmsFileError as exc:
                raise wrap(exc)
            continue
        except SmsFileError as exc:
            raise wrap(exc)
        try:
            if drive.read(parts) != new:
                raise ClientError("%s reads back different from what was written; check the disk" % path, path=path)
        except SmsFileError as exc:
            raise wrap(exc)
        return attempt
    raise ClientError(
        "%s was changed by another writer each of the %d times the rollout was about to write it (Client Setup, "
        "a user or a script is writing it now); it was left as that writer left it: run again once it is done"
        % (path, INI_ATTEMPTS),
        path=path,
        ini_attempts=INI_ATTEMPTS,
    )


# --- SMSRUN32 ----------------------------------------------------------------


def smsrun_state(process_name, scope, drive_root, threshold, window):
    """The client's SMSRUN32 instances and whether they are hung (Q216552).

    Two or more instances are hung outright; a single one is sampled over
    `window` seconds and is hung above `threshold` percent of one core.
    Where the process table cannot be read (a client reached over SMB, a host
    without /proc), `known` is False and `hung` None: nobody may read that as
    "not hung".
    """
    if is_unc(drive_root):
        return {
            "found": [],
            "pids": [],
            "hung": None,
            "known": False,
            "reason": None,
            "note": "a client reached over SMB has no process table the rollout can read (no process channel "
            "is configured)",
        }
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc

    try:
        procs = sms_proc.list_processes(process_name, scope=scope, drive_root=drive_root)
    except sms_proc.ProcessTableUnavailable as exc:
        return {"found": [], "pids": [], "hung": None, "known": False, "reason": None, "note": str(exc)}
    pids = [p["pid"] for p in procs]
    cpu = {}
    if len(pids) == 1:
        cpu = sms_proc.sample_cpu(pids, window)
        pids = [pid for pid in pids if cpu.get(pid) is not None]  # exited while sampled
    found = [{"pid": pid, "cpu": cpu.get(pid)} for pid in pids]
    if len(pids) >= 2:
        hung, reason = True, "%d instances of %s are running (Q216552)" % (len(pids), process_name)
    elif len(pids) == 1 and cpu[pids[0]] is not None and cpu[pids[0]] > threshold:
        hung, reason = (
            True,
            "%s pid %d uses %.1f%% CPU, above %.1f%% (Q216552)" % (process_name, pids[0], cpu[pids[0]], threshold),
        )
    else:
        hung, reason = False, None
    return {"found": found, "pids": pids, "hung": hung, "known": True, "reason": reason}


def stop_or_fail(pids, signals, timeout, process_name, client):
    """Stop `pids` with `signals`; raise naming the first survivor."""
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc

    survivors, sent = sms_proc.stop(pids, signals, timeout)
    if survivors:
        raise ClientError(
            "%s pid %d on %s did not exit after %s within %gs; end it from Task Manager or restart the "
            "client, then run again"
            % (process_name, survivors[0], client, ", ".join(s.upper() for s in signals), timeout),
            survivors=survivors,
            signals=sent,
        )
    return sent
