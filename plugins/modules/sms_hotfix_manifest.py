#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_hotfix_manifest
short_description: Load and verify an SMS hotfix manifest and its payload
description:
  - Reads a hotfix manifest (see C(docs/MANIFEST.md)), checks its entries (known
    platforms, plain file names, sizes, dates, SHA-256) and, unless O(verify_payload=false),
    checks every payload file against it.
  - Read-only; used as the rollout's preflight on the controller, before any
    host is touched. A manifest or payload that does not hold fails the task, naming the
    entry or file and what was found.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  manifest:
    description: Path of the hotfix's C(manifest.json); its payload paths are relative to its folder.
    type: path
    required: true
  platforms:
    description:
      - Limit the result and the payload check to these platforms (V(x86), V(alpha), V(mips)).
      - A platform the manifest has no files for fails the task. Unset, every platform of the manifest.
    type: list
    elements: str
  verify_payload:
    description: Check that every payload file exists with the manifest's size and SHA-256; V(false) checks the manifest alone.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Verify the hotfix before the rollout
  sms.hotfix.sms_hotfix_manifest:
    manifest: "{{ playbook_dir }}/hotfixes/Q216552/manifest.json"
  delegate_to: localhost
  run_once: true
  register: hotfix

- name: Check the manifest of the x86 files only, without the payload
  sms.hotfix.sms_hotfix_manifest:
    manifest: /srv/hotfixes/Q216552/manifest.json
    platforms: [x86]
    verify_payload: false
  delegate_to: localhost
  run_once: true

- name: Name the hotfix in a message
  ansible.builtin.debug:
    msg: "{{ hotfix.kb }}: {{ hotfix.manifest.title }}, {{ hotfix.file_count.x86 }} x86 file(s)"
"""

RETURN = r"""
manifest:
  description: The manifest as validated, limited to O(platforms) when given; payload paths are left out.
  returned: success
  type: dict
  contains:
    kb:
      description: Knowledge Base number of the hotfix.
      type: str
      sample: Q216552
    title:
      description: The article's title.
      type: str
      sample: "SMS: SMSRUN Hangs at 90% CPU While IE Setup Is Running"
    product:
      description: The product the hotfix is for.
      type: str
      sample: Microsoft Systems Management Server
    version:
      description: The product version.
      type: str
      sample: "1.2"
    path:
      description: Absolute path of the manifest file read.
      type: str
    platforms:
      description:
        - One entry per platform, with C(directory) (the C(<Platform>.bin) folder name) and C(files), a list of
          C(name), C(size) (bytes), C(date) (ISO-8601 UTC), C(sha256) and C(service) (the file is a client
          service, e.g. C(Smssrv32.exe), so a client that gets it reports that it needs a reboot).
      type: dict
kb:
  description: Knowledge Base number of the hotfix (the same as RV(manifest.kb)).
  returned: success
  type: str
  sample: Q216552
file_count:
  description: Number of files per platform.
  returned: success
  type: dict
  sample: {"x86": 2, "alpha": 2}
payload_verified:
  description: Whether every payload file was checked against the manifest (the value of O(verify_payload)).
  returned: success
  type: bool
status:
  description:
    - What the module did, in one word, one of V(verified) (the manifest and every payload file checked),
      V(loaded) (the manifest checked, the payload not, O(verify_payload=false)), V(refused) (the manifest or
      a payload file does not hold; the task fails).
  returned: always, unless the task's arguments themselves were refused
  type: str
  sample: verified
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import ManifestError, load_manifest, summary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            manifest=dict(type="path", required=True),
            platforms=dict(type="list", elements="str"),
            verify_payload=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        manifest = load_manifest(
            module.params["manifest"],
            platforms=module.params["platforms"],
            check_payload=module.params["verify_payload"],
        )
    except ManifestError as exc:
        module.fail_json(msg=exc.msg, failed_path=exc.path, status="refused", **exc.facts)
    result = summary(manifest)
    module.exit_json(
        changed=False,
        status="verified" if module.params["verify_payload"] else "loaded",
        manifest=result,
        kb=result["kb"],
        file_count={p: len(s["files"]) for p, s in result["platforms"].items()},
        payload_verified=module.params["verify_payload"],
    )


if __name__ == "__main__":
    main()
