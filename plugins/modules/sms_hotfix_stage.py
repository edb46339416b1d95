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
    before the run and checked on disk; only then are the backups and journal entries the run made for them
    removed, and the module fails saying so. A file that cannot be put back (a full disk) keeps its backup and
    its journal entry, the failure names the backup (C(backups_kept)), and the next run or a rollback finishes it.
  - A hotfix file in C(Client.src) with more than one hard link is refused, naming its link count, before
    anything changes; backups keep the original's mode (and owner when run as root).
  - With O(state=absent) the originals recorded in the journal are restored byte for byte, with
    their original name and date (a file that did not exist before the hotfix is removed), and
    C(System.map) is bumped again. Every backup is verified before the first file is restored.
  - A completed rollback sets its journal entries and their backups aside in
    C(<state_dir>/retired/<UTC date>/) (only the rolled-back platforms' entries when O(platforms) limits
    it), so a later rollout backs up the files it finds then (a service pack may have changed them)
    instead of trusting the old backups. A second rollback then finds no journal and changes nothing.
  - A backup named by the journal that is missing or no longer has the recorded SHA-256 stops a staging
    run before any change, as it is the only copy of the original. Restore it from elsewhere, or retire the
    journal by hand.
  - B(Crash-safe.) Before the first file is replaced the journal records that a C(System.map) bump is
    owed (C(pending.bump)); only after the bump is that record cleared. A run killed at any point is
    finished by the next run, which bumps even when every file is already in place. With O(bump=never)
    the owed bump stays recorded, and the next run with O(bump=auto) makes it.
  - Nothing outside O(sms_root) (and O(state_dir)) is read or written, and no symbolic link is followed; a hotfix file in
    C(Client.src) that is a link is refused before anything changes, so neither a backup nor a rollback
    ever copies a link's target into C(Client.src).
  - Temporary files left by a run killed half-way are removed by the next real run (and reported).
  - Take the rollout lock (M(sms.hotfix.sms_rollout_lock)) before running this module, so two rollouts cannot
    stage at once.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
options:
  sms_root:
    description:
      - The site server's SMS root folder (C(<drive>/SMS)), holding C(System.map) and C(Site.srv); or its share
        reached over SMB (C(\\SMSSITE\SMS_SHRC)).
    type: str
    required: true
  manifest:
    description:
      - Path of the hotfix's C(manifest.json). Payload paths in it are relative to its folder.
      - With O(state=absent) only the manifest is read (for the KB number and platforms); the payload is not needed.
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
        fails the task without touching the site server. With O(state=absent) only the manifest is sent.
    type: str
    choices: [auto, always, never]
    default: auto
  state:
    description:
      - V(present) stages the hotfix's files; V(absent) undoes the staging, restoring the originals from the journal.
      - V(rolled_back) is the old name of V(absent), deprecated; it will be removed in version 2.0.0.
    type: str
    choices: [present, absent, rolled_back]
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
      - The hotfix's state folder holding C(backup/) and C(journal.json) (a local path, or a share path over SMB).
      - Default is C(<sms_root>/Hotfix/<KB>).
    type: str
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
    support: full
    platforms: posix
notes:
  - Free space needed is checked before any change; a temporary copy of each new file in its folder,
    plus the backups and the journal in O(state_dir).
  - A read-only mount fails the writability check even for root.
seealso:
  - module: sms.hotfix.sms_rollout_lock
  - module: sms.hotfix.sms_hotfix_manifest
"""

EXAMPLES = r"""
- name: Stage the hotfix in Client.src
  sms.hotfix.sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
  register: staged

- name: Stage the x86 files only, and force a copy-list bump even if nothing changed
  sms.hotfix.sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
    platforms: [x86]
    bump: always

- name: Stage from a copy sent by the controller, even over the local connection (as the tests do)
  sms.hotfix.sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    transfer: always  # consumed by the action plugin
  register: staged

- name: Roll the hotfix back
  sms.hotfix.sms_hotfix_stage:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: /opt/hotfixes/Q216552/manifest.json
    state: absent
"""

RETURN = r"""
changed:
  description:
    - Whether a file was replaced or restored, C(System.map) was bumped, or a rollback set the journal aside
      (or would, in check mode).
  returned: always
  type: bool
status:
  description:
    - What the run did, in one word.
    - V(staged) (files replaced or C(System.map) bumped), V(would_stage) (the same, in check mode),
      V(rolled_back) (originals restored or the journal set aside), V(would_roll_back) (in check mode),
      V(nothing_to_roll_back) (O(state=absent) and no journal, so never staged here), V(unchanged) (nothing to do).
  returned: success
  type: str
  sample: staged
