# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's operator report, as a callback: it follows the run's events
and feeds the report model (plugin_utils/_sms_report_model.py); the console
lines, report.json, junit.xml and report.html are rendered from that model by
plugin_utils/_sms_report_{console,json,junit,html}.py."""

from __future__ import annotations

DOCUMENTATION = """
    name: sms_rollout_report
    type: aggregate
    short_description: per-tier summary, wave progress and a report folder for the Q216552 rollout
    description:
      - Follows the results of the rollout's modules (C(sms_hotfix_manifest), C(sms_rollout_lock),
        C(sms_hotfix_stage), C(sms_copy_list_baseline), C(sms_logon_wait), C(sms_logon_push), the deprecated
        C(sms_replication), C(sms_client_upgrade), C(sms_client_info)) and
        announces each tier's plan as its play starts (hosts, client waves).
      - During client waves prints one progress line per wave as results arrive (done and failed of planned).
      - At the end of the run prints one summary line per tier (site server, logon servers, clients per wave),
        names the failed, unreachable and not reached clients, and ends with the one command that goes on
        (a re-run) or undoes (the rollback).
      - Writes C(<report_dir>/<UTC stamp>-<playbook>/) holding C(report.json) (schema in
        C(docs/report.schema.json)), C(junit.xml) (one test case per host) and C(report.html). Under AWX the
        folder is C(<report_dir>/awx-workflow-<id>/<UTC stamp>-<playbook>-job-<id>/).
      - A report folder that cannot be written gives a warning; the run's result does not change.
      - Runs beside any stdout callback, on the CLI and under ansible-runner / AWX.
    requirements:
      - enable it with C(callbacks_enabled = sms.hotfix.sms_rollout_report) in ansible.cfg
    options:
      report_dir:
        description:
          - Folder under which each run's report folder is created; relative paths are
            relative to the current directory.
        type: path
        default: reports
        env:
          - name: SMS_REPORT_DIR
        ini:
          - section: callback_sms_rollout_report
            key: report_dir
      disable:
        description: Do not write the report folder (the summary is still printed).
        type: bool
        default: false
        env:
          - name: SMS_REPORT_DISABLE
        ini:
          - section: callback_sms_rollout_report
            key: disable
      progress_interval:
        description:
          - Seconds between two progress lines of one client wave while its results arrive; the line that
            says a wave finished is always printed. C(0) prints a line for every result.
        type: float
        default: 10
        env:
          - name: SMS_REPORT_PROGRESS_INTERVAL
        ini:
          - section: callback_sms_rollout_report
            key: progress_interval
