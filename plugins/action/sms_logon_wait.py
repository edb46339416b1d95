# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of sms_logon_wait: the manifest read and validated on the controller, a long wait in slices
with one progress line per server (plugins/plugin_utils/_sms_logon_controller.py)."""

from __future__ import annotations

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_logon_controller import LogonAction


class ActionModule(LogonAction):
    WAITS = True

    def job(self, args):
        return "wait"