state:
  description: The state the module ran (V(present) or V(absent); a deprecated V(rolled_back) is reported as V(absent)).
  returned: always
  type: str
  sample: present
kb:
  description: Knowledge Base number of the hotfix.
  returned: success
  type: str
  sample: Q216552
files:
  description: One entry per file of the targeted platforms (with O(state=absent), per journal entry).
  returned: success
  type: list
  elements: dict
  contains:
    platform:
      description: Platform key.
      type: str
      sample: x86
    name:
      description: File name in the manifest (with O(state=absent), the original name on disk).
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
    - With O(state=absent), the folder the rolled-back journal entries and their backups were moved to
      (the RV(files) C(backup) paths point there); null when there was nothing to retire, and in check mode.
  returned: success, with O(state=absent) and a journal
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
bump_owed:
  description:
    - Whether a C(System.map) bump is still owed after this run (files were replaced, the bump was not
      made, e.g. O(bump=never)); the journal keeps it and the next run with O(bump=auto) makes it.
  returned: success
  type: bool
backups_kept:
  description:
    - On a failure whose put-back also failed, the backups of the files that could not be put back;
      the journal still names them, and the next run or a rollback finishes the work.
  returned: on such a failure
  type: list
  elements: str
stale_temporary_files:
  description: Temporary files of an interrupted earlier run that this run removed (or would, in check mode).
  returned: when there were any
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, SmsFileError, iso_utc
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import normal_path, open_volume, plain_results
from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
    Change,
    Replacement,
    ReplaceFailed,
    find_current,
    restore_change,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS, smb_settings
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    PLATFORM_DIRS,
    ManifestError,
    load_manifest,
    payload_parts,
    payload_volume,
)

SITE_PATH = ("Site.srv", "Maincfg.box", "Client.src")
NOTHING = "Nothing was changed."


class StageError(Exception):
    def __init__(self, msg, **facts):
        super().__init__(msg)
        self.msg = msg
        self.facts = facts


def refuse(exc):
    """A StageError from a file-layer error, saying that nothing was changed."""
    facts = dict(exc.facts)
    facts.pop("missing", None)
    return StageError("%s. %s" % (exc.msg.rstrip(". "), NOTHING), path=exc.path, **facts)


# -- reading the site server ---------------------------------------------------------------------
class Site:
    """The site server's SMS root: Client.src, the platform folders, System.map, the state folder."""

    def __init__(self, sms_root, platforms, kb, state_dir=None, params=None):
        params = params or {}
        sms_root = normal_path(sms_root)
        self.volume = open_volume(sms_root, label="the site server's SMS root", smb=smb_settings(params, sms_root))
        volume = self.volume
        if volume.entry(()).kind != "dir":
            raise StageError(
                "SMS root %s does not exist or is not a folder; set sms_root to the site server's SMS folder "
                "(<drive>/SMS). %s" % (sms_root, NOTHING),
                path=sms_root,
            )
        parts = ()
        for name in SITE_PATH:
            found = volume.find(parts, name)
            if found is None or volume.entry(parts + (found,)).kind not in ("dir", "link"):
                raise StageError(
                    "%s has no %s folder (looked for %s in any case), so %s is not the SMS root of an SMS 1.2 "
                    "site server; check sms_root. %s"
                    % (volume.path(parts), name, volume.path(parts + (name,)), sms_root, NOTHING),
                    path=volume.path(parts + (name,)),
                )
            parts += (found,)
            volume.listdir(parts)  # a link is refused here, named
        self.client_src = parts
        found = volume.find((), "System.map")
        if found is None or volume.entry((found,)).kind not in ("file", "link"):
            raise StageError(
                "%s is missing, so the copy lists cannot be bumped (Q166771); check sms_root. %s"
                % (volume.path(("System.map",)), NOTHING),
                path=volume.path(("System.map",)),
            )
        if volume.entry((found,)).kind == "link":
            volume.read((found,))  # refused, named
        self.system_map = (found,)
        self.dirs = {}
        for platform in platforms:
            name = PLATFORM_DIRS[platform]
            found = volume.find(self.client_src, name)
            if found is None or volume.entry(self.client_src + (found,)).kind not in ("dir", "link"):
                raise StageError(
                    "the platform folder %s is missing, so this site has no %s clients; leave %s out of the "
                    "rollout's platforms (sms_rollout_platforms) or check sms_root. %s"
                    % (volume.path(self.client_src + (name,)), platform, platform, NOTHING),
                    path=volume.path(self.client_src + (name,)),
                    platform=platform,
                )
            self.dirs[platform] = self.client_src + (found,)
            volume.listdir(self.dirs[platform])
        if state_dir:
            state_dir = normal_path(state_dir)
            self.state = (
                open_volume(state_dir, label="the hotfix's state folder", smb=smb_settings(params, state_dir)),
                (),
            )
        else:
            hotfix = volume.find((), "Hotfix") or "Hotfix"
            kb_name = (volume.find((hotfix,), kb) if volume.entry((hotfix,)).kind == "dir" else None) or kb
            self.state = (volume, (hotfix, kb_name))
        state_volume, state_parts = self.state
        kind = state_volume.entry(state_parts).kind
        if kind == "link" or (kind == "dir" and state_parts):
            state_volume.listdir(state_parts)
        self.journal = BackupJournal(state_volume, state_parts)

    def rel(self, parts):
        return "/".join(parts[-2:])

    def sha256(self, parts):
        return self.volume.sha256(parts)


