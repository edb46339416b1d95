# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the logon-tier modules (sms_logon_wait, sms_copy_list_baseline, sms_logon_push).

The one place their inputs are validated: a manifest that is a file on the
controller is read and validated here (plugins/plugin_utils/_sms_controller.py)
and the module gets its expected files and KB, so the logon servers need no
copy of it; an `expect` given by the task is checked here once
(`sms_logon.check_expectations`). The module trusts what it gets.

A push gets the manifest and its payload copied into the task's remote
temporary folder when `transfer` says so (auto: when the connection is not
local), validated here first.

A wait with a timeout runs on the logon server in slices of
`progress_interval` seconds (the module polls every `sleep` seconds on the
server itself); between slices one line per server says what is still
missing, so a 30-minute wait shows progress without a flood of retry lines.
"""

from __future__ import annotations

import math
import time
from typing import Any
from collections.abc import Callable

from ansible.errors import AnsibleActionFail
from ansible.utils.display import Display
from ansible_collections.sms.hotfix.plugins.module_utils.sms_logon import (
    ReplicationError,
    check_expectations,
    converged_message,
    expectations_from_manifest,
    not_converged_message,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import PLATFORM_DIRS
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_controller as sms_controller
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_bytecode import BytecodeAction

display = Display()

Result = dict[str, Any]

DEFAULT_PROGRESS_INTERVAL = 30
FIRST_PROGRESS = 5


def manifest_expectations(path: str) -> tuple[dict[str, Any], str]:
    """The expected files and KB of a manifest read and validated on the controller."""
    _data, _raw, manifest = sms_controller.load(path)
    return expectations_from_manifest(manifest), manifest["kb"]


def resolve_manifest(args: dict[str, Any], job: str = "wait") -> dict[str, Any]:
    """The module's arguments, validated: a controller-side manifest read here, a given `expect` checked.

    A push keeps the manifest path (the payload transfer handles it); so does
    a manifest that exists only on the managed host. A restore or a reset
    needs only the KB the manifest names.
    """
    resolved = dict(args)
    if resolved.get("expect") and job in ("baseline", "wait"):
        try:
            resolved["expect"] = check_expectations(resolved["expect"], sms_controller.as_list(args.get("platforms")))
        except ReplicationError as exc:
            raise AnsibleActionFail("%s (checked on the controller; nothing was sent to the host)" % exc.msg)
    path = sms_controller.controller_path(args.get("manifest"))
    if path is None or job == "push":
        return resolved
    expect, kb = manifest_expectations(path)
    del resolved["manifest"]
    if job in ("baseline", "wait") and not resolved.get("expect"):
        resolved["expect"] = expect
    if resolved.get("kb") is None:
        resolved["kb"] = kb
    return resolved


def lagging_summary(result: Result) -> str:
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


def timeout_message(server: str, elapsed: float, result: Result) -> str:
    return not_converged_message(
        server, elapsed, result.get("missing") or [lagging_summary(result)], result.get("advice")
    )


def wait_in_slices(
    run_slice: Callable[[int], Result],
    server: str,
    timeout: int,
    interval: float,
    show: Callable[[str], Any],
    clock: Callable[[], float] = time.monotonic,
    first: float = FIRST_PROGRESS,
    name: str = "sms_logon_wait",
) -> Result:
    """Run `run_slice(seconds)` until convergence or `timeout`; return the final result.

    `run_slice` runs the module once with its own timeout and fail_on_timeout
    off; `show` prints a progress line (prefixed with the module's `name`).
    The first slice is short (`first` seconds), so a waiting operator sees a
    line within seconds, then one per `interval`. The result carries the total
    elapsed time and `failed` with the operator's message on timeout.
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
                show("%s: %s converged after %.1fs" % (name, server, elapsed))
            result["msg"] = converged_message(server, elapsed)
            return result
        if elapsed >= timeout:
            result["failed"] = True
            result["msg"] = timeout_message(server, elapsed, result)
            return result
        show("%s: %s waiting %ds/%ds: %s" % (name, server, int(round(elapsed)), int(timeout), lagging_summary(result)))


class LogonAction(BytecodeAction):
    """Front of a logon-tier module; `job(args)` says which job a task runs."""

    TRANSFERS_FILES = False
    # Task options this plugin consumes (never sent to the module).
    WAITS = False
    PUSHES = False

    def job(self, args: dict[str, Any]) -> str:
        raise NotImplementedError

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> Result:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        interval: Any = DEFAULT_PROGRESS_INTERVAL
        timeout = 0
        if self.WAITS:
            interval = args.pop("progress_interval", DEFAULT_PROGRESS_INTERVAL)
            try:
                interval = float(interval)
                timeout = int(args.get("timeout", 0) or 0)
            except (TypeError, ValueError):
                raise AnsibleActionFail(
                    "progress_interval and timeout must be numbers of seconds (got %r, %r)"
                    % (interval, args.get("timeout"))
                )
            if interval <= 0:
                raise AnsibleActionFail("progress_interval must be a positive number of seconds, not %s" % interval)
        transfer = sms_controller.pop_transfer(args) if self.PUSHES else None
        job = self.job(args)
        module_name = self._task.action
        try:
            if job == "push":
                args, facts = sms_controller.send_hotfix(self, args, transfer, True, task_vars)
                result.update(self._execute_module(module_name=module_name, module_args=args, task_vars=task_vars))
                result.update(facts)
                return sms_controller.unreachable_over_smb(result)
            resolved = resolve_manifest(args, job)
            source = {}
            if args.get("manifest"):
                source["manifest_source"] = "controller" if "manifest" not in resolved else "host"
            args = resolved
            if not (job == "wait" and timeout > 0 and not self._task.check_mode):
                result.update(self._execute_module(module_name=module_name, module_args=args, task_vars=task_vars))
                result.update(source)
                return sms_controller.unreachable_over_smb(result)

            # Only shown in messages (inventory_hostname is always set): str() as "%s" would print it.
            server = str(args.get("server_name") or task_vars.get("inventory_hostname") or args.get("sms_root"))

            def run_slice(seconds: int) -> Result:
                slice_args = dict(args, timeout=seconds, fail_on_timeout=False)
                return self._execute_module(module_name=module_name, module_args=slice_args, task_vars=task_vars)

            result.update(
                wait_in_slices(
                    run_slice, server, timeout, interval, display.display, name=str(module_name).rsplit(".", 1)[-1]
                )
            )
            result.update(source)
            return sms_controller.unreachable_over_smb(result)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
