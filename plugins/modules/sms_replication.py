#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_replication
short_description: Wait for the SMS Maintenance Manager to carry a hotfix to a logon server
description:
  - Runs on one SMS logon server (the site server is a logon server too) and
    checks that the hotfix files are in C(Logon.srv/<Platform>.bin) with the
    manifest's SHA-256 (file names matched case-insensitively), and that the copy
    lists (C(Cl_nt.txt) ...) carry a C(CopyListVersion) newer than the one seen
    before the hotfix was staged, so that clients notice the change.
  - I(state=baseline) records the copy-list version seen before staging, once.
  - I(state=converged) waits like M(ansible.builtin.wait_for) - polling on the
    server itself, every I(sleep) seconds, up to I(timeout) seconds - and always
    returns C(elapsed) and a per-file status. It never changes anything. In check
    mode it checks once and does not wait.
  - I(state=pushed) is the emergency path that bypasses the Maintenance Manager.
    It copies the staged payload to the logon server directly, after backing up
    the server's originals once, and verifies the result. The copy lists are not
    bumped, because editing them by hand is unsupported.
  - Before a push touches anything it checks that the platform folders to write and the state folder
    are writable and hold enough free space (the new files, the backups and the journal); otherwise it
    fails naming the folder, and nothing is changed. If a copy fails half-way (a full disk, say), the
    files the push had already replaced are put back as they were and checked on disk, then the backups
    and journal entries it made for them are removed, and the module fails saying so, leaving the server as
    before the push. A file that cannot be put back keeps its backup and journal entry (named in
    C(backups_kept)); a later push or I(state=restored) finishes it.
  - A file with more than one hard link in a platform folder is refused, naming its link count; backups keep
    the original's mode (and owner when run as root). Temporary files a killed push left are removed from the
    platform folders and from anywhere in the state folder.
  - I(state=restored) undoes a push byte for byte from its journal.
    Once done, it sets the push journal and its backups aside in C(<state_dir>/push/retired/<UTC date>/)
    (only the restored platforms' entries when I(platforms) limits it), so a later push backs up the
    files it finds then; a second restore finds no journal and changes nothing.
    I(state=reset) removes the hotfix's copy-list baselines at the end of a rollback.
  - The action plugin of the same name runs I(state=converged) in slices of
    C(progress_interval) seconds (a task argument, default 30) and prints one
    progress line per server between slices.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
options:
  sms_root:
    description:
      - The logon server's SMS root directory (C(<sms_drive_root>/SMS)), or its share over SMB
        (C(\\LOGON01\SMS_SHRC)). It must hold C(Logon.srv).
    type: str
    required: true
  manifest:
    description:
      - Path of the hotfix's C(manifest.json). The expected files and the KB number come from it.
      - The payload is checked only with I(state=pushed).
      - Required with I(state=pushed). Either I(manifest) or I(expect) is required with
        I(state=baseline) and I(state=converged).
      - The action plugin reads a manifest that exists on the controller there, and hands
        the module its expected files and KB. The logon servers then need no copy of it.
        With I(state=pushed), the action plugin sends the manifest and its payload to the
        logon server first (see I(transfer)); otherwise they must be readable there.
    type: path
  transfer:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module);
        used with I(state=pushed) only.
      - C(auto) copies the controller's manifest and the payload of the pushed platforms into the
        task's remote temporary folder when the connection is not C(local) and the controller has
        I(manifest); the push then reads that copy, and the folder is removed when the task ends.
      - C(always) copies even with the C(local) connection (I(manifest) must be a file on the controller).
      - C(never) lets the logon server read I(manifest) as given.
      - Manifest and payload are validated on the controller before anything is sent; a bad payload
        fails the task without touching the logon server.
    type: str
    choices: [auto, always, never]
    default: auto
  expect:
    description:
      - Expected files per platform (C(x86), C(alpha), C(mips)), each a list of
        C({name, sha256}). Overrides the manifest's expectations, for example to
        wait for the original files during a rollback.
      - Without I(manifest), I(kb) or I(state_dir) must name the state folder.
    type: dict
  kb:
    description:
      - Knowledge Base number (like C(Q216552)) naming the state folder. Defaults to the manifest's C(kb).
    type: str
  platforms:
    description: Check or push only these platforms. Default is every platform of the expectations.
    type: list
    elements: str
  state:
    description:
      - C(baseline) records the copy-list version before staging (kept if it already exists).
      - C(converged) checks or waits for the files and the copy-list bump (read-only).
      - C(pushed) copies the staged files to the server directly (emergency).
      - C(restored) undoes a push.
      - C(reset) removes the hotfix's copy-list baselines.
    type: str
    choices: [baseline, converged, pushed, restored, reset]
    default: converged
  copy_lists:
    description:
      - Copy lists to read in C(Logon.srv), found case-insensitively. The ones
        present are checked, and at least one of them must exist.
      - With I(state=converged), every present copy list must carry a version greater than the baseline.
    type: list
    elements: str
    default: [Cl_nt.txt, Cl_win95.txt, Cl_win.txt, Cl_dos.txt, Cl_os2.txt]
  require_copy_list_bump:
    description:
      - Require a C(CopyListVersion) greater than the baseline for convergence.
      - Not required when no baseline was recorded, or when the files were already current when it was recorded.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for convergence. C(0) checks once and returns C(converged=false) without failing.
    type: int
    default: 0
  sleep:
    description:
      - Seconds between two checks while waiting. A check reads only the folder listings, file dates and the
        copy lists (hashes are kept while a file is unchanged), so a short interval is cheap.
    type: float
    default: 0.25
  fail_on_timeout:
    description:
      - Fail when the server has not converged after I(timeout) seconds.
      - The action plugin sets this to C(false) for its intermediate slices.
    type: bool
    default: true
  state_dir:
    description: The hotfix's state folder on the server. Default is C(<sms_root>/Hotfix/<KB>).
    type: str
  server_name:
    description: Name of the server in messages, usually C(inventory_hostname). Default is I(sms_root).
    type: str
  progress_interval:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module).
      - With I(state=converged) and a I(timeout), seconds between two progress lines per server; the first
        line comes after a few seconds.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details:
      - With I(state=converged), check mode checks once and does not wait.
      - With I(state=pushed), a transfer (I(transfer)) still copies the hotfix into the task's remote
        temporary folder, which is removed when the task ends.
  diff_mode:
    support: partial
    details: Only I(state=pushed) and I(state=restored) return a diff.
  platform:
    support: full
    platforms: posix
