# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible.builtin.ping shipped as the collection ships its modules (benchmark only).

The "ping floor, bytecode" scenario: the same ping module and arguments,
its AnsiballZ zip given bytecode by the collection's BytecodeAction, so the
client tier can also be compared with a floor that compiles nothing on the
host (benchmarks/README.md).
"""

from __future__ import annotations

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_bytecode import BytecodeAction


class ActionModule(BytecodeAction):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self._execute_module(module_name="ansible.builtin.ping", module_args={}, task_vars=task_vars))
        return result
