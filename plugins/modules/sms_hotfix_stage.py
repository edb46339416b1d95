#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_hotfix_stage
short_description: Stage an SMS 1.2 client hotfix in Client.src on the site server, or roll it back
description:
  - Replaces the hotfix's files in C(Site.srv/Maincfg.box/Client.src/<Platform>.bin) under the
    SMS root of an SMS 1.2 site server, so that Maintenance Manager carries them to every logon
    server, and forces the copy-list version bump the supported way (Q166771) by giving
    C(System.map) a new timestamp, its content unchanged.
  - Everything is checked before anything is touched; the manifest (known platforms, plain file
    names), the payload (every file present, size and SHA-256 as in the manifest), the SMS root
    (C(Site.srv), C(Maincfg.box), C(Client.src), each targeted C(<Platform>.bin), C(System.map)),
    that the folders to write are writable and that there is enough free space. Any failure names
    the cause and the path, and nothing is changed.
  - File names are matched case-insensitively (C(SMSRUN32.EXE) is C(Smsrun32.exe)); a replaced file
    keeps the name it has on disk. Files are compared by SHA-256. A file that differs is backed up
    once per hotfix (backup area C(<state_dir>/backup/<Platform>.bin/) and journal
    C(<state_dir>/journal.json) recording the original name, size, date and SHA-256; a later run
    never replaces that backup), then replaced atomically (temporary file in the same folder, then
    rename), given the manifest's date and verified.
  - If a step fails after files were replaced in the same run, those files are put back as they were
    before the run, the backups and journal entries made by the run are removed, and the module fails
    saying so.
  - With O(state=rolled_back) the originals recorded in the journal are restored byte for byte, with
    their original name and date (a file that did not exist before the hotfix is removed), and
    C(System.map) is bumped again. Every backup is verified before the first file is restored.
  - A completed rollback sets its journal entries and their backups aside in
    C(<state_dir>/retired/<UTC date>/) (only the rolled-back platforms' entries when O(platforms) limits
    it), so a later rollout backs up the files it finds then (a service pack may have changed them)
    instead of trusting the old backups. A second rollback then finds no journal and changes nothing.
  - A backup named by the journal that is missing or no longer has the recorded SHA-256 stops a staging
    run before any change, as it is the only copy of the original. Restore it from elsewhere, or retire the
    journal by hand.
  - Take the rollout lock (M(sms_rollout_lock)) before running this module, so two rollouts cannot
    stage at once.
version_added: "1.0.0"
author: the sms-hotfix-rollout authors
options:
  sms_root:
    description: The site server's SMS root folder (C(<drive>/SMS)), holding C(System.map) and C(Site.srv).
    type: path
    required: true
  manifest:
    description:
      - Path of the hotfix's C(manifest.json). Payload paths in it are relative to its folder.
      - With O(state=rolled_back) only the manifest is read (for the KB number and platforms); the payload is not needed.
      - The action plugin of the same name sends a controller-side manifest and its payload to the site
        server first (see O(transfer)); otherwise this is a path on the site server.
    type: path
    required: true
  transfer:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module).
      - V(auto) copies the controller's manifest and the payload of the targeted platforms into the task's
        remote temporary folder when the connection is not C(local) and the controller has O(manifest);
        the module then stages from that copy, and the folder is removed when the task ends.
      - V(always) copies even with the C(local) connection (O(manifest) must be a file on the controller).
      - V(never) lets the site server read O(manifest) as given.
      - Manifest and payload are validated on the controller before anything is sent; a bad payload
        fails the task without touching the site server. With O(state=rolled_back) only the manifest is sent.
    type: str
    choices: [auto, always, never]
    default: auto
  state:
    description:
      - V(present) stages the hotfix's files; V(rolled_back) restores the originals from the journal.
    type: str
    choices: [present, rolled_back]
    default: present
  platforms:
    description:
      - Platforms to work on (V(x86), V(alpha), V(mips)). Default is every platform of the manifest.
    type: list
    elements: str
  bump:
    description:
      - When to give C(System.map) a new timestamp (Q166771), which makes Maintenance Manager write
        copy lists with a new C(CopyListVersion) so clients notice the change.
      - V(auto) bumps only when a file was changed by this run; V(always) bumps on every run (the run then
        always reports a change); V(never) does not bump.
    type: str
    choices: [auto, always, never]
    default: auto
  state_dir:
    description:
      - The hotfix's state folder holding C(backup/) and C(journal.json).
      - Default is C(<sms_root>/Hotfix/<KB>).
    type: path
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be replaced, backed up and bumped; writes nothing.
      - A transfer (O(transfer)) still copies the hotfix into the task's remote temporary folder, which is
        removed when the task ends.
  diff_mode:
    support: full
    details: One entry per changed file (C(<Platform>.bin/<name> sha256:<hash>) before and after) and one for the date of C(System.map).
  platform:
    platforms: posix
