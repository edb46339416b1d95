# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_client_upgrade module: the manifest is read where the playbook runs.

When the task's `manifest` is a file on the controller, it is read and
validated there and the module gets its content as `manifest_data` (a client
only needs names and SHA-256), so clients need no copy of the hotfix folder.
A path the controller does not have is passed through for the host to read.
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


class ActionModule(sms_controller.ManifestDataAction):
    pass