notes:
  - Nothing outside I(sms_root) (and I(state_dir)) is read or written and no symbolic link is followed; a
    link where the module reads or writes fails the server with a message naming it, and nothing changes.
  - Copy lists are never edited. Only the Maintenance Manager regenerates them, after the
    C(System.map) timestamp changes (Q166771). A push therefore does not make
    clients notice the change; the client tier upgrades them directly.
seealso:
  - module: ansible.builtin.wait_for
  - module: sms.hotfix.sms_hotfix_stage
"""

EXAMPLES = r"""
- name: Record the copy-list version before the site server is staged
  sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    state: baseline

- name: Wait up to 30 minutes for the maintenance cycle
  sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    server_name: "{{ inventory_hostname }}"
    timeout: 1800
    progress_interval: 30  # consumed by the action plugin
  register: sms_replication_result

- name: Probe once, without waiting or failing
  sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
  register: probe

- name: Emergency - copy the staged files to the logon server directly
  sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    state: pushed
    transfer: auto  # consumed by the action plugin: sent from the controller unless the connection is local

- name: Rollback - wait for the original files again
  sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    kb: Q216552
    expect:
      x86:
        - name: Smsrun32.exe
          sha256: "{{ original_smsrun32_sha256 }}"
    timeout: 1800
"""

RETURN = r"""
converged:
  description: Whether every expected file matches and the copy-list criterion holds.
  returned: state is converged, baseline or pushed
  type: bool
elapsed:
  description: Seconds spent checking and waiting.
  returned: always
  type: float
  sample: 12.4
polls:
  description: How many times the server was checked.
  returned: state is converged
  type: int
files:
  description: Per-file status.
  returned: state is converged, baseline or pushed
  type: list
  elements: dict
  contains:
    platform:
      description: Platform key.
      type: str
      sample: x86
    name:
      description: Expected file name.
      type: str
    path:
      description: The file on disk (its on-disk name) or where it should be.
      type: str
    expected_sha256:
      description: SHA-256 the file must have.
      type: str
    found_sha256:
      description: SHA-256 found, null when the file is missing.
      type: str
    ok:
      description: Whether the file matches.
      type: bool
copy_list:
  description: The copy-list criterion.
  returned: state is converged or baseline
  type: dict
  contains:
    baseline:
      description: CopyListVersion recorded before staging, null without a baseline.
      type: int
    current:
      description: The lowest CopyListVersion among the present copy lists.
      type: int
    required:
      description: Whether a bump is required for convergence.
      type: bool
    ok:
      description: Whether the criterion holds; null when unknown (no baseline).
      type: bool
    files:
      description: CopyListVersion per present copy list (on-disk name).
      type: dict
      sample: {"Cl_nt.txt": 42, "Cl_win95.txt": 42}
    note:
      description: Why the bump is or is not required.
      type: str
missing:
  description: Human-readable list of what is still stale.
  returned: state is converged
  type: list
  elements: str
  sample: ["X86.bin/Smsrun32.exe has sha256 ab12cd34ef56.. (unchanged since the baseline), expects 9f3c0a1b2c3d.."]
baseline:
  description: The baseline record (recorded now or before).
  returned: state is baseline or converged and a baseline exists
  type: dict
recorded:
  description: Whether this run wrote the baseline (false when one existed, or in check mode).
  returned: state is baseline
  type: bool
baseline_path:
  description: Where the baseline is kept.
  returned: state is baseline or converged
  type: str
pushed:
  description: Files copied (or that would be copied in check mode) by a push.
  returned: state is pushed
  type: list
  elements: str
journal:
  description: The push journal (originals backed up once, under C(<state_dir>/push/backup/<Platform>.bin/)).
  returned: state is pushed or restored
  type: str
copy_list_bumped:
  description: Always false - a push never edits the copy lists.
  returned: state is pushed
  type: bool
copy_list_note:
  description: What a push means for the copy lists and the clients.
  returned: state is pushed
  type: str
slices:
  description: How many module runs the action plugin made during the wait.
  returned: state is converged and timeout > 0 (action plugin)
  type: int
