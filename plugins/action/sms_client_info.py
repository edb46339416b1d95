# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_client_info module: the manifest is read where the playbook runs.

Its old name, sms_client_facts, is routed here (meta/runtime.yml) until 2.0.0.

When the task's `manifest` is a file on the controller, it is read and
validated there and the module gets its content as `manifest_data` (a client
only needs names and SHA-256), so clients need no copy of the hotfix folder.
A path the controller does not have is passed through for the host to read.
"""

from __future__ import annotations


from ansible.errors import AnsibleActionFail

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_controller as sms_controller


class ActionModule(sms_controller.ManifestDataAction):
    def run(self, tmp=None, task_vars=None):
        try:
            return super().run(tmp, task_vars)
        except AnsibleActionFail as exc:
            # a manifest refused on the controller: the client was not read
            return dict(exc.result, failed=True, msg=getattr(exc, "message", None) or str(exc), status="refused")
