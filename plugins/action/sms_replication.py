# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_replication module: a long wait an operator can follow.

For state=converged with a timeout, the module runs on the logon server in
slices of `progress_interval` seconds (it polls every `sleep` seconds on the
server itself). Between slices this plugin prints one line per server saying
what is still missing, so a 30-minute wait shows progress without a flood of
retry lines.

The manifest is read on the controller when it is a file there (see
plugins/plugin_utils/sms_controller.py): waits get its expected files and KB, so the logon
servers need no copy of it; a push (state=pushed) gets the manifest and the
payload copied into the task's remote temporary folder when the task option
`transfer` says so (auto: when the connection is not local), validated on
the controller first. Every other call passes straight through to the module.
"""

from __future__ import annotations

import math
import time

from ansible.errors import AnsibleActionFail
from ansible.utils.display import Display

display = Display()

DEFAULT_PROGRESS_INTERVAL = 30
ADVICE = ("check that the Maintenance Manager runs on the site server (SMS Service Manager), "
          "trigger a pass, or use push mode (sms_replication_mode=push)")

from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import PLATFORM_DIRS
from ansible_collections.sms.hotfix.plugins.plugin_utils import sms_controller
from ansible_collections.sms.hotfix.plugins.plugin_utils.sms_bytecode import BytecodeAction


def expectations_from_manifest(path):
    """The expected files and KB of a manifest read and validated on the controller."""
    _data, _raw, manifest = sms_controller.load(path)
    expect = {
        platform: [{"name": entry["name"], "sha256": entry["sha256"]} for entry in spec["files"]]
        for platform, spec in manifest["platforms"].items()
    }
    return expect, manifest["kb"]


def resolve_manifest(args):
    """Read a controller-side manifest so the logon servers need no copy of it.

    A push copies the payload on the server, so it keeps the manifest path
    (the payload transfer handles it); so does a manifest that exists only on
    the managed host.
    """
    path = sms_controller.controller_path(args.get("manifest"))
    if path is None or args.get("state", "converged") == "pushed":
        return args
    expect, kb = expectations_from_manifest(path)
    resolved = dict(args)
    del resolved["manifest"]
    if not resolved.get("expect"):
        resolved["expect"] = expect
    if resolved.get("kb") is None:
        resolved["kb"] = kb
    return resolved


def lagging_summary(result):
    """One short line: the stale files and the copy-list criterion."""
    parts = []
    for item in result.get("files") or []:
        if item.get("ok"):
            continue
        label = "%s/%s" % (PLATFORM_DIRS.get(item.get("platform"), item.get("platform")), item.get("name"))
        parts.append("%s %s" % (label, "missing" if item.get("found_sha256") is None else "old"))
    copy_list = result.get("copy_list") or {}
    if copy_list.get("required") and not copy_list.get("ok"):
        parts.append("copy list %s (needs > %s)" % (copy_list.get("current"), copy_list.get("baseline")))
    return ", ".join(parts) or "nothing reported missing"


def timeout_message(server, elapsed, result):
    missing = result.get("missing") or [lagging_summary(result)]
    return "logon server %s: not converged after %ds: %s; %s" % (
        server, int(round(elapsed)), "; ".join(missing), result.get("advice") or ADVICE)


FIRST_PROGRESS = 5


def wait_in_slices(run_slice, server, timeout, interval, show, clock=time.monotonic, first=FIRST_PROGRESS):
    """Run `run_slice(seconds)` until convergence or `timeout`; return the final result.

    `run_slice` runs the module once with its own timeout and fail_on_timeout
    off; `show` prints a progress line. The first slice is short (`first`
    seconds), so a waiting operator sees a line within seconds, then one per
    `interval`. The result carries the total elapsed time and `failed` with
    the operator's message on timeout.
    """
    started = clock()
    slices = 0
    while True:
        remaining = timeout - (clock() - started)
        step = min(interval, first) if slices == 0 else interval
        seconds = max(1, int(math.ceil(min(step, remaining))))
        result = run_slice(seconds)
        slices += 1
        elapsed = clock() - started
        result["elapsed"] = round(elapsed, 3)
        result["slices"] = slices
        if result.get("failed") or result.get("unreachable"):
            return result
        if result.get("converged"):
            if slices > 1 or result.get("polls", 1) > 1:
                show("sms_replication: %s converged after %.1fs" % (server, elapsed))
            result["msg"] = "logon server %s: converged after %.1fs" % (server, elapsed)
            return result
        if elapsed >= timeout:
            result["failed"] = True
            result["msg"] = timeout_message(server, elapsed, result)
            return result
        show("sms_replication: %s waiting %ds/%ds: %s"
             % (server, int(round(elapsed)), int(timeout), lagging_summary(result)))


class ActionModule(BytecodeAction):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super().run(tmp, task_vars)
        del tmp

        args = dict(self._task.args)
        interval = args.pop("progress_interval", DEFAULT_PROGRESS_INTERVAL)
        try:
            interval = float(interval)
            timeout = int(args.get("timeout", 0) or 0)
        except (TypeError, ValueError):
            raise AnsibleActionFail("progress_interval and timeout must be numbers of seconds (got %r, %r)"
                                    % (interval, args.get("timeout")))
        if interval <= 0:
            raise AnsibleActionFail("progress_interval must be a positive number of seconds, not %s" % interval)
        transfer = sms_controller.pop_transfer(args)

        module_name = self._task.action
        state = args.get("state", "converged")
        waiting = state == "converged" and timeout > 0 and not self._task.check_mode
        try:
            if state == "pushed":
                args, facts = sms_controller.send_hotfix(self, args, transfer, True, task_vars)
                result.update(self._execute_module(module_name=module_name, module_args=args, task_vars=task_vars))
                result.update(facts)
                return result
            resolved = resolve_manifest(args)
            source = {"manifest_source": "controller" if resolved is not args else "host"} if args.get(
                "manifest") else {}
            args = resolved
            if not waiting:
                result.update(self._execute_module(module_name=module_name, module_args=args, task_vars=task_vars))
                result.update(source)
                return sms_controller.unreachable_over_smb(result)

            server = args.get("server_name") or task_vars.get("inventory_hostname") or args.get("sms_root")

            def run_slice(seconds):
                slice_args = dict(args, timeout=seconds, fail_on_timeout=False)
                return self._execute_module(module_name=module_name, module_args=slice_args, task_vars=task_vars)

            result.update(wait_in_slices(run_slice, server, timeout, interval, display.display))
            result.update(source)
            return sms_controller.unreachable_over_smb(result)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