restored:
  description:
    - Files put back (or removed, when the push had created them).
    - On a push that failed half-way, the paths put back as they were before the push.
  returned: state is restored, or a push failed after it had changed files
  type: list
  elements: str
retired:
  description:
    - The folder the restored push-journal entries and their backups were moved to; null in check mode.
  returned: state is restored and a push journal existed
  type: str
  sample: /srv/C/SMS/Hotfix/Q216552/push/retired/20261124T170211Z
need:
  description: Bytes a push needs on the filesystem that lacks them.
  returned: failure, when a push lacks free space
  type: int
have:
  description: Bytes free on that filesystem.
  returned: failure, when a push lacks free space
  type: int
removed:
  description: Baseline files removed.
  returned: state is reset
  type: list
  elements: str
failed_path:
  description: The file or folder a failure is about.
  returned: failure, when a path is concerned
  type: str
kb:
  description: The KB number whose state folder was used.
  returned: always
  type: str
state_dir:
  description: The hotfix's state folder on the server.
  returned: always
  type: str
manifest_path:
  description: The manifest the module read on the server (in the remote temporary folder after a transfer).
  returned: when the module read a manifest file
  type: str
manifest_source:
  description:
    - V(controller) when the action plugin read the manifest on the controller (a wait gets its
      expected files, a push a copy of manifest and payload), V(host) when the server read I(manifest).
  returned: when I(manifest) is given (action plugin)
  type: str
  sample: controller
transferred:
  description: Files the action plugin sent for a push, relative to the manifest's folder (the manifest first).
  returned: state is pushed and manifest_source is controller
  type: list
  elements: str
stale_temporary_files:
  description: Temporary files of an interrupted push or restore that this run removed (or would, in check mode).
  returned: state is pushed or restored, when there were any
  type: list
  elements: str
backups_kept:
  description:
    - On a failed push whose put-back also failed, the backups of the files that could not be put back;
      the push journal still names them, and a later push or I(state=restored) finishes the work.
  returned: on such a failure
  type: list
  elements: str
