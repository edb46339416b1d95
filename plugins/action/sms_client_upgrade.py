# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_client_upgrade module: the manifest is read where the playbook runs.

When the task's `manifest` is a file on the controller, it is read and
validated there and the module gets its content as `manifest_data` (a client
only needs names and SHA-256), so clients need no copy of the hotfix folder.
A path the controller does not have is passed through for the host to read.

With `restart=reboot` and a maintenance `window`, a client whose reboot and
watch would not end inside the window is refused here, on the controller,
before anything is sent to it: every client of a wave is judged by the same
clock, so a wave that would not finish inside the window does not start.
"""

from __future__ import annotations

import datetime

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.sms.hotfix.plugins.filter.sms_rollout import sms_in_window
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_controller as sms_controller


def reboot_refusal(args, now=None):
    """Why a reboot wave may not start now (None when it may)."""
    if args.get("restart") != "reboot" or args.get("state", "present") not in ("present", "upgraded"):
        return None
    window = args.get("window") or ""
    if not window:
        return None
    now = now or datetime.datetime.now()
    try:
        timeout = float(args.get("reboot_timeout", 600))
        watch = float(args.get("verify_seconds", 0) or 0)
    except (TypeError, ValueError):
        return None  # the module's argument spec names the bad value
    end = now + datetime.timedelta(seconds=timeout + watch)
    if sms_in_window(now, window) and sms_in_window(end, window):
        return None
    return (
        "restart is reboot, and this wave's reboots would not finish inside the maintenance window '%s': it is "
        "%s, and a reboot may take up to %gs plus a %gs watch (until %s). Nothing of this wave was changed. Run "
        "again inside the window, or lower sms_client_reboot_timeout"
        % (window, now.strftime("%Y-%m-%dT%H:%M:%S"), timeout, watch, end.strftime("%Y-%m-%dT%H:%M:%S"))
    )


class ActionModule(sms_controller.ManifestDataAction):
    def run(self, tmp=None, task_vars=None):
        refusal = reboot_refusal(dict(self._task.args))
        if refusal:
            host = to_text((task_vars or {}).get("inventory_hostname", ""))
            return {
                "failed": True,
                "changed": False,
                "status": "refused",
                "state": "present",
                "msg": "%s: %s" % (host, refusal) if host else refusal,
            }
        return super().run(tmp, task_vars)
