# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the deprecated sms_replication module (removed in 2.0.0).

Each old `state` runs the controller side of the module that replaced it
(plugins/plugin_utils/_sms_logon_controller.py): baseline and reset as
sms_copy_list_baseline, converged as sms_logon_wait, pushed and restored as
sms_logon_push. meta/runtime.yml's deprecation warns when a task uses it.
"""

from __future__ import annotations

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_logon_controller import LogonAction

JOBS = {"baseline": "baseline", "converged": "wait", "pushed": "push", "restored": "restore", "reset": "reset"}


class ActionModule(LogonAction):
    WAITS = True
    PUSHES = True

    def job(self, args):
        return JOBS.get(args.get("state") or "converged", "wait")