"""

import hashlib
import json
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    JOURNAL_ROOM, BackupJournal, SmsFileError, Transaction, check_free_space, check_new_folders, check_writable,
    iso_utc, read_json, write_json)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    SMB_ARGS, PathRefused, clean_temps, normal_path, open_volume, plain_results, smb_settings, stale_temps)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import copy_list_version
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    PLATFORM_DIRS, ManifestError, check_plain_name, load_manifest, payload_parts, payload_volume)

DEFAULT_COPY_LISTS = ["Cl_nt.txt", "Cl_win95.txt", "Cl_win.txt", "Cl_dos.txt", "Cl_os2.txt"]
ADVICE = ("check that the Maintenance Manager runs on the site server (SMS Service Manager), "
          "trigger a pass, or use push mode (sms_replication_mode=push)")
BUMP_ADVICE = ("the hotfix files are here but the copy lists were never regenerated: give System.map a new "
               "timestamp on the site server (run the site tier again with -e sms_stage_bump=always), then wait "
               "again")
PUSH_JOURNAL = "push"
_KB = re.compile(r"^Q[0-9]{5,7}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReplicationError(Exception):
    def __init__(self, msg, **facts):
        super().__init__(msg)
        self.msg = msg
        self.facts = facts


def short(digest):
    return "%s.." % digest[:12] if digest else "none"


# --- expectations --------------------------------------------------------

def expectations_from_param(expect, platforms):
    """Validate `expect` (platform -> [{name, sha256}]); return platform -> [entries]."""
    result = {}
    for platform, files in expect.items():
        key = str(platform).lower()
        if key not in PLATFORM_DIRS:
            raise ReplicationError("expect: platform %r is unknown; known platforms: %s"
                                   % (platform, ", ".join(sorted(PLATFORM_DIRS))))
        if not isinstance(files, list) or not files:
            raise ReplicationError("expect: platform %s must list at least one {name, sha256}" % platform)
        seen = set()
        entries = []
        for index, entry in enumerate(files):
            where = "expect: platform %s, file #%d" % (platform, index + 1)
            if not isinstance(entry, dict):
                raise ReplicationError("%s must be a dict with name and sha256" % where)
            try:
                check_plain_name(entry.get("name"), where)
            except ManifestError as exc:
                raise ReplicationError(exc.msg)
            digest = str(entry.get("sha256", "")).lower()
            if not _SHA256.match(digest):
                raise ReplicationError("%s (%s): sha256 %r is not 64 hex digits" % (where, entry["name"], digest))
            if entry["name"].lower() in seen:
                raise ReplicationError("%s: %s listed twice (names are case-insensitive)" % (where, entry["name"]))
            seen.add(entry["name"].lower())
            entries.append({"name": entry["name"], "sha256": digest})
        result[key] = entries
    return filter_platforms(result, platforms, "the expected files")


def filter_platforms(expected, platforms, source):
    if not platforms:
        return expected
    wanted = [p.lower() for p in platforms]
    for name in wanted:
        if name not in PLATFORM_DIRS:
            raise ReplicationError("platform %r is unknown; known platforms: %s"
                                   % (name, ", ".join(sorted(PLATFORM_DIRS))))
        if name not in expected:
            raise ReplicationError("%s does not define platform %r; it defines %s"
                                   % (source, name, ", ".join(sorted(expected))))
    return {p: files for p, files in expected.items() if p in wanted}


def expectations_from_manifest(manifest):
    return {p: [{"name": f["name"], "sha256": f["sha256"]} for f in spec["files"]]
            for p, spec in manifest["platforms"].items()}


def expectation_key(expected):
    """First 12 hex digits of the SHA-256 of the sorted expected set."""
    items = sorted((p, f["name"].lower(), f["sha256"]) for p, files in expected.items() for f in files)
    return hashlib.sha256(json.dumps(items).encode("utf-8")).hexdigest()[:12]


# --- the server's state ------------------------------------------------------

class LogonServer:
    """A logon server's SMS root: Logon.srv, its platform folders and copy lists (no link followed)."""

    def __init__(self, sms_root, copy_lists, params=None):
        sms_root = normal_path(sms_root)
        self.volume = open_volume(sms_root, label="the logon server's SMS root",
                                  smb=smb_settings(params or {}, sms_root))
        self.copy_lists = copy_lists
        if self.volume.entry(()).kind != "dir":
            raise ReplicationError("SMS root %s does not exist; check sms_drive_root / sms_root for this host"
                                   % sms_root, path=sms_root)
        found = self.volume.find((), "Logon.srv")
        if found is None or self.volume.entry((found,)).kind not in ("dir", "link"):
            raise ReplicationError("%s has no Logon.srv folder: this host is not an SMS logon server, "
                                   "or sms_root is wrong" % sms_root, path=sms_root)
        self.logon_parts = (found,)
        self.volume.listdir(self.logon_parts)  # a link is refused, named
        self.logon_srv = self.volume.path(self.logon_parts)
        self._hashes = {}
        self._lists = {}

    def rel(self, parts):
        return "/".join(parts[len(self.logon_parts):])

    def platform_dir(self, platform):
        """Parts of the server's Logon.srv/<Platform>.bin; refuse when it is missing."""
        found = self.volume.find(self.logon_parts, PLATFORM_DIRS[platform])
        if found is None or self.volume.entry(self.logon_parts + (found,)).kind not in ("dir", "link"):
            raise ReplicationError(
                "%s has no %s folder: this logon server does not serve %s clients; "
                "leave %s out of the rollout's platforms (sms_rollout_platforms) or check the server"
                % (self.logon_srv, PLATFORM_DIRS[platform], platform, platform),
                path=self.volume.path(self.logon_parts + (PLATFORM_DIRS[platform],)))
        parts = self.logon_parts + (found,)
        self.volume.listdir(parts)
        return parts

    def sha256(self, parts, entry=None):
        """SHA-256 of a file, kept while its inode, size and times are unchanged, so polling stays cheap."""
        entry = entry or self.volume.entry(parts)
        if entry.kind is None:
            return None
        if entry.kind != "file":
            self.volume.read(parts)  # a link is refused, named
            raise ReplicationError("%s is not a file" % self.volume.path(parts), path=self.volume.path(parts))
        stamp = entry.stamp()
        cached = self._hashes.get(parts)
        if cached and cached[0] == stamp:
            return cached[1]
        digest = self.volume.sha256(parts)
        self._hashes[parts] = (stamp, digest)
        return digest

    def files(self, expected, dirs):
        status = []
        for platform in sorted(expected):
            folder = dirs[platform]
            listing = {entry.name.lower(): entry for entry in self.volume.listdir(folder)}
            for item in expected[platform]:
                entry = listing.get(item["name"].lower())
                parts = folder + ((entry.name if entry else item["name"]),)
                found = self.sha256(parts, entry) if entry else None
                status.append({
                    "platform": platform, "name": item["name"], "parts": parts,
                    "path": self.volume.path(parts), "expected_sha256": item["sha256"], "found_sha256": found,
                    "ok": found == item["sha256"],
                })
        return status

    def copy_list_versions(self):
        """CopyListVersion per present copy list (on-disk name); at least one must exist."""
        versions = {}
        listing = {entry.name.lower(): entry for entry in self.volume.listdir(self.logon_parts)}
        for name in self.copy_lists:
            entry = listing.get(name.lower())
            if entry is None or entry.kind is None:
                continue
            parts = self.logon_parts + (entry.name,)
            if entry.kind != "file":
                self.volume.read(parts)  # a link is refused, named
                continue
            cached = self._lists.get(parts)
            if cached and cached[0] == entry.stamp():
                value = cached[1]
            else:
                value = copy_list_version(self.volume.read(parts))
                self._lists[parts] = (entry.stamp(), value)
            try:
                versions[entry.name] = int(str(value).strip())
            except (TypeError, ValueError):
                raise ReplicationError(
                    "copy list %s has no decimal CopyListVersion (found %r); "
                    "let the Maintenance Manager regenerate it (touch System.map on the site server)"
                    % (self.volume.path(parts), value), path=self.volume.path(parts))
        if not versions:
            raise ReplicationError(
                "%s holds none of the copy lists %s: this host is not an SMS logon server, or the copy_lists "
                "option is wrong" % (self.logon_srv, ", ".join(self.copy_lists)), path=self.logon_srv)
        return versions


def public(files):
    return [{k: v for k, v in item.items() if k != "parts"} for item in files]


