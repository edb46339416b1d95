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
"""

from __future__ import annotations

import importlib.util
import os
import sys


def load_helpers():
    """plugins/action/_sms_controller.py, shared by the SMS action plugins.

    Action plugins are loaded by file, not as a package, so the helper is
    loaded by path too, once per process.
    """
    name = "ansible_sms_rollout_controller"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sms_controller.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


sms_controller = load_helpers()


class ActionModule(sms_controller.PayloadAction):

    def needs_payload(self, args):
        return args.get("state", "present") != "rolled_back"
