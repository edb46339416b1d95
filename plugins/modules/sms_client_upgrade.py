#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_client_upgrade
short_description: Upgrade one SMS 1.2 client from its logon server (the Upgrade.bat equivalent)
description:
  - Does on one client, in one run, what SMS Client Setup or C(Upgrade.bat) does
    when the copy list changed. It reads the client's C(SMS.INI), finds its
    logon server, reads that server's copy list and C(<Platform>.bin) folder,
    compares every client file with the server's copy and downloads the ones
    that differ, then sets C([SMS] CopyListVersion) to the server's and
    C([Local] SetupPhase=installed). Every other byte of C(SMS.INI) is kept.
  - Before anything else it checks that the logon server serves the hotfix
    files of the manifest with the manifest's SHA-256. When it does not, the
    client is reported as skipped and nothing is touched; the module relies on
    no fact left by an earlier play.
  - Ends the hung state of Q216552 (two or more C(SMSRUN32) instances, or one
    above O(hung_cpu_threshold) over O(cpu_window)) with O(hung_signals). A
    healthy C(SMSRUN32) is stopped gracefully before its files are replaced
    and started again after (O(running_policy=restart)), or the client is
    deferred as SMS itself would (O(running_policy=defer)).
  - Puts the cure in force and proves it, in the same run. When a client
    service file (C(Smssrv32.exe)) changed, O(restart) says what follows;
    V(service) stops and starts the SMS client service (O(service_name), or
    O(service_stop_argv) and O(service_start_argv)); V(reboot) asks the
    caller to reboot the client (the C(sms.hotfix.sms_client) role does it
    with M(ansible.builtin.reboot), inside the maintenance window) and a
    second run with O(rebooted=true) watches it; V(none) restarts nothing and
    reports a reboot pending with the list of changed service files.
  - Then, when O(verify_seconds) is more than 0, the client is watched for
    that long; healthy is exactly one C(SMSRUN32), never above O(hung_cpu_threshold)
    over an O(verify_interval), and the client service running where it was
    restarted (when O(service_name) or O(service_status_argv) can tell). A
    failed restart or watch fails the client (RV(status=restart_failed) or
    RV(status=verify_failed)), with what was seen in RV(verify).
  - The cure is owed until it held. An upgrade that replaces files (and owes a
    restart by its policy or a watch) writes a record of it,
    C(cure_owed.json) in O(state_dir) (the hotfix's KB, whether the restart is
    still needed, the changed service files, the last failure), atomically,
    before the first file is replaced, and removes it once the restart and the watch both succeeded. A re-run that
    finds the files in place and the record there does what is still owed
    (the restart, then the watch), with RV(status=verified) when the cure holds
    now, or RV(status=restart_failed) / RV(status=verify_failed) again.
    O(state=absent) removes the record; check mode writes nothing and says what
    a real run would do.
  - Every replaced file and the original C(SMS.INI) are backed up once in
    O(state_dir). O(state=absent) puts the original files back and sets
    C([SMS] CopyListVersion) and C([Local] SetupPhase) back to the original's
    values (removing a key the original lacked); whatever else SMS changed in
    C(SMS.INI) since the upgrade is kept. Only a current C(SMS.INI) that cannot
    be read or parsed is replaced whole by the original. A completed rollback
    retires the journal (to C(<state_dir>/retired/<UTC stamp>/)), so a later
    rollout backs up the files it finds then.
  - Nothing is written in place; a failure after the first replacement puts
    back what this run replaced.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