def copy_list_status(versions, baseline, require_bump):
    current = min(versions.values())
    status = {"baseline": None, "current": current, "required": False, "ok": None, "files": versions}
    if baseline is None:
        status["note"] = ("no baseline was recorded before staging: the copy-list bump is unknown and "
                          "not required")
    elif baseline.get("files_already_current"):
        status["baseline"] = baseline.get("copy_list_version")
        status["ok"] = True
        status["note"] = ("the files were already current when the baseline was recorded: "
                          "no copy-list bump is waited for")
    else:
        status["baseline"] = baseline.get("copy_list_version")
        status["ok"] = current > status["baseline"]
        status["required"] = bool(require_bump)
        status["note"] = ("every present copy list must carry a CopyListVersion greater than %d"
                          % status["baseline"] if require_bump else
                          "the copy-list bump is reported but not required")
    return status


def describe_missing(files, copy_list, baseline):
    before = (baseline or {}).get("files", {})
    missing = []
    for item in files:
        if item["ok"]:
            continue
        label = "%s/%s" % (PLATFORM_DIRS[item["platform"]], item["name"])
        if item["found_sha256"] is None:
            missing.append("%s is missing, expects %s" % (label, short(item["expected_sha256"])))
            continue
        old = ""
        if before.get("%s/%s" % (item["platform"], item["name"].lower())) == item["found_sha256"]:
            old = " (unchanged since the baseline)"
        missing.append("%s has sha256 %s%s, expects %s"
                       % (label, short(item["found_sha256"]), old, short(item["expected_sha256"])))
    if copy_list["required"] and not copy_list["ok"]:
        missing.append("copy lists carry CopyListVersion %s (%s), need > %s (seen before staging)"
                       % (copy_list["current"],
                          ", ".join("%s=%s" % kv for kv in sorted(copy_list["files"].items())),
                          copy_list["baseline"]))
    return missing


# --- states ------------------------------------------------------------------

class Context:
    def __init__(self, module):
        p = module.params
        self.module = module
        self.params = p
        self.label = p["server_name"] or p["sms_root"]
        self.manifest = None
        self.expected = None
        if p["state"] == "pushed" and p["expect"]:
            raise ReplicationError("expect cannot be used with state=pushed: a push copies the manifest's payload")
        if p["manifest"] and (p["state"] != "reset" or not (p["kb"] or p["state_dir"])):
            try:
                self.manifest = load_manifest(p["manifest"], platforms=None if p["expect"] else p["platforms"],
                                              check_payload=p["state"] == "pushed")
            except ManifestError as exc:
                raise ReplicationError(exc.msg, path=exc.path, **exc.facts)
        if p["expect"]:
            self.expected = expectations_from_param(p["expect"], p["platforms"])
        elif self.manifest:
            self.expected = expectations_from_manifest(self.manifest)
        kb = p["kb"] or (self.manifest or {}).get("kb")
        if kb is not None and not _KB.match(kb):
            raise ReplicationError("kb %r is not a Knowledge Base number like Q216552" % kb)
        if p["state_dir"]:
            path = normal_path(p["state_dir"])
            self.volume = open_volume(path, label="the hotfix's state folder", smb=smb_settings(p, path))
            self.state_parts = ()
            self.kb = kb or path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        elif kb:
            self.kb = kb
            root_path = normal_path(p["sms_root"])
            root = open_volume(root_path, label="the logon server's SMS root", smb=smb_settings(p, root_path))
            hotfix = root.find((), "Hotfix") if root.entry(()).kind == "dir" else None
            kb_name = (root.find((hotfix,), kb) if hotfix and root.entry((hotfix,)).kind == "dir" else None) or kb
            self.volume, self.state_parts = root, ((hotfix or "Hotfix"), kb_name)
        else:
            raise ReplicationError("name the hotfix's state folder: give kb (or manifest, or state_dir) with expect")
        self.state_dir = self.volume.path(self.state_parts)

    def baseline_parts(self):
        return self.state_parts + ("copylist-baseline-%s.json" % expectation_key(self.expected),)

    def baseline_path(self):
        return self.volume.path(self.baseline_parts())


