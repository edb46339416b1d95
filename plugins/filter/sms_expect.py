# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the site server's stage/rollback result into the logon tier's
`expect` (platform -> [{name, sha256}]): what the servers must end up serving.
Documented in sms_expect_from_stage.yml beside this file (ansible-doc -t filter)."""

from ansible.errors import AnsibleFilterError


def sms_expect_from_stage(result):
    if not isinstance(result, dict) or "files" not in result:
        raise AnsibleFilterError(
            "sms_expect_from_stage: the site server's result has no 'files'; "
            "did the site server play run (and succeed) in this playbook?"
        )
    expect = {}
    for entry in result["files"]:
        if entry.get("after_sha256"):
            expect.setdefault(entry["platform"], []).append({"name": entry["name"], "sha256": entry["after_sha256"]})
    return expect


class FilterModule:
    def filters(self):
        return {"sms_expect_from_stage": sms_expect_from_stage}
