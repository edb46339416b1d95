# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of sms_logon_push: a push gets the controller's manifest and payload, validated here first
(option `transfer`); an undo needs only the KB the manifest names
(plugins/plugin_utils/_sms_logon_controller.py)."""

from __future__ import annotations

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_logon_controller import LogonAction


class ActionModule(LogonAction):
    PUSHES = True

    def job(self, args):
        return "restore" if args.get("state") == "absent" else "push"