def run_baseline(ctx, server):
    started = time.monotonic()
    dirs = {p: server.platform_dir(p) for p in ctx.expected}
    versions = server.copy_list_versions()
    files = server.files(ctx.expected, dirs)
    parts = ctx.baseline_parts()
    path = ctx.volume.path(parts)
    existing = read_json(ctx.volume, parts)
    result = {"baseline_path": path, "files": public(files)}
    if existing is not None:
        result.update(changed=False, baseline=existing, recorded=False,
                      msg="logon server %s: baseline kept (CopyListVersion %s recorded %s)"
                      % (ctx.label, existing.get("copy_list_version"), existing.get("recorded")))
    else:
        record = {
            "kb": ctx.kb, "copy_list_version": max(versions.values()), "copy_lists": versions,
            "recorded": iso_utc(time.time()), "server": ctx.label,
            "files_already_current": all(item["ok"] for item in files),
            "files": {"%s/%s" % (i["platform"], i["name"].lower()): i["found_sha256"] for i in files},
            "expected": dict(sorted(ctx.expected.items())),
        }
        # Checked in check mode too, so the preflight refuses a server it could not record on.
        check_new_folders(ctx.volume, [ctx.state_parts])
        check_free_space([(ctx.volume, ctx.volume.existing(ctx.state_parts), JOURNAL_ROOM)])
        if not ctx.module.check_mode:
            ctx.volume.makedirs(ctx.state_parts)
            write_json(ctx.volume, parts, record)
        result.update(changed=True, baseline=record, recorded=not ctx.module.check_mode,
                      msg="logon server %s: %s CopyListVersion %d as the baseline"
                      % (ctx.label, "would record" if ctx.module.check_mode else "recorded",
                         record["copy_list_version"]))
    result["copy_list"] = copy_list_status(versions, result["baseline"], True)
    result["converged"] = all(item["ok"] for item in files)
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def run_converged(ctx, server):
    p = ctx.params
    if p["timeout"] < 0:
        raise ReplicationError("timeout must be 0 (check once) or a number of seconds, not %d" % p["timeout"])
    if p["sleep"] <= 0:
        raise ReplicationError("sleep must be a positive number of seconds, not %s" % p["sleep"])
    timeout = 0 if ctx.module.check_mode else p["timeout"]
    started = time.monotonic()
    dirs = {platform: server.platform_dir(platform) for platform in ctx.expected}
    parts = ctx.baseline_parts()
    polls = 0
    baseline = None
    while True:
        polls += 1
        if baseline is None:
            baseline = read_json(ctx.volume, parts)
        files = server.files(ctx.expected, dirs)
        copy_list = copy_list_status(server.copy_list_versions(), baseline, p["require_copy_list_bump"])
        converged = all(item["ok"] for item in files) and (copy_list["ok"] or not copy_list["required"])
        elapsed = time.monotonic() - started
        if converged or elapsed >= timeout:
            break
        time.sleep(min(p["sleep"], max(timeout - elapsed, 0.01)))
    elapsed = round(time.monotonic() - started, 3)
    missing = describe_missing(files, copy_list, baseline)
    files_ok = all(item["ok"] for item in files)
    result = {
        "changed": False, "converged": converged, "elapsed": elapsed, "polls": polls, "files": public(files),
        "copy_list": copy_list, "missing": missing, "baseline_path": ctx.volume.path(parts),
    }
    if baseline is not None:
        result["baseline"] = baseline
    if converged:
        result["msg"] = "logon server %s: converged after %.1fs" % (ctx.label, elapsed)
    else:
        advice = BUMP_ADVICE if files_ok and copy_list["required"] and not copy_list["ok"] else ADVICE
        result["advice"] = advice
        result["msg"] = "logon server %s: not converged after %ds: %s; %s" % (
            ctx.label, int(round(elapsed)), "; ".join(missing), advice)
        if timeout > 0 and p["fail_on_timeout"]:
            result["failed"] = True
    return result


def _describe(path, digest):
    return "%s sha256=%s\n" % (path, digest or "(absent)")


def run_pushed(ctx, server):
    started = time.monotonic()
    manifest = ctx.manifest
    volume = server.volume
    payload = payload_volume(manifest)
    dirs = {p: server.platform_dir(p) for p in ctx.expected}
    plan = []
    for platform in sorted(ctx.expected):
        listing = {entry.name.lower(): entry for entry in volume.listdir(dirs[platform])}
        for entry in manifest["platforms"][platform]["files"]:
            found_entry = listing.get(entry["name"].lower())
            current = dirs[platform] + (found_entry.name,) if found_entry else None
            found = server.sha256(current, found_entry) if current else None
            if found != entry["sha256"]:
                plan.append((platform, entry, current, found))
    diff = {"before": "", "after": ""}
    pushed = []
    journal = BackupJournal(ctx.volume, ctx.state_parts + (PUSH_JOURNAL,))
    for platform, entry, current, found in plan:
        dest = current or dirs[platform] + (entry["name"],)
        pushed.append(server.rel(dest))
        diff["before"] += _describe(server.rel(dest), found)
        diff["after"] += _describe(server.rel(dest), entry["sha256"])
    temps = stale_temps([(volume, folder, False) for folder in sorted(set(dirs.values()))]
                        + [(ctx.volume, ctx.state_parts, True)])
    if plan:
        push_preflight(plan, dirs, journal, volume)
    if (plan or temps) and not ctx.module.check_mode:
        clean_temps(temps)
        txn = Transaction(journal)
        try:
            # Back up every original (and note it in the journal) before the first copy.
            for platform, entry, current, found in plan:
                txn.record(PLATFORM_DIRS[platform], entry["name"], volume, current, save=False)
            if plan:
                txn.makedirs(journal.volume, journal.parts)
                journal.save()
            for platform, entry, current, found in plan:
                dest = current or dirs[platform] + (entry["name"],)
                txn.remember(volume, current, dest)
                volume.copy_from(payload, payload_parts(manifest, entry), dest, mtime=entry["mtime"],
                                 expect_sha256=entry["sha256"])
        except (SmsFileError, OSError) as exc:
            raise push_failed(ctx, exc, txn)
    files = server.files(ctx.expected, dirs)
    converged = all(item["ok"] for item in files)
    if not converged and not ctx.module.check_mode:
        bad = [i["path"] for i in files if not i["ok"]]
        raise ReplicationError("push to logon server %s did not verify: %s; check the disk and push again"
                               % (ctx.label, ", ".join(bad)), files=public(files))
    result = {
        "changed": bool(plan) or bool(temps), "pushed": pushed, "files": public(files), "converged": converged,
        "journal": journal.path, "copy_list_bumped": False,
        "copy_list_note": "copy lists are not bumped in push mode (editing them by hand is unsupported); "
                          "clients will not notice the change by themselves",
        "elapsed": round(time.monotonic() - started, 3),
        "msg": "logon server %s: %s %d file(s)" % (
            ctx.label, "would push" if ctx.module.check_mode else "pushed", len(plan)),
    }
    if temps:
        result["stale_temporary_files"] = [v.path(f + (n,)) for v, f, names in temps for n in names]
    if ctx.module._diff:
        result["diff"] = diff
    return result


