# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Front of the sms_rollout_lock module: says which run takes the lock, and judges a run of the same holder.

The lock is re-entrant for its holder so that a re-run goes on where a
failed one stopped. Two live runs of one holder (two terminals of one
account, a cron job and a person) must not both go on: the lock records the
run that holds it (this controller, the ansible-playbook process and its
start), and when it names another run of the same holder, that run's
liveness is judged here, on the controller that can see its process. A dead
run's lock is taken over (the module is run again naming it); a live one, or
one on another controller, is refused, named.
"""

from __future__ import annotations

import os
import socket
import time

from ansible.plugins.action import ActionBase


def process_started(pid):
    """When process `pid` started (boot id and clock ticks since boot), or None where /proc cannot tell."""
    try:
        with open("/proc/%d/stat" % int(pid), encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        return "%s+%s" % (boot, fields[19])  # field 22 of stat: starttime
    except (OSError, IndexError, ValueError):
        return None


def started_at(pid):
    """The process's start as ISO-8601 UTC, or None."""
    try:
        with open("/proc/%d/stat" % int(pid), encoding="ascii", errors="replace") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boot + ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def this_run(task_vars):
    """The run taking the lock: the ansible-playbook process this worker was forked from, and any AWX job."""
    pid = os.getppid()
    awx = None
    for name in ("sms_awx_workflow_job_id", "awx_workflow_job_id", "awx_job_id"):
        if task_vars.get(name) not in (None, ""):
            awx = str(task_vars[name])
            break
    return {
        "controller": socket.gethostname(),
        "pid": pid,
        "pid_started": process_started(pid),
        "started": started_at(pid),
        "awx_job": awx,
    }


def alive(run):
    """Whether `run` (as the lock records it) still runs: None when this controller cannot tell."""
    if run.get("controller") != socket.gethostname():
        return None
    try:
        pid = int(run.get("pid"))
        os.kill(pid, 0)
    except (TypeError, ValueError):
        return None
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a process of another account: it exists
    started = run.get("pid_started")
    return started is None or process_started(pid) == started


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get("state", "acquired") == "acquired" and not args.get("run"):
            args["run"] = this_run(task_vars)
        try:
            outcome = self._execute_module(
                module_name="sms.hotfix.sms_rollout_lock", module_args=args, task_vars=task_vars
            )
            recorded = outcome.get("same_holder_run") if outcome.get("failed") else None
            if isinstance(recorded, dict):
                state = alive(recorded)
                if state is False:
                    # dead on this very controller: take its place, as the re-run it is
                    args["replace_run"] = "%s/%s/%s" % (
                        recorded.get("controller"),
                        recorded.get("pid"),
                        recorded.get("pid_started"),
                    )
                    outcome = self._execute_module(
                        module_name="sms.hotfix.sms_rollout_lock", module_args=args, task_vars=task_vars
                    )
                elif state is True:
                    lock = outcome.get("lock") or {}
                    outcome.pop("exception", None)  # the module's own wording of the same refusal
                    outcome["msg"] = (
                        "rollout lock %s is held by %s for another run that is still going on this controller: "
                        "pid %s, started %s. This run stops before it changes anything (two runs of one holder "
                        "would race on the same files): let that run finish, then run again if it is still needed"
                        % (
                            lock.get("path") or args.get("path"),
                            lock.get("holder") or args.get("holder"),
                            recorded.get("pid"),
                            recorded.get("started") or "?",
                        )
                    )
            result.update(outcome)
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