notes:
  - Free space needed is checked before any change; a temporary copy of each new file in its folder,
    plus the backups and the journal in O(state_dir).
  - A read-only mount fails the writability check even for root.
seealso:
  - module: sms_rollout_lock
  - module: sms_hotfix_manifest
"""

EXAMPLES = r"""
- name: Stage the hotfix in Client.src
  sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
  register: staged

- name: Stage the x86 files only, and force a copy-list bump even if nothing changed
  sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
    platforms: [x86]
    bump: always

- name: Stage from a copy sent by the controller, even over the local connection (as the tests do)
  sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    transfer: always  # consumed by the action plugin
  register: staged

- name: Roll the hotfix back
  sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
    state: rolled_back
"""

RETURN = r"""
changed:
  description:
    - Whether a file was replaced or restored, C(System.map) was bumped, or a rollback set the journal aside
      (or would, in check mode).
  returned: always
  type: bool
kb:
  description: Knowledge Base number of the hotfix.
  returned: success
  type: str
  sample: Q216552
files:
  description: One entry per file of the targeted platforms (with O(state=rolled_back), per journal entry).
  returned: success
  type: list
  elements: dict
  contains:
    platform:
      description: Platform key.
      type: str
      sample: x86
    name:
      description: File name in the manifest (with O(state=rolled_back), the original name on disk).
      type: str
      sample: Smsrun32.exe
    path:
      description: The file's path on disk, with the name it has there.
      type: str
      sample: /srv/C/SMS/Site.srv/Maincfg.box/Client.src/X86.bin/SMSRUN32.EXE
    before_sha256:
      description: SHA-256 before the run; null when the file did not exist.
      type: str
    after_sha256:
      description: SHA-256 after the run (expected, in check mode); null when the file is (to be) removed.
      type: str
    backup:
      description: Path of the backup of the original; null when there is none (yet) or there was no original.
      type: str
    changed:
      description: Whether this file was (or would be) replaced or restored.
      type: bool
system_map:
  description: The copy-list bump.
  returned: success
  type: dict
  contains:
    path:
      description: Path of C(System.map).
      type: str
    bumped:
      description: Whether it got (in check mode, would get) a new timestamp.
      type: bool
    mtime:
      description: Its date after the run, ISO-8601 UTC (unchanged in check mode).
      type: str
      sample: "2026-11-24T17:02:11Z"
journal:
  description: Path of the backup journal.
  returned: success
  type: str
  sample: /srv/C/SMS/Hotfix/Q216552/journal.json
retired:
  description:
    - With O(state=rolled_back), the folder the rolled-back journal entries and their backups were moved to
      (the RV(files) C(backup) paths point there); null when there was nothing to retire, and in check mode.
  returned: success, with O(state=rolled_back) and a journal
  type: str
  sample: /srv/C/SMS/Hotfix/Q216552/retired/20261124T170211Z
msg:
  description: What happened, in a sentence.
  returned: always
  type: str
manifest_path:
  description: The manifest the module read on the site server (in the remote temporary folder after a transfer).
  returned: success
  type: str
  sample: /root/.ansible/tmp/ansible-tmp-1732467731.5-1234-5678/Q216552/manifest.json
manifest_source:
  description:
    - V(controller) when the action plugin sent the controller's manifest (and payload), V(host) when
      the site server read O(manifest) as given.
  returned: always (action plugin)
  type: str
  sample: controller