def push_preflight(plan, dirs, journal, volume):
    """Before anything is touched: the folders to write are writable and hold enough free space."""
    new_backups = [(platform, entry, current) for platform, entry, current, _found in plan
                   if journal.entry(PLATFORM_DIRS[platform], entry["name"]) is None]
    state = journal.volume
    try:
        check_writable(volume, [dirs[platform] for platform, _e, _c, _f in plan])
        check_new_folders(state, [journal.parts] + [journal.parts + ("backup", PLATFORM_DIRS[platform])
                                                    for platform, _entry, _current in new_backups])
        if journal.exists():
            check_writable(state, [journal.parts], [journal.file_parts])
        needs = [(volume, dirs[platform], entry["size"]) for platform, entry, _current, _found in plan]
        needs += [(state, state.existing(journal.parts + ("backup", PLATFORM_DIRS[platform])),
                   volume.entry(current).size) for platform, _entry, current in new_backups if current]
        needs.append((state, state.existing(journal.parts), JOURNAL_ROOM))
        check_free_space(needs)
    except SmsFileError as exc:
        raise ReplicationError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)


def push_failed(ctx, exc, txn):
    """A push failed half-way: put back what it changed, and say so."""
    restored, problems = txn.rollback()
    if isinstance(exc, SmsFileError):
        msg, path, facts = exc.msg, exc.path, dict(exc.facts)
    else:
        msg, path, facts = "%s: %s" % (exc.filename or "a file", exc.strerror or exc), exc.filename, {}
    if problems:
        msg += ("; the push stopped part-way and what it had changed could not all be put back (%s)%s" % (
            "; ".join(problems), txn.owed_note() or ": fix the cause, then undo it with state=restored or push again"))
        if txn.owed:
            facts.update(owed=txn.owed, backups_kept=txn.owed_backups())
    elif restored:
        msg += ("; the push stopped part-way, and the %d file(s) it had already changed were put back as they "
                "were (%s), so logon server %s is as before the push" % (
                    len(restored), ", ".join(restored), ctx.label))
    else:
        msg += "; nothing was changed"
    facts["restored"] = restored
    return ReplicationError(msg, path=path, **facts)


def run_restored(ctx, server):
    started = time.monotonic()
    volume = server.volume
    journal = BackupJournal(ctx.volume, ctx.state_parts + (PUSH_JOURNAL,))
    result = {"changed": False, "restored": [], "journal": journal.path}
    if not journal.exists():
        result.update(elapsed=round(time.monotonic() - started, 3),
                      msg="logon server %s: nothing was pushed (no %s)" % (ctx.label, journal.path))
        return result
    wanted = None
    if ctx.params["platforms"]:
        wanted = []
        for platform in ctx.params["platforms"]:
            if platform.lower() not in PLATFORM_DIRS:
                raise ReplicationError("platform %r is unknown; known platforms: %s"
                                       % (platform, ", ".join(sorted(PLATFORM_DIRS))))
            wanted.append(PLATFORM_DIRS[platform.lower()].lower())
    plan, keys = [], []
    for key, entry in sorted(journal.entries().items()):
        group = key.rsplit("/", 1)[0]
        if wanted is not None and group.lower() not in wanted:
            continue
        keys.append(key)
        try:
            journal.verify(entry)
        except SmsFileError as exc:
            raise ReplicationError(exc.msg + "; nothing was restored", path=exc.path, **exc.facts)
        folder_name = volume.find(server.logon_parts, group)
        if folder_name is None:
            raise ReplicationError("%s has no %s folder any more; nothing was restored" % (server.logon_srv, group),
                                   path=volume.path(server.logon_parts + (group,)))
        folder = server.logon_parts + (folder_name,)
        current_name = volume.find(folder, entry["name"])
        current = folder + (current_name,) if current_name else None
        found = server.sha256(current) if current else None
        if entry["existed"] and found != entry["sha256"]:
            plan.append((entry, current or folder + (entry["name"],), found, entry["sha256"]))
        elif not entry["existed"] and current is not None:
            plan.append((entry, current, found, None))
    # A completed restore sets the push journal aside (retired), so a later push backs up what it finds then.
    if keys:
        result["retired"] = None
        try:
            check_writable(journal.volume, [journal.parts])
            check_writable(volume, sorted({dest[:-1] for _e, dest, _f, _w in plan}))
        except SmsFileError as exc:
            raise ReplicationError("%s; nothing was restored" % exc.msg, path=exc.path)
    diff = {"before": "", "after": ""}
    for entry, dest, found, wanted_sha in plan:
        relative = server.rel(dest)
        result["restored"].append(relative)
        diff["before"] += _describe(relative, found)
        diff["after"] += _describe(relative, wanted_sha)
    # Temporary files a killed push or restore left: removed from every folder the restore writes.
    temps = stale_temps([(volume, folder, False) for folder in sorted({dest[:-1] for _e, dest, _f, _w in plan})]
                        + [(ctx.volume, ctx.state_parts, True)])
    if temps:
        result["stale_temporary_files"] = [v.path(f + (n,)) for v, f, names in temps for n in names]
    if not ctx.module.check_mode:
        clean_temps(temps)
        for entry, dest, found, wanted_sha in plan:
            if wanted_sha is None:
                try:
                    volume.unlink(dest)
                except SmsFileError as exc:
                    raise ReplicationError("cannot remove %s (%s), which the push had created"
                                           % (volume.path(dest), exc.msg), path=volume.path(dest))
            else:
                try:
                    journal.restore(entry, volume, dest)
                except SmsFileError as exc:
                    raise ReplicationError("%s; the restore stopped part-way: fix the cause and run it again"
                                           % exc.msg, path=exc.path, **exc.facts)
        if keys:
            try:
                result["retired"] = journal.retire_entries(keys)
            except SmsFileError as exc:
                raise ReplicationError(
                    "logon server %s: %d file(s) restored, but the push journal %s could not be set aside (%s); "
                    "fix the cause and run the restore again (it will only retire the journal)"
                    % (ctx.label, len(plan), journal.path, exc.msg), path=exc.path)
    msg = "logon server %s: %s %d file(s)" % (
        ctx.label, "would restore" if ctx.module.check_mode else "restored", len(plan))
    if keys:
        msg += ("; the push journal would be set aside (retired)" if ctx.module.check_mode
                else "; the push journal was set aside in %s" % result["retired"])
    result.update(changed=bool(plan) or bool(keys) or bool(temps), elapsed=round(time.monotonic() - started, 3),
                  msg=msg)
    if ctx.module._diff:
        result["diff"] = diff
    return result


