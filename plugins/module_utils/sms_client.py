# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side logic shared by sms_client_upgrade and sms_client_facts.

Everything here reads; the only writers are `replace_files`, `restore_files`
and `write_ini`, called by the upgrade module outside check mode. Errors are
raised as ClientError naming what failed, where, and what to do.
"""

from __future__ import annotations

import os

from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    SmsFileError, atomic_copy, atomic_write_bytes, find_ci, sha256_file,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import IniDocument, IniError, copy_list_version
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import PLATFORM_DIRS

INI_NAME = "SMS.INI"
PHASE_INSTALLED = "installed"
PHASE_DEFERRED = "verifying_files"


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
    return ClientError(getattr(exc, "msg", str(exc)), path=getattr(exc, "path", None),
                       **getattr(exc, "facts", {}))


# --- SMS.INI -----------------------------------------------------------------

def read_sms_ini(drive_root):
    """(path, original bytes, IniDocument) of the client's SMS.INI."""
    if not os.path.isdir(drive_root):
        raise ClientError("client drive root %s does not exist; check sms_drive_root for this host" % drive_root,
                          path=drive_root)
    path = find_ci(drive_root, INI_NAME)
    if path is None or not os.path.isfile(path):
        raise ClientError(
            "SMS.INI is missing at %s: this host is not an installed SMS client; install it with Client "
            "Setup (or take it out of the client group) and run again" % os.path.join(drive_root, INI_NAME),
            path=os.path.join(drive_root, INI_NAME))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ClientError("cannot read %s: %s" % (path, exc.strerror or exc), path=path)
    try:
        doc = IniDocument.parse(data, name=path)
    except IniError as exc:
        raise ClientError("SMS.INI is malformed: %s; repair the file (or rerun Client Setup) and run again"
                          % exc.msg, path=path, line=exc.line)
    return path, data, doc


def _server_name(entry):
    """NAME from `\\\\NAME\\SMS_SHR` (or a bare NAME); None when empty."""
    text = (entry or "").strip().strip('"')
    text = text.lstrip("\\/")
    name = text.replace("/", "\\").split("\\", 1)[0].strip()
    return name or None


def logon_server(doc, ini_path):
    """(NAME, UNC) of the client's logon server as SMS.INI names it."""
    current = doc.get("Servers", "Current_Logon_Server")
    name = _server_name(current)
    if name is None:
        listed = doc.get("Servers", "Logon_Server_List") or ""
        for entry in listed.split(","):
            name = _server_name(entry)
            if name:
                break
    if not name:
        raise ClientError(
            "%s names no logon server ([Servers] Current_Logon_Server or Logon_Server_List are empty or "
            "missing); rerun Client Setup on this client and run again" % ini_path, path=ini_path)
    return name, "\\\\%s\\SMS_SHR" % name


def share_path(pattern, server):
    return pattern.replace("{server}", server.lower())


# --- the logon server ----------------------------------------------------------

def regular_files(directory):
    """{lower-case name: path} of the regular files of a folder."""
    found = {}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if os.path.isfile(path):
            found[entry.lower()] = path
    return found


def read_server(pattern, server, unc, platform, copy_list):
    """The logon server's share as the client sees it.

    Returns {share, platform_dir, files: {lower: path}, copy_list, copy_list_version}.
    """
    share = share_path(pattern, server)
    if not os.path.isdir(share):
        raise ClientError(
            "logon server share %s unreachable at %s; check that the server is up and the share is "
            "mounted (sms_share_path_pattern), then run again" % (unc, share), path=share, logon_server=server)
    folder_name = PLATFORM_DIRS[platform]
    try:
        folder = find_ci(share, folder_name)
    except SmsFileError as exc:
        raise wrap(exc)
    if folder is None or not os.path.isdir(folder):
        raise ClientError(
            "logon server %s has no %s for platform %s (looked in %s); the site does not serve %s clients "
            "from this server: check the client's platform group or the server's Logon.srv"
            % (unc, folder_name, platform, share, platform), path=os.path.join(share, folder_name),
            logon_server=server)
    try:
        list_path = find_ci(share, copy_list)
    except SmsFileError as exc:
        raise wrap(exc)
    if list_path is None or not os.path.isfile(list_path):
        raise ClientError(
            "logon server %s has no copy list %s (looked in %s); wait for the maintenance cycle to write it "
            "and run again" % (unc, copy_list, share), path=os.path.join(share, copy_list), logon_server=server)
    try:
        with open(list_path, "rb") as handle:
            version = copy_list_version(handle.read())
    except OSError as exc:
        raise ClientError("cannot read the copy list %s: %s" % (list_path, exc.strerror or exc),
                          path=list_path, logon_server=server)
    if not version:
        raise ClientError("the copy list %s has no CopyListVersion; wait for the maintenance cycle to "
                          "regenerate it and run again" % list_path, path=list_path, logon_server=server)
    return {"share": share, "platform_dir": folder, "files": regular_files(folder),
            "copy_list": list_path, "copy_list_version": version.strip()}