transferred:
  description: Files the action plugin sent, relative to the manifest's folder (the manifest first).
  returned: when manifest_source is controller
  type: list
  elements: str
  sample: [manifest.json, payload/X86.bin/Smsrun32.exe]
diff:
  description: With --diff, one entry per changed file and one for the date of C(System.map).
  returned: when diff mode is on
  type: list
  elements: dict
restored:
  description: On a failure after files were replaced, the files put back as they were before the run.
  returned: failure
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import (
    BackupJournal,
    SmsFileError,
    Transaction,
    atomic_copy,
    check_free_space,
    existing_ancestor,
    find_ci,
    iso_utc,
    sha256_file,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import check_writable as _check_writable
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import PLATFORM_DIRS, ManifestError, load_manifest

SITE_PATH = ("Site.srv", "Maincfg.box", "Client.src")
# Room for the journal rewrite (temporary copy next to the old one).
JOURNAL_ROOM = 64 * 1024
GROUP_PLATFORM = {folder.lower(): platform for platform, folder in PLATFORM_DIRS.items()}


class StageError(Exception):
    def __init__(self, msg, **facts):
        super().__init__(msg)
        self.msg = msg
        self.facts = facts


# -- reading the site server ---------------------------------------------------------------------
def resolve_site(sms_root, platforms):
    """Client.src, the platform folders and System.map, matched case-insensitively."""
    if not os.path.isdir(sms_root):
        raise StageError(
            "SMS root %s does not exist or is not a folder; set sms_root to the site server's SMS folder "
            "(<drive>/SMS). Nothing was changed." % sms_root, path=sms_root)
    folder = sms_root
    for part in SITE_PATH:
        found = find_ci(folder, part)
        if found is None or not os.path.isdir(found):
            raise StageError(
                "%s has no %s folder (looked for %s in any case), so %s is not the SMS root of an SMS 1.2 "
                "site server; check sms_root. Nothing was changed."
                % (folder, part, os.path.join(folder, part), sms_root), path=os.path.join(folder, part))
        folder = found
    client_src = folder
    system_map = find_ci(sms_root, "System.map")
    if system_map is None or not os.path.isfile(system_map):
        raise StageError(
            "%s is missing, so the copy lists cannot be bumped (Q166771); check sms_root. Nothing was changed."
            % os.path.join(sms_root, "System.map"), path=os.path.join(sms_root, "System.map"))
    dirs = {}
    for platform in platforms:
        name = PLATFORM_DIRS[platform]
        found = find_ci(client_src, name)
        if found is None or not os.path.isdir(found):
            raise StageError(
                "the platform folder %s is missing, so this site has no %s clients; leave %s out of platforms "
                "or check sms_root. Nothing was changed." % (os.path.join(client_src, name), platform, platform),
                path=os.path.join(client_src, name))
        dirs[platform] = found
    return client_src, system_map, dirs


def default_state_dir(sms_root, kb):
    hotfix = find_ci(sms_root, "Hotfix") or os.path.join(sms_root, "Hotfix")
    return (find_ci(hotfix, kb) if os.path.isdir(hotfix) else None) or os.path.join(hotfix, kb)


def check_writable(folders, files):
    try:
        _check_writable(folders, files)
    except SmsFileError as exc:
        raise StageError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)


def check_space(needs):
    """`needs`: list of (existing folder, bytes). Sums them per filesystem."""
    try:
        check_free_space(needs)
    except SmsFileError as exc:
        raise StageError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)


# -- acting ----------------------------------------------------------------------------------------
def failure_after_change(exc, undo):
    restored, problems = undo.rollback()
    if isinstance(exc, OSError):
        msg = "%s: %s" % (exc.filename or "a file", exc.strerror or exc)
    else:
        msg = exc.msg
    if problems:
        msg += ("; the files replaced by this run could not all be put back (%s): run again with "
                "state=rolled_back once the cause is fixed" % "; ".join(problems))
    elif restored:
        msg += ("; the %d file(s) this run had already changed were put back as they were (%s), so the site "
                "server is as before the run" % (len(restored), ", ".join(restored)))
    else:
        msg += "; nothing was changed"
    return StageError(msg, path=getattr(exc, "path", None), restored=restored)


