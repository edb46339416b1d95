#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_logon_push
short_description: Copy a staged hotfix to a logon server directly (emergency), or undo that push
description:
  - The emergency path that bypasses the SMS Maintenance Manager, on one logon server.
  - O(state=present) copies the manifest's payload to C(Logon.srv/<Platform>.bin) directly, after backing
    up the server's originals once (in C(<state_dir>/push/), with a journal), and verifies the result. The
    copy lists are not bumped, because editing them by hand is unsupported; clients therefore do not notice
    the change by themselves (the client tier upgrades them directly).
  - Before a push touches anything it checks that the platform folders to write and the state folder are
    writable and hold enough free space (the new files, the backups and the journal); otherwise it fails
    naming the folder, and nothing is changed. If a copy fails half-way (a full disk, say), the files the
    push had already replaced are put back as they were and checked on disk, then the backups and journal
    entries it made for them are removed, and the module fails saying so. A file that cannot be put back
    keeps its backup and journal entry (named in RV(backups_kept)); a later push or O(state=absent) finishes it.
  - A file with more than one hard link in a platform folder is refused, naming its link count; backups keep
    the original's mode (and owner when run as root). Temporary files a killed push left are removed from
    the platform folders and from anywhere in the state folder.
  - O(state=absent) undoes a push byte for byte from its journal. Once done, it sets the push journal and its
    backups aside in C(<state_dir>/push/retired/<UTC date>/) (only the restored platforms' entries when
    O(platforms) limits it), so a later push backs up the files it finds then; a second undo finds no
    journal and changes nothing.
version_added: "1.1.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
  - sms.hotfix.logon
options:
  state:
    description:
      - V(present) pushes the staged files; V(absent) puts back what a push replaced.
      - With V(present), O(manifest) is required and its payload is checked; with V(absent), O(manifest),
        O(kb) or O(state_dir) names the state folder.
    type: str
    choices: [present, absent]
    default: present
  transfer:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module);
        used with O(state=present) only.
      - V(auto) copies the controller's manifest and the payload of the pushed platforms into the task's
        remote temporary folder when the connection is not C(local); the push then reads that copy, and the
        folder is removed when the task ends.
      - V(always) copies even with the C(local) connection (O(manifest) must be a file on the controller).
      - V(never) lets the logon server read O(manifest) as given.
      - Manifest and payload are validated on the controller before anything is sent; a bad payload fails
        the task without touching the logon server.
    type: str
    choices: [auto, always, never]
    default: auto
attributes:
  check_mode:
    support: full
    details:
      - With O(state=present), a transfer (O(transfer)) still copies the hotfix into the task's remote
        temporary folder, which is removed when the task ends.
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
seealso:
  - module: sms.hotfix.sms_logon_wait
  - module: sms.hotfix.sms_hotfix_stage
"""

EXAMPLES = r"""
- name: Emergency - copy the staged files to the logon server directly
  sms.hotfix.sms_logon_push:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    server_name: "{{ inventory_hostname }}"
    transfer: auto  # consumed by the action plugin: sent from the controller unless the connection is local

- name: Rollback - put back the files a push replaced
  sms.hotfix.sms_logon_push:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    state: absent
"""

RETURN = r"""
status:
  description:
    - What the run did. For O(state=present) V(pushed) (V(would_push) in check mode); for O(state=absent)
      V(restored) (V(would_restore)); V(cleaned) (V(would_clean)) when only temporary files of a killed run
      were removed; V(unchanged) when there was nothing to do.
  returned: success
  type: str
  sample: pushed
state:
  description: The state the module ran, V(present) or V(absent).
  returned: always
  type: str
  sample: present
pushed:
  description: Files copied (or that would be copied in check mode), relative to C(Logon.srv).
  returned: O(state=present)
  type: list
  elements: str
  sample: ["X86.bin/Smsrun32.exe"]
converged:
  description: Whether every file of the manifest matches on the server after the push.
  returned: O(state=present)
  type: bool
files:
  description: One entry per file of the manifest (as M(sms.hotfix.sms_logon_wait) returns them).
  returned: O(state=present)
  type: list
  elements: dict
journal:
  description: The push journal (originals backed up once, under C(<state_dir>/push/backup/<Platform>.bin/)).
  returned: success
  type: str
copy_list_bumped:
  description: Always false - a push never edits the copy lists.
  returned: O(state=present)
  type: bool
copy_list_note:
  description: What a push means for the copy lists and the clients.
  returned: O(state=present)
  type: str
restored:
  description:
    - Files put back (or removed, when the push had created them), relative to C(Logon.srv).
    - On a push that failed half-way, the paths put back as they were before the push.
  returned: O(state=absent), or a push that failed after it had changed files
  type: list
  elements: str
retired:
  description: The folder the restored push-journal entries and their backups were moved to; null in check mode.
  returned: O(state=absent) and a push journal existed
  type: str
  sample: /srv/C/SMS/Hotfix/Q216552/push/retired/20261124T170211Z
stale_temporary_files:
  description: Temporary files of an interrupted push or undo that this run removed (or would, in check mode).
  returned: when there were any
  type: list
  elements: str
backups_kept:
  description:
    - On a failed push whose put-back also failed, the backups of the files that could not be put back;
      the push journal still names them, and a later push or O(state=absent) finishes the work.
  returned: on such a failure
  type: list
  elements: str
need:
  description: Bytes a push needs on the filesystem that lacks them.
  returned: failure, when a push lacks free space
  type: int
have:
  description: Bytes free on that filesystem.
  returned: failure, when a push lacks free space
  type: int
elapsed:
  description: Seconds the run took.
  returned: always
  type: float
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
  description: V(controller) when the action plugin sent the controller's manifest and payload, V(host) otherwise.
  returned: O(state=present) (action plugin)
  type: str
transferred:
  description: Files the action plugin sent for a push, relative to the manifest's folder (the manifest first).
  returned: when RV(manifest_source) is V(controller)
  type: list
  elements: str
failed_path:
  description: The file or folder a failure is about.
  returned: failure, when a path is concerned
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_logon import COMMON_ARGS, run_job

ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    state=dict(type="str", default="present", choices=["present", "absent"]),
    # Consumed by the action plugin of the same name; declared so the spec and the documentation agree.
    transfer=dict(type="str", choices=["auto", "always", "never"], default="auto"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[
            ("state", "present", ("manifest",)),
            ("state", "absent", ("manifest", "kb", "state_dir"), True),
        ],
        supports_check_mode=True,
    )
    state = module.params["state"]
    run_job(module, "push" if state == "present" else "restore", state)


if __name__ == "__main__":
    main()