def run_reset(ctx):
    started = time.monotonic()
    found = [entry.name for entry in ctx.volume.listdir(ctx.state_parts)
             if entry.name.startswith("copylist-baseline-") and entry.name.endswith(".json")]
    if found:
        check_writable(ctx.volume, [ctx.state_parts])
    if not ctx.module.check_mode:
        for name in found:
            try:
                ctx.volume.unlink(ctx.state_parts + (name,))
            except SmsFileError as exc:
                raise ReplicationError("cannot remove the baseline %s (%s)" % (
                    ctx.volume.path(ctx.state_parts + (name,)), exc.msg), path=exc.path)
    removed = [ctx.volume.path(ctx.state_parts + (name,)) for name in sorted(found)]
    return {"changed": bool(found), "removed": removed, "elapsed": round(time.monotonic() - started, 3),
            "msg": "logon server %s: %s %d baseline(s)" % (
                ctx.label, "would remove" if ctx.module.check_mode else "removed", len(found))}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sms_root=dict(type="str", required=True),
            manifest=dict(type="path"),
            expect=dict(type="dict"),
            kb=dict(type="str"),
            platforms=dict(type="list", elements="str"),
            state=dict(type="str", default="converged",
                       choices=["baseline", "converged", "pushed", "restored", "reset"]),
            copy_lists=dict(type="list", elements="str", default=list(DEFAULT_COPY_LISTS)),
            require_copy_list_bump=dict(type="bool", default=True),
            timeout=dict(type="int", default=0),
            sleep=dict(type="float", default=0.25),
            fail_on_timeout=dict(type="bool", default=True),
            state_dir=dict(type="str"),
            server_name=dict(type="str"),
            # Consumed by the action plugin of the same name (it never reaches the module); declared so the
            # argument spec and the documentation agree.
            transfer=dict(type="str", choices=["auto", "always", "never"], default="auto"),
            progress_interval=dict(type="float", default=30),
            **SMB_ARGS
        ),
        required_if=[
            ("state", "pushed", ("manifest",)),
            ("state", "baseline", ("manifest", "expect"), True),
            ("state", "converged", ("manifest", "expect"), True),
            ("state", "restored", ("manifest", "kb", "state_dir"), True),
            ("state", "reset", ("manifest", "kb", "state_dir"), True),
        ],
        supports_check_mode=True,
    )
    plain_results(module)
    started = time.monotonic()
    state = module.params["state"]
    facts = {"elapsed": 0.0}
    try:
        ctx = Context(module)
        facts.update(kb=ctx.kb, state_dir=ctx.state_dir)
        if state == "reset":
            result = run_reset(ctx)
        else:
            server = LogonServer(module.params["sms_root"], module.params["copy_lists"], module.params)
            handler = {"baseline": run_baseline, "converged": run_converged,
                       "pushed": run_pushed, "restored": run_restored}[state]
            result = handler(ctx, server)
    except (ReplicationError, SmsFileError) as exc:
        facts.update(exc.facts)
        facts.pop("missing", None)
        if getattr(exc, "path", None):
            facts.setdefault("path", exc.path)
        if isinstance(exc, PathRefused):
            facts["refused"] = True
        # AnsibleModule would describe a `path` fact as a file (and add a `state` key)
        if "path" in facts:
            facts["failed_path"] = facts.pop("path")
        facts["elapsed"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=exc.msg, **facts)
    result.update(kb=ctx.kb, state_dir=ctx.state_dir)
    if ctx.manifest:
        result["manifest_path"] = ctx.manifest["path"]
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