"""

import functools
import os
import re
import time
import traceback

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_model as model
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_console import (
    next_step,
    summary_lines,
    wave_progress,
)
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_files import make_folder, write_report
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_invocation import current as current_invocation

# Kept importable from here: tools and tests reach them by the callback's name.
serial_batches = model.serial_batches
short_action = model.short_action


def walk_tasks(play):
    """Every static task of a play (pre_tasks, roles, tasks, post_tasks, blocks)."""

    def blocks_of(items):
        for item in items or []:
            if hasattr(item, "block"):
                for part in ("block", "rescue", "always"):
                    yield from blocks_of(getattr(item, part, None))
            else:
                yield item

    sources = [getattr(play, "pre_tasks", None)]
    for role in getattr(play, "roles", None) or []:
        try:
            sources.append(role.get_task_blocks())
        except Exception:
            pass
    sources += [getattr(play, "tasks", None), getattr(play, "post_tasks", None)]
    for source in sources:
        yield from blocks_of(source)


def guarded(method):
    """A callback must never break the run: errors become a warning."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            try:
                self._display.warning(
                    "sms_rollout_report: %s failed (%s: %s); the run goes on, "
                    "the report may be incomplete" % (method.__name__, type(exc).__name__, exc)
                )
                self._display.vvv(traceback.format_exc())
            except Exception:
                pass

    return wrapper


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sms_rollout_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset()

    def reset(self):
        self.model = model.RunModel()
        self.started_clock = time.monotonic()
        self.plays = {}  # play uuid -> {"tiers", "batches", "hosts", "serial", "name", "waves"}
        self.announced = set()  # tiers whose hosts were named once on the console
        self.current_play = None
        self.invocation = {}
        self.wave = None  # the client wave whose results are arriving
        self.named = False  # the model has its playbook name

    # ---- helpers -----------------------------------------------------------

    def _option(self, name, default=None):
        try:
            value = self.get_option(name)
        except Exception:
            value = None
        return default if value is None else value

    @staticmethod
    def _now():
        return model.iso_ms(model.utc_now())

    def _preflight(self, task):
        """A tier's module run in check mode inside a real run (the plan's
        read-only preflight, roles' tasks/preflight.yml): a check, not the
        tier's result, so a plan alone reports no stage, baseline or lock."""
        try:
            path = str(task.get_path() or "")
        except Exception:
            path = ""
        if "/tasks/preflight.yml:" in path:
            return True
        return getattr(task, "check_mode", None) is True and not (context.CLIARGS or {}).get("check", False)

    def _play_tiers(self, play):
        tiers = set()
        for task in walk_tasks(play):
            if self._preflight(task):
                continue
            tier = model.TIER_ACTIONS.get(short_action(getattr(task, "action", None)))
            if tier:
                tiers.add(tier)
        return tiers

    @staticmethod
    def _resolve_hosts(play):
        # Honours --limit (inventory subset); ignores the serial batch
        # restriction that is in force when the play starts.
        inventory = play.get_variable_manager()._inventory
        hosts = inventory.get_hosts(play.hosts, order=getattr(play, "order", None), ignore_restrictions=True)
        return [host.name for host in hosts]

    def _play_state(self):
        return self.plays.get(self.current_play) if self.current_play else None

    def _wave(self):
        state = self._play_state()
        return state["batches"] if state and "client" in state["tiers"] else None

    def _tiers(self):
        state = self._play_state()
        return state["tiers"] if state else set()

    def _invocation(self):
        """How this run was started, as plain data, for the closing command."""
        return current_invocation()

    # ---- the client waves' progress ----------------------------------------

    def _start_wave(self, state):
        waves = state.get("waves") or []
        number = state["batches"]
        self.wave = {
            "wave": number,
            "of": max(len(waves), number),
            "planned": waves[number - 1] if number - 1 < len(waves) else None,
            "started": time.monotonic(),
            "last": time.monotonic(),
            "done": False,
            "seen": False,
        }

    def _wave_line(self, finished):
        wave = self.wave
        counts = self.model.wave_counts(wave["wave"])
        self._display.display(
            wave_progress(
                wave["wave"],
                wave["of"],
                counts,
                wave["planned"],
                time.monotonic() - wave["started"],
                finished=finished,
                check_mode=self.model.check_mode,
            )
        )
        return counts

    def _wave_result(self):
        wave = self.wave
        if wave is None or wave["done"]:
            return
        wave["seen"] = True
        counts = self.model.wave_counts(wave["wave"])
        if wave["planned"] is not None and sum(counts.values()) >= wave["planned"]:
            self._end_wave()
        elif time.monotonic() - wave["last"] >= float(self._option("progress_interval", 10)):
            self._wave_line(finished=False)
            wave["last"] = time.monotonic()

    def _end_wave(self):
        # a wave no client result reached (a client play with no host, the
        # rollback plays of a rollout that did not roll back) says nothing
        if self.wave is not None and not self.wave["done"]:
            self.wave["done"] = True
            if self.wave["seen"]:
                self._wave_line(finished=True)

    # ---- plan --------------------------------------------------------------

    @guarded
    def v2_playbook_on_start(self, playbook):
        # `ansible-playbook a.yml b.yml` makes one run and one report, named after a.yml
        if not self.named:
            self.reset()
            self.named = True
            self.model.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "playbook")
            self.invocation = self._invocation()
            self.model.limit = self.invocation.get("limit") or None
        self.model.check_mode = bool((context.CLIARGS or {}).get("check", False))
        # Plays that never start (an earlier tier stopped the run) still have
        # targets: resolve the ones whose hosts need no templating now.
        for play in playbook.get_plays():
            try:
                tiers = self._play_tiers(play)
                if not tiers:
                    continue
                patterns = play.hosts if isinstance(play.hosts, list) else [play.hosts]
                if any("{{" in str(pattern) or "{%" in str(pattern) for pattern in patterns):
                    continue
                hosts = self._resolve_hosts(play)
                for tier in tiers:
                    self.model.add_targets(tier, hosts)
            except Exception:
                continue

    @guarded
    def v2_playbook_on_play_start(self, play):
        # Sent once per serial batch, with the play's hosts already templated.
        # ansible-runner's awx_display (stdout callback under AWX, called
        # first) renames a repeated play uuid to "<uuid>_<n>": strip that.
        self._end_wave()
        uuid = re.sub(r"_\d+$", "", str(play._uuid))
        self.current_play = uuid
        if getattr(play, "check_mode", False):
            self.model.check_mode = True
        if not self.model.awx:
            self.model.awx = model.awx_context(model.plain(play.get_variable_manager().extra_vars or {}))
        state = self.plays.get(uuid)
        if state is None:
            hosts = self._resolve_hosts(play)
            state = {
                "tiers": self._play_tiers(play),
                "batches": 0,
                "hosts": hosts,
                "serial": list(play.serial or []),
                "name": play.get_name().strip(),
            }
            self.plays[uuid] = state
            for tier in state["tiers"]:
                self.model.add_targets(tier, hosts)
            if "client" in state["tiers"]:
                threshold = model.as_number(getattr(play, "max_fail_percentage", None))
                if threshold is not None and self.model.max_fail_percentage is None:
                    self.model.max_fail_percentage = threshold
                waves = self.model.add_client_play(state["name"], hosts, state["serial"])
                state["waves"] = waves
                if hosts:  # a client play with no host (a rollback that did not happen) announces nothing
                    self._display.display(
                        "SMS rollout: clients — %s in %s: %s"
                        % (
                            model.plural(len(hosts), "host"),
                            model.plural(len(waves), "wave"),
                            ", ".join(str(size) for size in waves),
                        )
                    )
            elif "logon" in state["tiers"] and "logon" not in self.announced:
                self.announced.add("logon")  # once: the preflight, baseline and wait plays share the tier
                self._display.display(
                    "SMS rollout: logon servers — %s: %s" % (model.plural(len(hosts), "host"), ", ".join(hosts))
                )
            elif "site" in state["tiers"] and "site" not in self.announced:
                self.announced.add("site")
                self._display.display("SMS rollout: site server — %s" % ", ".join(hosts))
        state["batches"] += 1
        client = "client" in state["tiers"]
        self.model.open_span(state["name"], self._now(), wave=state["batches"] if client else None)
        if client and state["hosts"]:
            self._start_wave(state)
            if len(state.get("waves", [])) > 1:
                self._display.display(
                    "SMS rollout: client wave %d of %d starting" % (state["batches"], len(state["waves"]))
                )

    @guarded
    def v2_playbook_on_task_start(self, task, is_conditional):
        # A tier task reached through a dynamic include: the play's hosts are
        # that tier's targets too.
        tier = model.TIER_ACTIONS.get(short_action(task.action))
        state = self._play_state()
        if tier and state is not None and tier not in state["tiers"] and not self._preflight(task):
            state["tiers"].add(tier)
            self.model.add_targets(tier, state["hosts"])
            if tier == "client" and "waves" not in state:
                state["waves"] = self.model.add_client_play(state["name"], state["hosts"], state["serial"])
                self._start_wave(state)

    @guarded
    def v2_runner_on_start(self, host, task):
        tier = model.TIER_ACTIONS.get(short_action(task.action))
        if tier and not self._preflight(task):
            self.model.host_task_started(tier, host.get_name(), self._now())

    # ---- results -----------------------------------------------------------

    def _record(self, result, failed):
        task = result.task
        if self._preflight(task):
            if failed:
                action = short_action(task.action)
                tier = model.TIER_ACTIONS.get(action)
                msg = " ".join(str(result.result.get("msg") or "failed").split())
                if tier is None and action == "sms_rollout_lock":
                    msg = "lock cannot be taken: %s" % msg
                self.model.tier_failure(result.host.get_name(), msg, {tier} if tier else (), at=self._now())
                self.model.note_phase(None, True)
            return
        # The logon tier is read from its modules' own `state` and `status`; task_state is still the
        # fallback of the site and lock results only, until their modules return `state` (issue 26).
        self.model.record(
            short_action(task.action),
            result.host.get_name(),
            result.result,
            failed=failed,
            task_name=task.get_name().strip(),
            task_state=(task.args or {}).get("state"),
            wave=self._wave(),
            tiers=self._tiers(),
            at=self._now(),
        )
        if model.TIER_ACTIONS.get(short_action(task.action)) == "client" or "client" in self._tiers():
            self._wave_result()

    @guarded
    def v2_runner_on_ok(self, result):
        self._record(result, failed=False)

    @guarded
    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    @guarded
    def v2_runner_on_skipped(self, result):
        action = short_action(result.task.action)
        self.model.record_skipped(action, result.host.get_name(), result.result, wave=self._wave(), at=self._now())
        if model.TIER_ACTIONS.get(action) == "client":
            self._wave_result()

    @guarded
    def v2_runner_on_unreachable(self, result):
        host = result.host.get_name()
        msg = str(result.result.get("msg", "unreachable")).strip()
        tier = model.TIER_ACTIONS.get(short_action(result.task.action))
        if tier is None:
            tiers = self._tiers()
            tier = (
                "client"
                if "client" in tiers
                else ("logon" if "logon" in tiers else ("site" if "site" in tiers else None))
            )
        self.model.record_unreachable(host, msg, tier, wave=self._wave(), at=self._now())
        if tier == "client":
            self._wave_result()

    # ---- the end -----------------------------------------------------------

    @staticmethod
    def _stats(stats):
        out = {}
        if stats is None:
            return out
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            out[host] = dict(
                (key, int(summary.get(key, 0)))
                for key in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
            )
        return out

    def build_report(self, stats=None):
        return self.model.to_report(self._stats(stats), duration=time.monotonic() - self.started_clock)

    def write_report(self, report):
        folder = make_folder(
            self._option("report_dir", "reports"), self.model.started, report["playbook"], report.get("awx")
        )
        return write_report(report, folder)

    @guarded
    def v2_playbook_on_stats(self, stats):
        self._end_wave()
        report = self.build_report(stats)
        step = next_step(report, self.invocation)
        # the page shows the same next step beside its outcome
        report["next_step"] = {"label": step[0], "text": step[1]} if step else None
        where, written = "not written", False
        if self._option("disable", False):
            where = "disabled (SMS_REPORT_DISABLE)"
        else:
            try:
                folder = self.write_report(report)
                where = os.path.relpath(folder) if not os.path.relpath(folder).startswith("..") else folder
                written = True
            except Exception as exc:
                self._display.warning(
                    "sms_rollout_report: could not write the report folder under %r (%s: %s); "
                    "the run is not affected. Set SMS_REPORT_DIR or [callback_sms_rollout_report] "
                    "report_dir to a writable folder."
                    % (str(self._option("report_dir", "reports")), type(exc).__name__, exc)
                )
        self._display.display("")
        for line in summary_lines(report, where, step, written=written):
            self._display.display(line)