def failure_after_change(exc):
    """A run failed after it started changing files (ReplaceFailed): say what was put back."""
    msg = exc.msg
    if exc.problems:
        msg += "; the files replaced by this run could not all be put back (%s)%s" % (
            "; ".join(exc.problems),
            exc.owed_note() or ": run again with state=absent once the cause is fixed",
        )
    elif exc.restored:
        msg += (
            "; the %d file(s) this run had already changed were put back as they were (%s), so the site "
            "server is as before the run" % (len(exc.restored), ", ".join(exc.restored))
        )
    else:
        msg += "; nothing was changed"
    return StageError(msg, path=exc.path, **exc.facts())


def bump_system_map(site):
    """A new timestamp, content untouched: the supported way to force new copy lists (Q166771)."""
    now = time.time()
    old = site.volume.entry(site.system_map).mtime
    if now <= old:
        now = old + 1
    site.volume.set_mtime(site.system_map, now)
    return now


def damaged_backup(journal, jentry, path, exc):
    """A backup the journal names is gone or damaged: the only copy of the original. Refuse to go on."""
    backup = journal.backup_path(jentry)
    if "found" in exc.facts:
        state = "is damaged: the journal %s recorded SHA-256 %s, the backup has SHA-256 %s" % (
            journal.path,
            jentry["sha256"],
            exc.facts["found"],
        )
    else:
        state = "is missing: the journal %s recorded it with SHA-256 %s" % (journal.path, jentry["sha256"])
    return StageError(
        "the backup %s of the original of %s %s. It is the only copy of that original, which a rollback "
        "needs, so nothing is replaced: restore the backup from elsewhere (a copy with SHA-256 %s), or, if the "
        "original is lost for good, retire the journal by hand (move %s and %s into %s) so that the next "
        "rollout backs up the files it finds. %s"
        % (
            backup,
            path,
            state,
            jentry["sha256"],
            journal.path,
            journal.volume.path(journal.parts + ("backup",)),
            journal.volume.path(journal.parts + ("retired", "<date>")),
            NOTHING,
        ),
        path=backup,
        expected=jentry["sha256"],
        found=exc.facts.get("found"),
    )


def engine_for(site, record=True):
    """The replacement engine for the platform folders of `site`, its temporary files found in those folders
    and anywhere in the state folder (its backup folders included)."""
    state_volume, state_parts = site.state
    places = [(site.volume, folder, False) for folder in sorted(set(site.dirs.values()))]
    return Replacement(
        site.volume, site.journal, temp_places=places + [(state_volume, state_parts, True)], record=record
    )


def wanted_bump(module, changes, journal):
    """(bump now, a bump was owed before this run)."""
    owed = bool(journal.pending.get("bump"))
    mode = module.params["bump"]
    return mode == "always" or (mode == "auto" and (bool(changes) or owed)), owed


def replace(module, site, engine, changes, bump, pending_msg):
    """Make `changes` (and the bump) unless in check mode; the System.map date after the run."""
    journal = site.journal
    mtime = [site.volume.entry(site.system_map).mtime]

    def then(_tx):
        if bump:
            mtime[0] = bump_system_map(site)

    if not module.check_mode and (changes or bump or engine.temps):
        try:
            # Durable before the first replace: a run killed from here on owes a bump.
            engine.run(changes, pending={"bump": iso_utc(time.time())} if changes else None, then=then)
        except ReplaceFailed as exc:
            raise failure_after_change(exc)
        if bump and journal.pending.get("bump"):
            try:
                journal.set_pending(bump=None)
            except SmsFileError as exc:
                raise StageError(pending_msg % (journal.path, exc.msg), path=exc.path)
    return mtime[0]


