#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_replication
short_description: Deprecated - the logon tier's five jobs in one module (use the three that replaced it)
deprecated:
  removed_in: "2.0.0"
  why: One module per job, as ansible-core splits them.
  alternative: >-
    sms.hotfix.sms_copy_list_baseline (state=baseline and state=reset),
    sms.hotfix.sms_logon_wait (state=converged), sms.hotfix.sms_logon_push
    (state=pushed and state=restored).
description:
  - Deprecated, removed in 2.0.0. Each O(state) runs the same code as the module that replaced it
    and returns what it returned before, plus RV(status) and RV(state).
  - Runs on one SMS logon server (the site server is a logon server too) and
    checks that the hotfix files are in C(Logon.srv/<Platform>.bin) with the
    manifest's SHA-256 (file names matched case-insensitively), and that the copy
    lists (C(Cl_nt.txt) ...) carry a C(CopyListVersion) newer than the one seen
    before the hotfix was staged, so that clients notice the change.
  - O(state=baseline) records the copy-list version seen before staging, once.
  - O(state=converged) waits like M(ansible.builtin.wait_for) - polling on the
    server itself, every O(sleep) seconds, up to O(timeout) seconds - and always
    returns C(elapsed) and a per-file status. It never changes anything. In check
    mode it checks once and does not wait.
  - O(state=pushed) is the emergency path that bypasses the Maintenance Manager.
    It copies the staged payload to the logon server directly, after backing up
    the server's originals once, and verifies the result. The copy lists are not
    bumped, because editing them by hand is unsupported.
  - Before a push touches anything it checks that the platform folders to write and the state folder
    are writable and hold enough free space (the new files, the backups and the journal); otherwise it
    fails naming the folder, and nothing is changed. If a copy fails half-way (a full disk, say), the
    files the push had already replaced are put back as they were and checked on disk, then the backups
    and journal entries it made for them are removed, and the module fails saying so, leaving the server as
    before the push. A file that cannot be put back keeps its backup and journal entry (named in
    C(backups_kept)); a later push or O(state=restored) finishes it.
  - A file with more than one hard link in a platform folder is refused, naming its link count; backups keep
    the original's mode (and owner when run as root). Temporary files a killed push left are removed from the
    platform folders and from anywhere in the state folder.
  - O(state=restored) undoes a push byte for byte from its journal.
    Once done, it sets the push journal and its backups aside in C(<state_dir>/push/retired/<UTC date>/)
    (only the restored platforms' entries when O(platforms) limits it), so a later push backs up the
    files it finds then; a second restore finds no journal and changes nothing.
    O(state=reset) removes the hotfix's copy-list baselines at the end of a rollback.
  - The action plugin of the same name runs O(state=converged) in slices of
    C(progress_interval) seconds (a task argument, default 30) and prints one
    progress line per server between slices.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
  - sms.hotfix.logon.expect
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
      - The payload is checked only with O(state=pushed).
      - Required with O(state=pushed). Either O(manifest) or O(expect) is required with
        O(state=baseline) and O(state=converged).
      - The action plugin reads a manifest that exists on the controller there, and hands
        the module its expected files and KB. The logon servers then need no copy of it.
        With O(state=pushed), the action plugin sends the manifest and its payload to the
        logon server first (see O(transfer)); otherwise they must be readable there.
    type: path
  transfer:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module);
        used with O(state=pushed) only.
      - C(auto) copies the controller's manifest and the payload of the pushed platforms into the
        task's remote temporary folder when the connection is not C(local) and the controller has
        O(manifest); the push then reads that copy, and the folder is removed when the task ends.
      - C(always) copies even with the C(local) connection (O(manifest) must be a file on the controller).
      - C(never) lets the logon server read O(manifest) as given.
      - Manifest and payload are validated on the controller before anything is sent; a bad payload
        fails the task without touching the logon server.
    type: str
    choices: [auto, always, never]
    default: auto
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
      - With O(state=converged), every present copy list must carry a version greater than the baseline.
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
      - Fail when the server has not converged after O(timeout) seconds.
      - The action plugin sets this to C(false) for its intermediate slices.
    type: bool
    default: true
  state_dir:
    description: The hotfix's state folder on the server. Default is C(<sms_root>/Hotfix/<KB>).
    type: str
  server_name:
    description: Name of the server in messages, usually C(inventory_hostname). Default is O(sms_root).
    type: str
  progress_interval:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module).
      - With O(state=converged) and a O(timeout), seconds between two progress lines per server; the first
        line comes after a few seconds.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details:
      - With O(state=converged), check mode checks once and does not wait.
      - With O(state=pushed), a transfer (O(transfer)) still copies the hotfix into the task's remote
        temporary folder, which is removed when the task ends.
  diff_mode:
    support: partial
    details: Only O(state=pushed) and O(state=restored) return a diff.
  platform:
    support: full
    platforms: posix
notes:
  - Nothing outside O(sms_root) (and O(state_dir)) is read or written and no symbolic link is followed; a
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
  sms.hotfix.sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    state: baseline

- name: Wait up to 30 minutes for the maintenance cycle
  sms.hotfix.sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    server_name: "{{ inventory_hostname }}"
    timeout: 1800
    progress_interval: 30  # consumed by the action plugin
  register: sms_replication_result

- name: Probe once, without waiting or failing
  sms.hotfix.sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
  register: probe

- name: Emergency - copy the staged files to the logon server directly
  sms.hotfix.sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    state: pushed
    transfer: auto  # consumed by the action plugin: sent from the controller unless the connection is local

- name: Rollback - wait for the original files again
  sms.hotfix.sms_replication:
    sms_root: "{{ sms_drive_root }}/SMS"
    kb: Q216552
    expect:
      x86:
        - name: Smsrun32.exe
          sha256: "{{ original_smsrun32_sha256 }}"
    timeout: 1800
"""

RETURN = r"""
status:
  description:
    - What the run did, as the module that replaced this state returns it (V(recorded), V(kept),
      V(converged), V(lagging), V(pushed), V(restored), V(removed), V(unchanged), ...).
  returned: success, and on a timeout
  type: str
  sample: converged
state:
  description: The O(state) the module ran.
  returned: always
  type: str
  sample: converged
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
      expected files, a push a copy of manifest and payload), V(host) when the server read O(manifest).
  returned: when O(manifest) is given (action plugin)
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
      the push journal still names them, and a later push or O(state=restored) finishes the work.
  returned: on such a failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS
from ansible_collections.sms.hotfix.plugins.module_utils.sms_logon import DEFAULT_COPY_LISTS, EXPECT_SPEC, run_job

# Each old state, and the job of the module that replaced it.
JOBS = {"baseline": "baseline", "converged": "wait", "pushed": "push", "restored": "restore", "reset": "reset"}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sms_root=dict(type="str", required=True),
            manifest=dict(type="path"),
            expect=EXPECT_SPEC,
            kb=dict(type="str"),
            platforms=dict(type="list", elements="str"),
            state=dict(type="str", default="converged", choices=sorted(JOBS)),
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
            **SMB_ARGS,
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
    state = module.params["state"]
    if state == "pushed" and module.params["expect"] and any(module.params["expect"].values()):
        module.fail_json(
            msg="expect cannot be used with state=pushed: a push copies the manifest's payload",
            elapsed=0.0,
            state=state,
            status="failed",
        )
    run_job(module, JOBS[state], state)


if __name__ == "__main__":
    main()