def bump_system_map(path):
    """A new timestamp, content untouched: the supported way to force new copy lists (Q166771)."""
    now = time.time()
    old = os.stat(path).st_mtime
    if now <= old:
        now = old + 1
    os.utime(path, (now, now))
    return now


# -- the two states --------------------------------------------------------------------------------
def rel(platform_dir, path):
    return "%s/%s" % (os.path.basename(platform_dir), os.path.basename(path))


def damaged_backup(journal, jentry, path, exc):
    """A backup the journal names is gone or damaged: the only copy of the original. Refuse to go on."""
    backup = journal.backup_path(jentry)
    if "found" in exc.facts:
        state = "is damaged: the journal %s recorded SHA-256 %s, the backup has SHA-256 %s" % (
            journal.path, jentry["sha256"], exc.facts["found"])
    else:
        state = "is missing: the journal %s recorded it with SHA-256 %s" % (journal.path, jentry["sha256"])
    return StageError(
        "the backup %s of the original of %s %s. It is the only copy of that original, which a rollback "
        "needs, so nothing is replaced: restore the backup from elsewhere (a copy with SHA-256 %s), or, if the "
        "original is lost for good, retire the journal by hand (move %s and %s into %s) so that the next "
        "rollout backs up the files it finds. Nothing was changed."
        % (backup, path, state, jentry["sha256"], journal.path, os.path.join(journal.root, "backup"),
           os.path.join(journal.root, "retired", "<date>")),
        path=backup, expected=jentry["sha256"], found=exc.facts.get("found"))


def stage(module, manifest, system_map, dirs, journal):
    items = []
    for platform, spec in manifest["platforms"].items():
        folder = dirs[platform]
        group = spec["directory"]
        for entry in spec["files"]:
            current = find_ci(folder, entry["name"])
            if current is not None and not os.path.isfile(current):
                raise StageError("%s is not a file; remove it or rename it and run again. Nothing was changed."
                                 % current, path=current)
            before = sha256_file(current) if current else None
            jentry = journal.entry(group, entry["name"])
            if jentry is not None and jentry.get("existed"):
                try:
                    journal.verify(jentry)
                except SmsFileError as exc:
                    raise damaged_backup(journal, jentry, current or os.path.join(folder, entry["name"]), exc)
                backup = journal.backup_path(jentry)
            elif jentry is None and current is not None:
                backup = os.path.join(journal.root, "backup", group, os.path.basename(current))
            else:
                backup = None
            items.append({
                "platform": platform, "name": entry["name"], "group": group, "folder": folder,
                "current": current, "path": current or os.path.join(folder, entry["name"]),
                "before_sha256": before, "after_sha256": entry["sha256"], "backup": backup,
                "changed": before != entry["sha256"], "entry": entry, "journaled": jentry is not None,
            })
    changes = [item for item in items if item["changed"]]
    bump = module.params["bump"] == "always" or (module.params["bump"] == "auto" and bool(changes))

    # Preflight: writable folders and free space, before anything is touched.
    new_backups = [item for item in changes if not item["journaled"]]
    state_folders = []
    if new_backups:
        for item in new_backups:
            state_folders.append(existing_ancestor(os.path.join(journal.root, "backup", item["group"])))
        state_folders.append(existing_ancestor(journal.root))
    check_writable([item["folder"] for item in changes] + state_folders, [system_map] if bump else [])
    needs = [(item["folder"], item["entry"]["size"]) for item in changes]
    needs += [(existing_ancestor(os.path.join(journal.root, "backup", item["group"])),
               os.path.getsize(item["current"])) for item in new_backups if item["current"]]
    if new_backups:
        needs.append((existing_ancestor(journal.root), JOURNAL_ROOM))
    check_space(needs)

    mtime = os.stat(system_map).st_mtime
    if not module.check_mode and (changes or bump):
        undo = Transaction(journal, [os.path.join(journal.root, "backup", item["group"]) for item in new_backups])
        try:
            for item in new_backups:
                jentry = undo.record(item["group"], item["name"], item["current"])
                item["backup"] = journal.backup_path(jentry)
            for item in changes:
                entry = item["entry"]
                undo.remember_file(item["current"], item["path"])
                atomic_copy(entry["payload"], item["path"], mtime=entry["mtime"], expect_sha256=entry["sha256"])
                found = sha256_file(item["path"])
                if found != entry["sha256"]:
                    raise SmsFileError(
                        "%s has SHA-256 %s after the copy, expected %s; check the disk"
                        % (item["path"], found, entry["sha256"]), path=item["path"])
                item["after_sha256"] = found
            if bump:
                mtime = bump_system_map(system_map)
        except (SmsFileError, OSError) as exc:
            raise failure_after_change(exc, undo)
    for item in items:
        if not item["changed"]:
            item["after_sha256"] = item["before_sha256"]
    return items, bump, mtime


