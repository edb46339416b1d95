# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_hotfix_stage module: the payload comes from the controller.

The task option `transfer` (auto, always, never; default auto) decides
whether the controller's manifest and the payload of the targeted platforms
are copied into the task's remote temporary folder (auto: when the
connection is not local) and staged from there; the folder is removed when
the task ends. Manifest and payload are validated on the controller first: a
bad payload fails the task before anything reaches the site server. A
rollback needs no payload, so only the manifest is sent.

With the lab twin's inventory (it sets sms_lab_root) and no lab built there,
a missing SMS root is the lab not being built: the message says `make lab`,
not to set sms_root.
"""

from __future__ import annotations

import os

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_controller as sms_controller


def lab_not_built(result, lab_root):
    """The module's "SMS root does not exist" failure, told as what it is when
    the inventory is the lab's and its root is not there."""
    msg = str(result.get("msg") or "")
    if not (result.get("failed") and lab_root and "does not exist" in msg and "set sms_root" in msg):
        return result
    if os.path.isdir(os.path.join(lab_root, "hosts")):
        return result
    # ansible-core keeps the module's own message with its error summary: told anew, it is summed up anew
    result.pop("exception", None)
    result["msg"] = (
        "SMS root %s does not exist: this inventory is the lab twin's (sms_lab_root=%s) and no lab is built "
        "there; run `make lab` (or `lab/sms-lab build --root %s`) and run again. Nothing was changed."
        % (result.get("path") or "", lab_root, lab_root)
    )
    return result


class ActionModule(sms_controller.PayloadAction):
    def needs_payload(self, args):
        # absent (and its deprecated alias rolled_back) restores from the journal: no payload.
        return args.get("state", "present") not in ("absent", "rolled_back")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        lab_root = None
        raw = (task_vars or {}).get("sms_lab_root")
        if raw:
            try:
                lab_root = os.path.normpath(str(self._templar.template(raw)))
            except Exception:
                lab_root = None
        return lab_not_built(result, lab_root)