# -- the two states --------------------------------------------------------------------------------
def stage(module, manifest, site):
    journal = site.journal
    payload = payload_volume(manifest)
    items = []
    for platform, spec in manifest["platforms"].items():
        folder = site.dirs[platform]
        group = spec["directory"]
        for entry in spec["files"]:
            current, before = find_current(site.volume, folder, entry["name"])
            jentry = journal.entry(group, entry["name"])
            if jentry is not None and jentry.get("existed"):
                try:
                    journal.verify(jentry)
                except SmsFileError as exc:
                    raise damaged_backup(journal, jentry, site.volume.path(current or folder + (entry["name"],)), exc)
                backup = journal.backup_path(jentry)
            elif jentry is None and current is not None:
                backup = journal.volume.path(journal.parts + ("backup", group, current[-1]))
            else:
                backup = None
            parts = current or folder + (entry["name"],)
            items.append(
                Change(
                    group=group,
                    name=entry["name"],
                    parts=parts,
                    current=current,
                    before_sha256=before,
                    after_sha256=entry["sha256"],
                    source=payload,
                    source_parts=payload_parts(manifest, entry),
                    mtime=entry["mtime"],
                    size=entry["size"],
                    platform=platform,
                    backup=backup,
                    path=site.volume.path(parts),
                    journaled=jentry is not None,
                )
            )
    changes = [item for item in items if item.changed]
    bump, owed = wanted_bump(module, changes, journal)
    engine = engine_for(site)
    engine.preflight(changes, files=[site.system_map] if bump else [], journal=bool(changes) or bump)
    mtime = replace(
        module,
        site,
        engine,
        changes,
        bump,
        "%s: the files are staged and System.map was bumped, but the journal %%s could not record it "
        "(%%s); the next run bumps once more, which is harmless" % manifest["kb"],
    )
    for item in items:
        if not item.changed:
            item.after_sha256 = item.before_sha256
    still_owed = (bool(changes) or owed) and not bump
    return items, bump, mtime, still_owed, engine.stale_paths()


def roll_back(module, manifest, site):
    journal = site.journal
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
            raise refuse(exc)
    items = [
        restore_change(
            site.volume, journal, site.dirs[platform], group, jentry, check_date=True, verify=False, platform=platform
        )
        for platform, group, jentry in entries
    ]
    changes = [item for item in items if item.changed]
    bump, owed = wanted_bump(module, changes, journal)
    # A completed rollback sets the journal aside (retired), so a later rollout backs up what it finds then.
    retire = bool(keys)
    engine = engine_for(site, record=False)
    engine.preflight(changes, files=[site.system_map] if bump else [], journal=retire)
    mtime = replace(
        module,
        site,
        engine,
        changes,
        bump,
        "%s: the originals are back and System.map was bumped, but the journal %%s could not record it "
        "(%%s); run the rollback again" % manifest["kb"],
    )
    still_owed = (bool(changes) or owed) and not bump
    retired = None
    if retire and not module.check_mode and not still_owed:
        try:
            retired = engine.retire(keys)
        except SmsFileError as exc:
            raise StageError(
                "%s: the files were restored%s, but the journal %s could not be set aside (%s); fix the cause and "
                "run the rollback again (it will only retire the journal)"
                % (manifest["kb"], " (%d)" % len(changes) if changes else "", journal.path, exc.msg),
                path=exc.path,
            )
        for item in items:
            if item.entry.get("backup") and retired:
                item.backup = "/".join([retired] + item.entry["backup"].split("/"))
    return (
        items,
        bump,
        mtime,
        (retired if retire and not module.check_mode else retire),
        still_owed,
        engine.stale_paths(),
    )


def make_diff(site, items, old_mtime, new_mtime, bumped):
    diff = []
    for item in items:
        if not item.changed:
            continue
        label = site.rel(item.parts)
        diff.append(
            {
                "before_header": label,
                "after_header": label,
                "before": "%s sha256:%s\n" % (label, item.before_sha256 or "(absent)"),
                "after": "%s sha256:%s\n" % (label, item.after_sha256 or "(absent)"),
            }
        )
    if bumped:
        path = site.volume.path(site.system_map)
        diff.append(
            {
                "before_header": path,
                "after_header": path,
                "before": "System.map date: %s\n" % iso_utc(old_mtime),
                "after": "System.map date: %s\n" % ("(now)" if new_mtime == old_mtime else iso_utc(new_mtime)),
            }
        )
    return diff