def roll_back(module, manifest, system_map, dirs, journal):
    wanted = {PLATFORM_DIRS[p].lower(): p for p in manifest["platforms"]}
    entries, keys = [], []
    for key, jentry in sorted(journal.entries().items()):
        group = key.split("/", 1)[0]
        if group.lower() in wanted:
            entries.append((wanted[group.lower()], group, jentry))
            keys.append(key)
    # Every backup must be sound before the first file is restored.
    for _platform, _group, jentry in entries:
        try:
            journal.verify(jentry)
        except SmsFileError as exc:
            raise StageError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)
    items = []
    for platform, group, jentry in entries:
        folder = dirs[platform]
        current = find_ci(folder, jentry["name"])
        if current is not None and not os.path.isfile(current):
            raise StageError("%s is not a file; remove it or rename it and run again. Nothing was changed."
                             % current, path=current)
        before = sha256_file(current) if current else None
        if jentry.get("existed"):
            target = os.path.join(folder, jentry["name"])
            changed = (before != jentry["sha256"] or os.path.basename(current) != jentry["name"]
                       or int(os.stat(current).st_mtime) != int(jentry["mtime"]))
            after = jentry["sha256"]
        else:
            target = current
            changed = current is not None
            after = None
        items.append({
            "platform": platform, "name": jentry["name"], "group": group, "folder": folder,
            "current": current, "path": target or os.path.join(folder, jentry["name"]),
            "before_sha256": before, "after_sha256": after, "backup": journal.backup_path(jentry),
            "changed": changed, "jentry": jentry,
        })
    changes = [item for item in items if item["changed"]]
    bump = module.params["bump"] == "always" or (module.params["bump"] == "auto" and bool(changes))
    # A completed rollback sets the journal aside (retired), so a later rollout backs up what it finds then.
    retire = bool(keys)
    check_writable([item["folder"] for item in changes] + ([journal.root] if retire else []),
                   [system_map] if bump else [])
    check_space([(item["folder"], item["jentry"]["size"]) for item in changes if item["jentry"].get("existed")])

    mtime = os.stat(system_map).st_mtime
    retired = None
    if not module.check_mode and (changes or bump):
        undo = Transaction(journal)
        try:
            for item in changes:
                jentry = item["jentry"]
                undo.remember_file(item["current"], item["path"])
                if not jentry.get("existed"):
                    os.unlink(item["current"])
                    continue
                source = journal.backup_path(jentry)
                work = item["current"] or item["path"]
                atomic_copy(source, work, mtime=jentry["mtime"], expect_sha256=jentry["sha256"])
                if work != item["path"]:
                    os.rename(work, item["path"])
                found = sha256_file(item["path"])
                if found != jentry["sha256"]:
                    raise SmsFileError("%s has SHA-256 %s after the restore, expected %s; check the disk"
                                       % (item["path"], found, jentry["sha256"]), path=item["path"])
            if bump:
                mtime = bump_system_map(system_map)
        except (SmsFileError, OSError) as exc:
            raise failure_after_change(exc, undo)
    if retire and not module.check_mode:
        try:
            retired = journal.retire_entries(keys)
        except SmsFileError as exc:
            raise StageError(
                "%s: the files were restored%s, but the journal %s could not be set aside (%s); fix the cause and "
                "run the rollback again (it will only retire the journal)"
                % (manifest["kb"], " (%d)" % len(changes) if changes else "", journal.path, exc.msg), path=exc.path)
        for item in items:
            if item["jentry"].get("backup"):
                item["backup"] = os.path.join(retired, item["jentry"]["backup"])
    return items, bump, mtime, (retired if retire and not module.check_mode else retire)