options:
  drive_root:
    description:
      - The directory standing for the client's first local drive (C(C:\)), or its drive share reached over
        SMB (C(\\CLIENT01\C$)).
    type: str
    required: true
  platform:
    description: The client's platform; selects C(X86.bin), C(Alpha.bin) or C(Mips.bin).
    type: str
    required: true
    choices: [x86, alpha, mips]
  manifest:
    description:
      - Path of the hotfix's C(manifest.json). Only the expected names and
        SHA-256 are used; the payload need not be present.
      - The action plugin of the same name reads a path that exists on the controller
        there and hands the module its content as O(manifest_data), so clients need no
        copy of the hotfix folder. A path the controller does not have is read on the client.
      - Exactly one of O(manifest) and O(manifest_data) is required.
    type: path
  manifest_data:
    description:
      - The content of the hotfix's C(manifest.json) (its parsed JSON), instead of O(manifest).
        Validated like the file; the payload is not needed.
      - Set by the action plugin from a controller-side O(manifest).
    type: dict
  share_path_pattern:
    description:
      - Path of the logon server's C(SMS_SHR) share as this client reaches it,
        with C({server}) replaced by the server name from C(SMS.INI) (in lower case for a local path).
      - For example C(/mnt/sms/{server}); in the lab C(<lab>/hosts/{server}/SMS/Logon.srv); over SMB
        C(\\{server}\SMS_SHR) (see O(smb_addresses)).
    type: str
    required: true
  state:
    description:
      - V(present) upgrades the client (then restarts and watches it, see O(restart) and O(verify_seconds)).
      - V(absent) restores the files recorded in O(state_dir) by earlier runs and the two C(SMS.INI) keys
        this module manages, then retires the journal. Without a journal there is nothing to roll back
        (changed=false).
      - V(upgraded) and V(rolled_back) are the old words for V(present) and V(absent); they still work,
        with a deprecation warning, and are removed in 2.0.0.
    type: str
    choices: [present, absent, upgraded, rolled_back]
    default: present
  restart:
    description:
      - What is restarted after a client service file changed in this run.
      - V(service) stops and starts the client service (O(service_name) or O(service_stop_argv) and
        O(service_start_argv)); a failure fails the client (RV(status=restart_failed)).
      - V(reboot) restarts nothing here; RV(restart.needed) asks the caller for a reboot, and a second
        run with O(rebooted=true) and O(verify_when=always) watches the client afterwards.
      - V(none) restarts nothing; RV(restart.note) says a reboot is pending and RV(restart.pending) names
        the changed service files.
      - C(SMSRUN32) is started again with O(smsrun_argv) whatever this says.
    type: str
    choices: [service, reboot, none]
    default: none
  service_name:
    description:
      - The client service's name on a host with a service manager (C(systemctl), else C(service)).
      - Mutually exclusive with the O(service_start_argv), O(service_stop_argv) and O(service_status_argv) lists.
    type: str
  service_start_argv:
    description: Command (argv list, no shell) that starts the client service and returns; needs O(service_stop_argv).
    type: list
    elements: str
    default: []
  service_stop_argv:
    description: Command (argv list, no shell) that stops the client service.
    type: list
    elements: str
    default: []
  service_status_argv:
    description:
      - Command (argv list) that exits 0 while the client service runs. Empty means the watch cannot tell
        and does not check the service.
    type: list
    elements: str
    default: []
  verify_seconds:
    description:
      - How long the client is watched after an upgrade (and its restart); V(0) watches nothing.
      - The watch ends early at the first unhealthy look (two instances, or one above the threshold).
    type: float
    default: 0
  verify_interval:
    description: Seconds of each look of the watch (the CPU of every C(SMSRUN32) is sampled over it).
    type: float
    default: 1.0
  verify_when:
    description:
      - V(changed) watches only a client this run upgraded; V(always) also one already up to date
        (after a reboot).
    type: str
    choices: [changed, always]
    default: changed
  reboot_timeout:
    description:
      - With O(restart=reboot), the seconds a client may take to come back. The action plugin refuses the
        client, on the controller and before anything is sent, when now plus this plus O(verify_seconds)
        would end outside O(window).
    type: float
    default: 600
  window:
    description:
      - The maintenance window the reboots must end inside (O(restart=reboot)), like V(22:00-05:00) or
        V(Mon-Fri 22:00-05:00), on the controller's clock; empty means any time.
    type: str
    default: ""
  rebooted:
    description:
      - The caller rebooted this client just before this run (O(restart=reboot)); the result then says
        RV(restart.how=reboot), RV(restart.done=true) and, when the watch is healthy, RV(status=verified).
    type: bool
    default: false
  client_dir:
    description: The client's SMS binaries folder, relative to O(drive_root).
    type: str
    default: MS/SMS/BIN
  copy_list:
    description: Name of the copy list on the logon server that carries C(CopyListVersion).
    type: str
    default: Cl_nt.txt
  running_policy:
    description:
      - What to do when a healthy C(SMSRUN32) runs and files must change.
      - V(restart) stops it gracefully with O(graceful_signals), replaces the
        files and starts it again with O(start_argv).
      - V(defer) does what SMS does, no file is changed, C(SetupPhase) is set to
        C(verifying_files) (C(CopyListVersion) is left alone) and the client is
        reported as deferred, pending a restart.
      - A hung C(SMSRUN32) is always ended, whatever the policy.
    type: str
    choices: [restart, defer]
    default: restart
  hung_cpu_threshold:
    description:
      - A single C(SMSRUN32) using more than this percentage of one core over O(cpu_window) is hung.
      - The watch (O(verify_seconds)) uses the same threshold over each O(verify_interval).
    type: float
    default: 90
  cpu_window:
    description: Seconds over which the CPU use of a single C(SMSRUN32) is sampled.
    type: float
    default: 1.0
  stop_timeout:
    description: Seconds to wait for C(SMSRUN32) to exit after each signal.
    type: float
    default: 10
  graceful_signals:
    description: Signals sent in turn to stop a healthy C(SMSRUN32).
    type: list
    elements: str
    default: [TERM]
  hung_signals:
    description: Signals sent in turn to end a hung C(SMSRUN32).
    type: list
    elements: str
    default: [TERM, KILL]
  smsrun_argv:
    description:
      - Command (argv list, no shell) that starts C(SMSRUN32) again, like
        C(net start); it must return at once and leave no process holding its
        output. Empty means C(SMSRUN32) is not started again (the result says so),
        and the watch then does not count a missing C(SMSRUN32) as a failure.
      - The role's C(sms_client_smsrun_argv). The old name O(start_argv) still works
        (deprecated, removed in 2.0.0).
    type: list
    elements: str
    default: []
    aliases: [start_argv]
  process_name:
    description: Process name of the SMS client runner.
    type: str
    default: SMSRUN32
  state_dir:
    description:
      - Folder for the backups and their journal (a local path, or a share path over SMB).
      - Defaults to C(<drive_root>/MS/SMS/Hotfix/<KB>).
    type: str
  client_name:
    description:
      - Name of the client at the start of every message, usually C(inventory_hostname).
      - Defaults to the base name of O(drive_root).
    type: str
  logon_servers:
    description:
      - The site's logon servers by their SMS (NetBIOS) names, compared case-insensitively.
      - The server C(SMS.INI) names must be a plain server name and one of these; any other client
        is failed, untouched (a client's disk is untrusted).
      - Required with O(state=present).
    type: list
    elements: str
  process_scope:
    description:
      - Which C(SMSRUN32) processes belong to this client.
      - V(host) is the whole process table of the host the module runs on (a host that is one client).
      - V(drive) is only processes with a command-line path inside O(drive_root) (a management host
        serving many drives, like the lab twin).
      - Where the process table cannot be read at all, the state is reported as unknown (never as not
        running) and the client is deferred to Client Setup (C(SetupPhase=verify_files), no file changed).
    type: str
    choices: [host, drive]
    default: host
notes:
  - File names are compared case-insensitively; a replaced file keeps the name it has on the client.
  - Nothing is read or written outside O(drive_root), O(state_dir) and the logon server's share, and no
    symbolic link is followed; a link found where
    the module reads, backs up or writes fails the client with a message naming it, and nothing changes.
  - O(cpu_window) is spent only when exactly one C(SMSRUN32) runs.
  - The watch costs O(verify_seconds) of wall time per client (clients of a wave are watched in parallel,
    one per fork) and little CPU (one read of the process table per look).
seealso:
  - module: sms.hotfix.sms_client_facts
attributes:
  check_mode:
    support: full
    details:
      - Reports the files and keys that would change and the processes that would be stopped; stops nothing.
      - Says what would be restarted; restarts and watches nothing.
  diff_mode:
    support: full
    details:
      - Before/after lines per changed file (path and SHA-256) and per changed C(SMS.INI) key.
      - A rollback that restores C(SMS.INI) whole (it cannot be parsed) also shows its path and SHA-256.
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Upgrade the client, restart its service and watch it for a minute
  sms.hotfix.sms_client_upgrade:
    drive_root: "{{ sms_drive_root }}"
    platform: x86
    manifest: /opt/sms-rollout/hotfixes/Q216552/manifest.json
    share_path_pattern: /mnt/sms/{server}
    logon_servers: [LOGON01, LOGON02]
    smsrun_argv: [/usr/local/bin/sms-client, start-smsrun32]
    restart: service
    service_name: sms-client
    verify_seconds: 60
  register: upgrade

- name: Leave busy clients for their next restart
  sms.hotfix.sms_client_upgrade:
    drive_root: "{{ sms_drive_root }}"
    platform: alpha
    manifest: /opt/sms-rollout/hotfixes/Q216552/manifest.json
    share_path_pattern: /mnt/sms/{server}
    logon_servers: [LOGON01]
    running_policy: defer

- name: Put the client's original files back
  sms.hotfix.sms_client_upgrade:
    drive_root: "{{ sms_drive_root }}"
    platform: x86
    manifest: /opt/sms-rollout/hotfixes/Q216552/manifest.json
    share_path_pattern: /mnt/sms/{server}
    state: absent
"""

RETURN = r"""
status:
  description:
    - What the run did, in one word.
    - V(upgraded) (something changed, or would in check mode, including a hung
      C(SMSRUN32) ended, and the watch, if any, was healthy), V(unchanged), V(skipped) (the logon server
      does not serve the hotfix yet), V(deferred) (a healthy C(SMSRUN32) runs and the
      policy is defer), V(rolled_back), V(verified) (after a reboot, with O(rebooted=true), or on a re-run that
      found the cure still owed (RV(cure_owed)), the watch was healthy), V(restarted) (a re-run did the restart
      still owed and O(verify_seconds) is 0),
      V(restart_failed) (the client service did not stop or start), V(verify_failed) (the watch saw the
      hang again, no C(SMSRUN32), or the service not running) or V(refused) (bad options, nothing changed).
  returned: always
  type: str
  sample: upgraded
state:
  description: The state this run ran (V(present) or V(absent); an old word is returned as its new one).
  returned: always
  type: str
  sample: present
restart:
  description: What was restarted after the upgrade, and how.
  returned: with state=present, when the client was read
  type: dict
  contains:
    how: {description: "The policy: V(service), V(reboot) or V(none)", type: str}
    done: {description: "Whether the restart was done (by this run, or the reboot before it)", type: bool}
    needed: {description: "With V(reboot), the caller must reboot the client now", type: bool}
    pending: {description: The changed client service files waiting for a restart, type: list}
    note: {description: "Why nothing was restarted, or what would be in check mode", type: str}
    error: {description: Why the restart failed, type: str}
verify:
  description: The watch of the cure after the upgrade (see O(verify_seconds)).
  returned: with state=present, when the client was read
  type: dict
  contains:
    result:
      description:
        - V(healthy), V(hung) (two instances, or one above the threshold), V(not_running),
          V(unverified) (no process table, or nothing was meant to start C(SMSRUN32)), or V(not_watched).
      type: str
    reason: {description: "What was wrong, or why nothing was watched", type: str}
    seconds: {description: The window asked for, type: float}
    elapsed: {description: Seconds actually watched (less when a hang ended the watch early), type: float}
    looks: {description: How many times the process table was read, type: int}
    instances: {description: The most C(SMSRUN32) instances seen at one look, type: int}
    highest_cpu: {description: The highest CPU percent (of one core) one instance used over one look, type: float}
    threshold: {description: The hung threshold used, type: float}
    service: {description: "V(running) or V(not running) at the end of the watch, when it could tell", type: str}
cure_owed:
  description:
    - The record of a cure an earlier run left owed (its restart or its watch failed), found by this run;
      or, when this run's restart or watch failed, where the record it keeps is.
  returned: with state=present, when a cure is or stays owed
  type: dict
  contains:
    kb: {description: The hotfix the cure is owed for, type: str}
    since: {description: When the upgrade that owes it replaced the files (UTC), type: str}
    restart_owed: {description: Whether the restart (by policy) is still needed, type: bool}
    service_files: {description: The client service files that changed, type: list}
    last_status:
      description: "The status of the last run that tried: V(restart_failed), V(verify_failed) or V(unverified)"
      type: str
    path: {description: The record's path in the state folder, type: str}
    cleared: {description: True when this run removed the record (the cure holds now), type: bool}
cure_owed_removed:
  description: With state=absent, the path of the record of a cure owed that the rollback removed.
  returned: when a rollback removed one
  type: str
skipped:
  description: True when the client was skipped because its logon server does not serve the hotfix.
  returned: when skipped
  type: bool
logon_server:
  description: The client's logon server as C(SMS.INI) names it.
  returned: when SMS.INI names one
  type: str
  sample: LOGON01
share:
  description: The path at which the client reached the logon server's C(SMS_SHR).
  returned: when the logon server is known
  type: str
copy_list_version:
  description: The server's C(CopyListVersion) (the client's own one on rollback).
  returned: when read
  type: str
  sample: "42"
stale_files:
  description: Hotfix files the logon server does not serve with the manifest's SHA-256.
  returned: when skipped, and when projected
  type: list
  elements: dict
projected:
  description:
    - True in check mode when the logon server does not serve the hotfix yet. The
      client is then previewed against the manifest (what a run will change once
      the server has the files) instead of being reported as skipped.
  returned: when projected
  type: bool
files:
  description: Every file compared (or restored), with its SHA-256 before and after.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Name on the client's disk, type: str}
    path: {description: Full path on the client, type: str}
    before_sha256: {description: SHA-256 before the run (null when absent), type: str}
    after_sha256: {description: SHA-256 after the run (null when removed), type: str}
    changed: {description: Whether the file was (or would be) replaced, type: bool}
ini:
  description:
    - The two C(SMS.INI) keys this module manages, with their values before and after.
    - On rollback, C(after) is the original's value, null when the original lacked the key (it is removed).
  returned: always
  type: list
  elements: dict
  contains:
    section: {description: INI section, type: str}
    key: {description: INI key, type: str}
    before: {description: Value before (null when absent), type: str}
    after: {description: Value after, type: str}
    changed: {description: Whether the value changes, type: bool}
smsrun32:
  description: The client's SMSRUN32 processes and what was done to them.
  returned: always
  type: dict
  contains:
    found: {description: "Instances found: pid and sampled CPU percent (null when not sampled)", type: list}
    hung: {description: Whether the Q216552 hung state was found, type: bool}
    reason: {description: Why the state counts as hung, type: str}
    stopped: {description: Pids stopped (or that would be stopped in check mode), type: list}
    signals: {description: Signals sent, type: list}
    restarted: {description: Whether SMSRUN32 was started again with O(smsrun_argv), type: bool}
    note: {description: Explains why SMSRUN32 was not started again, type: str}
reboot_required:
  description: A client service file (C(service) in the manifest, e.g. Smssrv32.exe) changed.
  returned: always
  type: bool
pending_restart:
  description: The upgrade is deferred until the client restarts (SetupPhase=verifying_files).
  returned: always
  type: bool
state_dir:
  description: Folder holding the backups and journal.
  returned: always
  type: str
ini_restore:
  description:
    - How a rollback puts C(SMS.INI) back. V(keys) sets only C([SMS] CopyListVersion) and
      C([Local] SetupPhase) back (every other line is kept; when nothing else changed since the
      upgrade, the result is the original's bytes). V(whole_file) replaces the file with the
      original because the current one is missing or cannot be read or parsed (the message says why).
  returned: on rollback, when the journal holds SMS.INI
  type: str
  sample: keys
journal_retired:
  description:
    - Folder the journal and its backups were moved to after a completed rollback.
    - Null in check mode (the message says it would be retired), when the rollback was deferred,
      and when the journal also holds entries this module does not restore (it is then kept).
  returned: on rollback with a journal
  type: str
  sample: /mnt/c/MS/SMS/Hotfix/Q216552/retired/20260101T120000Z
manifest_source:
  description:
    - Where the manifest came from; V(controller) (given as O(manifest_data), read on the
      controller by the action plugin) or V(host) (the O(manifest) path, read on the client).
  returned: always
  type: str
  sample: controller
manifest_path:
  description: The manifest path read on the client; null when the manifest was given as data.
  returned: always
  type: str
ini_rebuilt:
  description:
    - How many times C(SMS.INI) was changed by another writer between the run's read and its rename,
      so that the rollout's keys were set on the new content (that writer's change kept).
  returned: when another writer changed SMS.INI during the run
  type: int
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_zipimport import compile_once

compile_once()  # first: the utilities below are compiled once on the host, not twice

from ansible_collections.sms.hotfix.plugins.module_utils.sms_client_run import run_client
from ansible_collections.sms.hotfix.plugins.module_utils.sms_cure import CURE_ARGS
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS

ARGUMENT_SPEC = dict(
    drive_root=dict(type="str", required=True),
    platform=dict(type="str", required=True, choices=["x86", "alpha", "mips"]),
    manifest=dict(type="path"),
    manifest_data=dict(type="dict"),
    share_path_pattern=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent", "upgraded", "rolled_back"]),
    client_dir=dict(type="str", default="MS/SMS/BIN"),
    copy_list=dict(type="str", default="Cl_nt.txt"),
    running_policy=dict(type="str", default="restart", choices=["restart", "defer"]),
    hung_cpu_threshold=dict(type="float", default=90.0),
    cpu_window=dict(type="float", default=1.0),
    stop_timeout=dict(type="float", default=10.0),
    graceful_signals=dict(type="list", elements="str", default=["TERM"]),
    hung_signals=dict(type="list", elements="str", default=["TERM", "KILL"]),
    smsrun_argv=dict(
        type="list",
        elements="str",
        default=[],
        aliases=["start_argv"],
        deprecated_aliases=[dict(name="start_argv", version="2.0.0", collection_name="sms.hotfix")],
    ),
    process_name=dict(type="str", default="SMSRUN32"),
    process_scope=dict(type="str", default="host", choices=["host", "drive"]),
    logon_servers=dict(type="list", elements="str"),
    state_dir=dict(type="str"),
    client_name=dict(type="str"),
    **CURE_ARGS,
    **SMB_ARGS,
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("manifest", "manifest_data")],
        required_one_of=[("manifest", "manifest_data")],
        required_if=[("state", "present", ("logon_servers",)), ("state", "upgraded", ("logon_servers",))],
        supports_check_mode=True,
    )
    run_client(module)


if __name__ == "__main__":
    main()
