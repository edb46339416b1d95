# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of sms_copy_list_baseline: the manifest read and validated on the controller
(plugins/plugin_utils/_sms_logon_controller.py)."""

from __future__ import annotations

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_logon_controller import LogonAction


class ActionModule(LogonAction):
    def job(self, args):
        return "reset" if args.get("state") == "absent" else "baseline"