def make_diff(items, system_map, old_mtime, new_mtime, bumped):
    diff = []
    for item in items:
        if not item["changed"]:
            continue
        label = rel(item["folder"], item["path"])
        diff.append({
            "before_header": label, "after_header": label,
            "before": "%s sha256:%s\n" % (label, item["before_sha256"] or "(absent)"),
            "after": "%s sha256:%s\n" % (label, item["after_sha256"] or "(absent)"),
        })
    if bumped:
        diff.append({
            "before_header": system_map, "after_header": system_map,
            "before": "System.map date: %s\n" % iso_utc(old_mtime),
            "after": "System.map date: %s\n" % ("(now)" if new_mtime == old_mtime else iso_utc(new_mtime)),
        })
    return diff


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sms_root=dict(type="path", required=True),
            manifest=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "rolled_back"], default="present"),
            platforms=dict(type="list", elements="str"),
            bump=dict(type="str", choices=["auto", "always", "never"], default="auto"),
            state_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    rollback = params["state"] == "rolled_back"
    sms_root = os.path.abspath(params["sms_root"])
    try:
        try:
            manifest = load_manifest(params["manifest"], platforms=params["platforms"],
                                     check_payload=not rollback)
        except ManifestError as exc:
            raise StageError("%s. Nothing was changed." % exc.msg, path=exc.path, **exc.facts)
        _client_src, system_map, dirs = resolve_site(sms_root, list(manifest["platforms"]))
        state_dir = os.path.abspath(params["state_dir"] or default_state_dir(sms_root, manifest["kb"]))
        journal = BackupJournal(state_dir)
        old_mtime = os.stat(system_map).st_mtime
        if rollback:
            if not os.path.isfile(journal.path):
                module.exit_json(
                    changed=False, kb=manifest["kb"], files=[], journal=journal.path, manifest_path=manifest["path"],
                    system_map={"path": system_map, "bumped": False, "mtime": iso_utc(old_mtime)},
                    msg="no journal at %s: %s was never staged here, nothing to roll back"
                        % (journal.path, manifest["kb"]), **({"diff": []} if module._diff else {}))
            journal.data  # noqa: B018  (an unreadable journal fails here, before any change)
            items, bumped, new_mtime, retired = roll_back(module, manifest, system_map, dirs, journal)
        else:
            journal.data  # noqa: B018
            items, bumped, new_mtime = stage(module, manifest, system_map, dirs, journal)
            retired = None
    except SmsFileError as exc:
        module.fail_json(msg="%s. Nothing was changed." % exc.msg.rstrip("."), path=exc.path, **exc.facts)
    except StageError as exc:
        module.fail_json(msg=exc.msg, **exc.facts)

    changes = [item for item in items if item["changed"]]
    changed = bool(changes) or bumped or bool(retired)
    verb = "restored" if rollback else "replaced"
    if module.check_mode:
        verb = "would be " + verb
    msg = "%s: %d file(s) %s%s" % (
        manifest["kb"], len(changes), verb,
        ("" if not changes else " (%s)" % ", ".join(rel(i["folder"], i["path"]) for i in changes)))
    msg += "; System.map %s" % (("would be bumped" if module.check_mode else "bumped") if bumped else "not bumped")
    if retired:
        msg += ("; the journal would be set aside (retired)" if module.check_mode
                else "; the journal was set aside in %s" % retired)
    result = dict(
        changed=changed, kb=manifest["kb"], journal=journal.path, msg=msg, manifest_path=manifest["path"],
        files=[{k: item[k] for k in ("platform", "name", "path", "before_sha256", "after_sha256", "backup",
                                     "changed")} for item in items],
        system_map={"path": system_map, "bumped": bumped, "mtime": iso_utc(new_mtime)},
    )
    if rollback:
        result["retired"] = retired if isinstance(retired, str) else None
    if module._diff:
        result["diff"] = make_diff(items, system_map, old_mtime, new_mtime, bumped)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
