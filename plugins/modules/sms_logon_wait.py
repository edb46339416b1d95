#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_logon_wait
short_description: Wait until the SMS Maintenance Manager has carried a hotfix to a logon server
description:
  - Runs on one SMS logon server (the site server is a logon server too) and waits, like
    M(ansible.builtin.wait_for), until the hotfix files are in C(Logon.srv/<Platform>.bin) with the
    expected SHA-256 (file names matched case-insensitively) and every present copy list (C(Cl_nt.txt) ...)
    carries a C(CopyListVersion) newer than the baseline M(sms.hotfix.sms_copy_list_baseline) recorded
    before staging, so that clients notice the change.
  - It polls on the server itself, every O(sleep) seconds, up to O(timeout) seconds, and always returns
    RV(elapsed) and a per-file status. It never changes anything. In check mode it checks once and does
    not wait.
  - The action plugin of the same name runs the wait in slices of O(progress_interval) seconds and prints
    one progress line per server between slices.
version_added: "1.1.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
  - sms.hotfix.logon
  - sms.hotfix.logon.expect
options:
  require_copy_list_bump:
    description:
      - Require a C(CopyListVersion) greater than the baseline for convergence.
      - Not required when no baseline was recorded, or when the files were already current when it was recorded.
      - A push (M(sms.hotfix.sms_logon_push)) never bumps the copy lists, so wait with V(false) after one.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for convergence. V(0) checks once and returns RV(converged=false) without failing.
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
      - The action plugin sets this to V(false) for its intermediate slices.
    type: bool
    default: true
  progress_interval:
    description:
      - Consumed by the action plugin of the same name (a task option, not passed to the module).
      - With a O(timeout), seconds between two progress lines per server; the first line comes after a
        few seconds.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details: Check mode checks once and does not wait.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ansible.builtin.wait_for
  - module: sms.hotfix.sms_copy_list_baseline
  - module: sms.hotfix.sms_logon_push
"""

EXAMPLES = r"""
- name: Wait up to 30 minutes for the maintenance cycle
  sms.hotfix.sms_logon_wait:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
    server_name: "{{ inventory_hostname }}"
    timeout: 1800
    progress_interval: 30  # consumed by the action plugin
  register: wait_result

- name: Probe once, without waiting or failing
  sms.hotfix.sms_logon_wait:
    sms_root: "{{ sms_drive_root }}/SMS"
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
  register: probe

- name: Rollback - wait for the original files again, without a copy-list bump
  sms.hotfix.sms_logon_wait:
    sms_root: "{{ sms_drive_root }}/SMS"
    kb: Q216552
    expect:
      x86:
        - name: Smsrun32.exe
          sha256: "{{ original_smsrun32_sha256 }}"
    require_copy_list_bump: false
    timeout: 1800
"""

RETURN = r"""
status:
  description: V(converged) when every expected file and the copy-list criterion hold, else V(lagging).
  returned: success, and on a timeout
  type: str
  sample: converged
state:
  description: The state waited for; always V(converged).
  returned: always
  type: str
  sample: converged
converged:
  description: Whether every expected file matches and the copy-list criterion holds.
  returned: success, and on a timeout
  type: bool
elapsed:
  description: Seconds spent checking and waiting.
  returned: always
  type: float
  sample: 12.4
polls:
  description: How many times the server was checked (in the last slice, with the action plugin).
  returned: success, and on a timeout
  type: int
slices:
  description: How many module runs the action plugin made during the wait.
  returned: when O(timeout) is above 0 and not in check mode
  type: int
files:
  description: One entry per expected file.
  returned: success, and on a timeout
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
      description: SHA-256 found; null when the file is missing.
      type: str
    ok:
      description: Whether the file matches.
      type: bool
copy_list:
  description: The copy-list criterion.
  returned: success, and on a timeout
  type: dict
  contains:
    baseline:
      description: CopyListVersion recorded before staging; null without a baseline.
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
  description: What is still stale, one sentence per file or criterion.
  returned: success, and on a timeout
  type: list
  elements: str
  sample: ["X86.bin/Smsrun32.exe has sha256 ab12cd34ef56.. (unchanged since the baseline), expects 9f3c0a1b2c3d.."]
advice:
  description: What to do about a server that has not converged.
  returned: when RV(converged) is false
  type: str
baseline:
  description: The baseline record the copy-list criterion was measured against.
  returned: when a baseline exists
  type: dict
baseline_path:
  description: Where the baseline is kept.
  returned: success, and on a timeout
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
  description: The manifest the module read on the server.
  returned: when the module read a manifest file
  type: str
manifest_source:
  description: V(controller) when the action plugin read O(manifest) on the controller, V(host) when the server did.
  returned: when O(manifest) is given
  type: str
  sample: controller
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
    require_copy_list_bump=dict(type="bool", default=True),
    timeout=dict(type="int", default=0),
    sleep=dict(type="float", default=0.25),
    fail_on_timeout=dict(type="bool", default=True),
    # Consumed by the action plugin of the same name; declared so the spec and the documentation agree.
    progress_interval=dict(type="float", default=30),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, required_one_of=[("manifest", "expect")], supports_check_mode=True
    )
    run_job(module, "wait", "converged")


if __name__ == "__main__":
    main()
