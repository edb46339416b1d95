# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING)
"""Benchmark probe: what a run cost per host, in tasks, as Ansible saw it.

Enabled beside the rollout's own callback by benchmarks/ (never by the
product). Counts every task result per host (ok, failed, skipped,
unreachable; and per action), writing them as JSON to $BENCH_COUNT_FILE when
the playbook ends. For the actions named in $BENCH_TIMELINE_ACTIONS it also
appends one JSON line per task start and per result to $BENCH_TIMELINE_FILE,
flushed at once: the replication benchmark watches it live to know when the
wait has begun, and reads when each server's result reached the controller.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_count
type: aggregate
short_description: task results per host, for the benchmarks
description:
  - Counts task results per host and action; optionally a timeline of chosen actions.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED by benchmarks/bench.py and tests/e2e/test_counts.py
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = defaultdict(lambda: defaultdict(int))
        watched = os.environ.get("BENCH_TIMELINE_ACTIONS", "")
        self._watched = {name.strip() for name in watched.split(",") if name.strip()}
        self._timeline = os.environ.get("BENCH_TIMELINE_FILE")

    def _watch(self, action):
        return self._timeline and (action in self._watched or action.rsplit(".", 1)[-1] in self._watched)

    def _line(self, record):
        # Appended and closed per line so a reader polling the file sees it now.
        with open(self._timeline, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._watch(task.action):
            self._line({"event": "task_start", "time": time.time(), "action": task.action, "task": task.get_name()})

    def _add(self, result, status):
        host = result._host.get_name()
        counts = self._hosts[host]
        counts[status] += 1
        counts["action:" + result._task.action] += 1
        res = result._result
        if status in ("ok", "failed") and res.get("changed"):
            counts["changed"] += 1
        if self._watch(result._task.action):
            self._line(
                {
                    "event": "result",
                    "time": time.time(),
                    "host": host,
                    "status": status,
                    "action": result._task.action,
                    "task": result._task.get_name(),
                    "converged": res.get("converged"),
                    "polls": res.get("polls"),
                    "slices": res.get("slices"),
                    "elapsed": res.get("elapsed"),
                }
            )

    def v2_runner_on_ok(self, result):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_COUNT_FILE")
        if not path:
            return
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({host: dict(counts) for host, counts in self._hosts.items()}, handle)
        os.replace(tmp, path)
