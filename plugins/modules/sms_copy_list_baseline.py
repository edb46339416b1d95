#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_copy_list_baseline
short_description: Record or forget the copy-list version a logon server had before a hotfix was staged
description:
  - Runs on one SMS logon server (the site server is a logon server too).
  - O(state=present) records, once, the lowest C(CopyListVersion) of the server's copy lists and the
    SHA-256 of the expected files, in C(<state_dir>/copylist-baseline-<key>.json) (one record per expected
    set). M(sms.hotfix.sms_logon_wait) measures the copy-list bump against it. A record that exists is kept,
    so a re-run after staging does not move it. In check mode it is a preflight - it refuses a server that is
    not a logon server (no C(Logon.srv), a missing platform folder, no copy list, a link) or whose state
    folder cannot be written, and writes nothing.
  - O(state=absent) removes every copy-list baseline of the hotfix, at the end of a rollback, so a later
    rollout records fresh ones.
version_added: "1.1.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
  - sms.hotfix.logon
  - sms.hotfix.logon.expect
options:
  state:
    description:
      - V(present) records the baseline (kept if it already exists); V(absent) removes the hotfix's baselines.
      - With V(present), O(manifest) or O(expect) is required; with V(absent), O(manifest), O(kb) or O(state_dir).
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Writes nothing; a server the real run could not record on is still refused.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: sms.hotfix.sms_logon_wait
"""

EXAMPLES = r"""
- name: Record the copy-list version before the site server is staged
  sms.hotfix.sms_copy_list_baseline:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    server_name: "{{ inventory_hostname }}"

- name: End of a rollback - forget the baselines, so a new rollout records its own
  sms.hotfix.sms_copy_list_baseline:
    sms_root: "{{ sms_drive_root }}/SMS"
    kb: Q216552
    state: absent
"""

RETURN = r"""
status:
  description:
    - What the run did. V(recorded) (V(would_record) in check mode) or V(kept) for O(state=present);
      V(removed) (V(would_remove)) or V(unchanged) for O(state=absent).
  returned: success
  type: str
  sample: recorded
state:
  description: The state the module ran, V(present) or V(absent).
  returned: always
  type: str
  sample: present
baseline:
  description: The baseline record (recorded now or before).
  returned: O(state=present)
  type: dict
recorded:
  description: Whether this run wrote the baseline (false when one existed, or in check mode).
  returned: O(state=present)
  type: bool
baseline_path:
  description: Where the baseline is kept.
  returned: O(state=present)
  type: str
converged:
  description: Whether the expected files are already on the server (the copy lists are not considered).
  returned: O(state=present)
  type: bool
files:
  description: One entry per expected file (as M(sms.hotfix.sms_logon_wait) returns them).
  returned: O(state=present)
  type: list
  elements: dict
copy_list:
  description: The copy-list criterion as it stands now (as M(sms.hotfix.sms_logon_wait) returns it).
  returned: O(state=present)
  type: dict
removed:
  description: Baseline files removed (or that would be, in check mode).
  returned: O(state=absent)
  type: list
  elements: str
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
  description: The manifest the module read on the server.
  returned: when the module read a manifest file
  type: str
manifest_source:
  description: V(controller) when the action plugin read O(manifest) on the controller, V(host) when the server did.
  returned: when O(manifest) is given
  type: str
failed_path:
  description: The file or folder a failure is about.
  returned: failure, when a path is concerned
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_logon import COMMON_ARGS, EXPECT_SPEC, run_job

ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    expect=EXPECT_SPEC,
    state=dict(type="str", default="present", choices=["present", "absent"]),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[
            ("state", "present", ("manifest", "expect"), True),
            ("state", "absent", ("manifest", "kb", "state_dir"), True),
        ],
        supports_check_mode=True,
    )
    state = module.params["state"]
    run_job(module, "baseline" if state == "present" else "reset", state)


if __name__ == "__main__":
    main()