def stale_files(manifest_files, server_files):
    """Manifest files the server does not serve with the manifest's SHA-256."""
    stale = []
    for entry in manifest_files:
        path = server_files.get(entry["name"].lower())
        found = sha256_file(path) if path else None
        if found != entry["sha256"]:
            stale.append({"name": entry["name"], "expected_sha256": entry["sha256"], "found_sha256": found})
    return stale


# --- the client's files ----------------------------------------------------------

def client_bin(drive_root, client_dir):
    path = os.path.join(drive_root, *[p for p in client_dir.replace("\\", "/").split("/") if p])
    if not os.path.isdir(path):
        raise ClientError(
            "the client's SMS folder %s does not exist; this host is not an installed SMS client (client_dir "
            "%s)" % (path, client_dir), path=path)
    return path


def compare_files(bin_dir, server_files, manifest_files):
    """Every file of the server's platform folder against the client's copy."""
    services = {f["name"].lower() for f in manifest_files if f.get("service")}
    plan = []
    for lower, src in sorted(server_files.items()):
        try:
            dest = find_ci(bin_dir, os.path.basename(src))
        except SmsFileError as exc:
            raise wrap(exc)
        server_sha = sha256_file(src)
        before = sha256_file(dest) if dest and os.path.isfile(dest) else None
        if dest is None:
            dest = os.path.join(bin_dir, os.path.basename(src))
        plan.append({
            "name": os.path.basename(dest), "path": dest, "source": src,
            "before_sha256": before, "after_sha256": server_sha, "changed": before != server_sha,
            "service": lower in services, "mtime": os.stat(src).st_mtime,
        })
    return plan


def writable(path):
    return os.access(path, os.W_OK | os.X_OK)


def replace_files(plan, tx, group="BIN"):
    """Back up and replace every changed file of `plan`, verifying each.

    `tx` (sms_files.Transaction) notes each file and backup first; on a
    failure everything this run did is put back and ClientError raised.
    """
    try:
        for item in plan:
            if not item["changed"]:
                continue
            current = item["path"] if os.path.isfile(item["path"]) else None
            tx.record(group, item["name"], current)
            tx.remember_file(current, item["path"])
            found = atomic_copy(item["source"], item["path"], mtime=item["mtime"], expect_sha256=item["after_sha256"])
            if found != item["after_sha256"]:
                raise ClientError("%s has SHA-256 %s after the copy, expected %s" % (item["path"], found,
                                                                                   item["after_sha256"]),
                                  path=item["path"])
    except (SmsFileError, ClientError, OSError) as exc:
        raise undone(tx, exc, "the files this run replaced")


def undone(tx, exc, what):
    """Put back what `tx` noted after `exc`; the ClientError to fail with, saying how that went."""
    restored, problems = tx.rollback()
    if isinstance(exc, OSError):
        error = ClientError("cannot write %s: %s" % (exc.filename or "a client file", exc.strerror or exc),
                            path=exc.filename)
    else:
        error = wrap(exc)
    error.msg += ("; %s were put back" % what) if not problems else (
        "; putting back %s ALSO failed: %s" % (what, "; ".join(problems)))
    error.facts["restored"] = restored
    return error


def check_written(path, data):
    """Raise unless `path` reads back as `data`."""
    with open(path, "rb") as handle:
        if handle.read() != data:
            raise ClientError("%s reads back different from what was written; check the disk" % path, path=path)


def write_ini(path, data, mtime=None):
    try:
        atomic_write_bytes(path, data, mtime=mtime)
    except SmsFileError as exc:
        raise wrap(exc)


# --- SMSRUN32 ----------------------------------------------------------------

def smsrun_state(process_name, scope, threshold, window):
    """The client's SMSRUN32 instances and whether they are hung (Q216552).

    Two or more instances are hung outright; a single one is sampled over
    `window` seconds and is hung above `threshold` percent of one core.
    """
    procs = sms_proc.list_processes(process_name, scope=scope)
    pids = [p["pid"] for p in procs]
    cpu = {}
    if len(pids) == 1:
        cpu = sms_proc.sample_cpu(pids, window)
        pids = [pid for pid in pids if cpu.get(pid) is not None]  # exited while sampled
    found = [{"pid": pid, "cpu": cpu.get(pid)} for pid in pids]
    if len(pids) >= 2:
        hung, reason = True, "%d instances of %s are running (Q216552)" % (len(pids), process_name)
    elif len(pids) == 1 and cpu[pids[0]] is not None and cpu[pids[0]] > threshold:
        hung, reason = True, "%s pid %d uses %.1f%% CPU, above %.1f%% (Q216552)" % (
            process_name, pids[0], cpu[pids[0]], threshold)
    else:
        hung, reason = False, None
    return {"found": found, "pids": pids, "hung": hung, "reason": reason}


def stop_or_fail(pids, signals, timeout, process_name, client):
    """Stop `pids` with `signals`; raise naming the first survivor."""
    survivors, sent = sms_proc.stop(pids, signals, timeout)
    if survivors:
        raise ClientError(
            "%s pid %d on %s did not exit after %s within %gs; end it from Task Manager or restart the "
            "client, then run again" % (process_name, survivors[0], client, ", ".join(s.upper() for s in signals),
                                        timeout),
            survivors=survivors, signals=sent)
    return sent