def status_of(rollback, changed, check_mode):
    """The one word of what the run did (or would do, in check mode)."""
    if not changed:
        return "unchanged"
    if rollback:
        return "would_roll_back" if check_mode else "rolled_back"
    return "would_stage" if check_mode else "staged"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sms_root=dict(type="str", required=True),
            manifest=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent", "rolled_back"], default="present"),
            platforms=dict(type="list", elements="str"),
            bump=dict(type="str", choices=["auto", "always", "never"], default="auto"),
            state_dir=dict(type="str"),
            # Consumed by the action plugin of the same name (it never reaches the module); declared so the
            # argument spec and the documentation agree.
            transfer=dict(type="str", choices=["auto", "always", "never"], default="auto"),
            **SMB_ARGS,
        ),
        supports_check_mode=True,
    )
    plain_results(module)
    params = module.params
    if params["state"] == "rolled_back":
        module.deprecate(
            "state=rolled_back is now state=absent; use state=absent", version="2.0.0", collection_name="sms.hotfix"
        )
        params["state"] = "absent"
    rollback = params["state"] == "absent"
    retired = None
    try:
        try:
            manifest = load_manifest(params["manifest"], platforms=params["platforms"], check_payload=not rollback)
        except ManifestError as exc:
            raise StageError("%s. %s" % (exc.msg, NOTHING), path=exc.path, **exc.facts)
        site = Site(params["sms_root"], list(manifest["platforms"]), manifest["kb"], params["state_dir"], params)
        journal = site.journal
        old_mtime = site.volume.entry(site.system_map).mtime
        if rollback:
            if not journal.exists():
                module.exit_json(
                    changed=False,
                    status="nothing_to_roll_back",
                    state=params["state"],
                    kb=manifest["kb"],
                    files=[],
                    journal=journal.path,
                    manifest_path=manifest["path"],
                    system_map={
                        "path": site.volume.path(site.system_map),
                        "bumped": False,
                        "mtime": iso_utc(old_mtime),
                    },
                    bump_owed=False,
                    msg="no journal at %s: %s was never staged here, nothing to roll back"
                    % (journal.path, manifest["kb"]),
                    **({"diff": []} if module._diff else {}),
                )
            journal.data  # noqa: B018  (an unreadable journal fails here, before any change)
            items, bumped, new_mtime, retired, owed, stale = roll_back(module, manifest, site)
        else:
            journal.data  # noqa: B018
            items, bumped, new_mtime, owed, stale = stage(module, manifest, site)
    except SmsFileError as exc:
        error = refuse(exc)
        module.fail_json(msg=error.msg, state=params["state"], **error.facts)
    except StageError as exc:
        module.fail_json(msg=exc.msg, state=params["state"], **exc.facts)

    changes = [item for item in items if item.changed]
    changed = bool(changes) or bumped or bool(retired) or bool(stale)
    verb = "restored" if rollback else "replaced"
    if module.check_mode:
        verb = "would be " + verb
    msg = "%s: %d file(s) %s%s" % (
        manifest["kb"],
        len(changes),
        verb,
        ("" if not changes else " (%s)" % ", ".join(site.rel(i.parts) for i in changes)),
    )
    msg += "; System.map %s" % (("would be bumped" if module.check_mode else "bumped") if bumped else "not bumped")
    if owed:
        msg += " (a bump is owed and recorded in %s: the next run with bump=auto makes it)" % journal.path
    if retired:
        msg += (
            "; the journal would be set aside (retired)"
            if module.check_mode
            else "; the journal was set aside in %s" % retired
        )
    if stale:
        msg += "; %d temporary file(s) of an interrupted run %s" % (
            len(stale),
            "would be removed" if module.check_mode else "removed",
        )
    result = dict(
        changed=changed,
        status=status_of(rollback, changed, module.check_mode),
        state=params["state"],
        kb=manifest["kb"],
        journal=journal.path,
        msg=msg,
        manifest_path=manifest["path"],
        files=[
            {
                "platform": item.platform,
                "name": item.name,
                "path": item.path,
                "before_sha256": item.before_sha256,
                "after_sha256": item.after_sha256,
                "backup": item.backup,
                "changed": item.changed,
            }
            for item in items
        ],
        system_map={"path": site.volume.path(site.system_map), "bumped": bumped, "mtime": iso_utc(new_mtime)},
        bump_owed=owed,
    )
    if stale:
        result["stale_temporary_files"] = stale
    if rollback:
        result["retired"] = retired if isinstance(retired, str) else None
    if module._diff:
        result["diff"] = make_diff(site, items, old_mtime, new_mtime, bumped)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
