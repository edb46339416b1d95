# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout report's model: plain data (dicts, lists, strings, numbers).

`RunModel` is fed by the sms_rollout_report callback with plain values (a
host name, a module's result dict, a time) and turns them into the report:
the dict that is `report.json` (schema: docs/report.schema.json). Every
renderer (sms_report_json, sms_report_junit, sms_report_html,
sms_report_console) is a function of that dict alone, so a report read back
from disk renders exactly like a fresh one.

`merge(*reports)` folds the reports of several runs (the nodes and slices of
one AWX workflow, or a run and its re-run) into one report of the same
shape: per host the latest result wins by time.

Nothing here imports Ansible: the model is tested, merged and rendered
without a playbook run.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

SCHEMA_VERSION = 1

TIER_ACTIONS = {
    "sms_hotfix_stage": "site",
    "sms_copy_list_baseline": "logon",
    "sms_logon_wait": "logon",
    "sms_logon_push": "logon",
    "sms_replication": "logon",  # deprecated, removed in 2.0.0
    "sms_client_upgrade": "client",
}
# sms_client_facts: sms_client_info's old name (routed to it until 2.0.0)
OTHER_ACTIONS = ("sms_hotfix_manifest", "sms_rollout_lock", "sms_client_info", "sms_client_facts")
TIER_LABEL = {"site": "site server", "logon": "logon servers", "client": "clients"}
CLIENT_DONE = ("upgraded", "unchanged", "rolled_back")
CLIENT_STATUSES = ("done", "failed", "skipped", "deferred", "unreachable", "not_reached")
LOGON_STATUSES = (
    "converged",
    "pushed",
    "baseline",
    "restored",
    "reset",
    "lagging",
    "failed",
    "unreachable",
    "not_reached",
)
SITE_STATUSES = ("staged", "unchanged", "rolled_back", "failed", "unreachable", "not_reached")
# sms_hotfix_stage's own `status` words and the site status each is reported as
# (a dry run's would_* is the same status: the console says "would").
SITE_WORDS = {
    "staged": "staged",
    "would_stage": "staged",
    "rolled_back": "rolled_back",
    "would_roll_back": "rolled_back",
    "nothing_to_roll_back": "unchanged",
    "unchanged": "unchanged",
}
SITE_ROLLBACK_WORDS = ("rolled_back", "would_roll_back", "nothing_to_roll_back")
# Logon-server states recorded before (baseline) or after (reset) the wait:
# they never replace what the wait itself found.
LOGON_BOOKKEEPING = ("baseline", "reset")
# The job a logon module's result is about, by the `state` it returned (None: a
# result without one, e.g. a task the action plugin refused before the module ran).
LOGON_JOBS: dict[str, dict[str | None, str]] = {
    "sms_logon_wait": {None: "wait"},
    "sms_copy_list_baseline": {"present": "baseline", "absent": "reset", None: "baseline"},
    "sms_logon_push": {"present": "pushed", "absent": "restored", None: "pushed"},
    "sms_replication": {
        "baseline": "baseline",
        "converged": "wait",
        "pushed": "pushed",
        "restored": "restored",
        "reset": "reset",
        None: "wait",
    },
}
LOGON_PHASES = {"baseline": "baseline", "reset": "reset", "restored": "restore", "pushed": "push", "wait": "logon wait"}

# What AWX injects into every job (awx_<key>, and the same as tower_<key>).
AWX_KEYS = (
    "job_id",
    "job_template_id",
    "job_template_name",
    "workflow_job_id",
    "workflow_job_name",
    "workflow_job_template_id",
    "workflow_job_template_name",
    "user_name",
    "launch_type",
    "schedule_id",
    "schedule_name",
    "inventory_id",
    "inventory_name",
    "execution_node",
    "project_revision",
)

# The phase a play is shown as on the timeline: the most telling result it
# had wins (a logon play that waited is "logon wait", not "baseline").
PHASE_RANK = {
    "plan": 1,
    "lock": 2,
    "unlock": 2,
    "compliance": 3,
    "baseline": 4,
    "reset": 4,
    "restore": 5,
    "push": 6,
    "logon wait": 7,
    "stage": 8,
    "site rollback": 8,
}


class ReportError(Exception):
    """A report that cannot be read or merged; the message names the file and what to do."""


def short_action(action):
    """`ansible.legacy.sms_replication` -> `sms_replication`."""
    return str(action or "").rsplit(".", 1)[-1]


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    """Seconds precision: the schema's `started` and `ended`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def iso_ms(moment):
    """Millisecond precision: when a result arrived, the timeline."""
    if not moment:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def parse_time(text):
    """An ISO-8601 UTC time written by this module (or None)."""
    if not isinstance(text, str) or not text:
        return None
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def serial_batches(host_count, serial):
    """Batch sizes as ansible-core's PlaybookExecutor._get_serialized_batches
    makes them (same arithmetic as the sms_waves filter)."""
    serial_list = list(serial or []) or [-1]
    remaining, batches, cur_item = host_count, [], 0
    while remaining > 0:
        value = serial_list[cur_item]
        if isinstance(value, str) and value.endswith("%"):
            size = int((int(value[:-1]) / 100.0) * host_count) or 1
        else:
            size = int(value)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(min(size, remaining))
        remaining -= batches[-1]
        cur_item = min(cur_item + 1, len(serial_list) - 1)
    return batches


def plain(value):
    """JSON-ready copy of a value taken from Ansible (tagged strings, tuples, sets)."""
    if isinstance(value, dict):
        return dict((str(key), plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def awx_context(variables):
    """The AWX job this run is (from the variables AWX injects), or {} outside AWX."""
    out = {}
    for key in AWX_KEYS:
        for prefix in ("awx_", "tower_"):
            value = (variables or {}).get(prefix + key)
            if value in (None, ""):
                continue
            if isinstance(value, bool):
                value = str(value)
            out[key] = int(value) if isinstance(value, int) else str(value)
            break
    # A slice of a sliced workflow node runs in an inner workflow of its own
    # (awx_workflow_job_id): the plan node hands every later node and slice
    # the run's id, which then names the run (its report folder).
    run = (variables or {}).get("sms_awx_workflow_job_id")
    if run not in (None, "") and not isinstance(run, bool):
        out["workflow_job_id"] = int(run) if isinstance(run, int) else str(run)
    return out


def _count(entries, statuses):
    totals = dict((status, 0) for status in statuses)
    for entry in entries:
        totals[entry["status"]] = totals.get(entry["status"], 0) + 1
    totals["hosts"] = len(entries)
    return totals


def _files_changed(files):
    return sum(1 for item in files if isinstance(item, dict) and item.get("changed"))


def client_entry(host, status, detail, msg, data=None, wave=None, at=None):
    data = data or {}
    files = data.get("files") if isinstance(data.get("files"), list) else []
    smsrun32 = data.get("smsrun32") if isinstance(data.get("smsrun32"), dict) else None
    entry = {
        "host": host,
        "wave": wave,
        "status": status,
        "detail": detail,
        "msg": msg or None,
        "reboot_required": bool(data.get("reboot_required", False)),
        "pending_restart": bool(data.get("pending_restart", False)),
        "files_changed": _files_changed(files),
        "logon_server": data.get("logon_server"),
        "smsrun32": smsrun32,
        "restart": _picked(data.get("restart"), RESTART_KEYS),
        "verify": _picked(data.get("verify"), VERIFY_KEYS),
    }
    if at:
        entry["at"] = at
    return entry


# What a client's result says of its restart and of the watch of the cure (sms_cure).
RESTART_KEYS = ("how", "done", "needed", "pending", "note", "error")
VERIFY_KEYS = ("result", "reason", "seconds", "elapsed", "looks", "instances", "highest_cpu", "threshold", "service")


def _picked(value, keys):
    if not isinstance(value, dict):
        return None
    return {key: plain(value[key]) for key in keys if key in value}


def restart_text(entry):
    """How the client was restarted after its upgrade, in a few words ('' when nothing is known)."""
    restart = entry.get("restart") or {}
    how = restart.get("how")
    if restart.get("error"):
        return "%s restart FAILED: %s" % ("client service" if how == "service" else str(how), restart["error"])
    if restart.get("done"):
        return "rebooted" if how == "reboot" else "client service restarted"
    if restart.get("needed"):
        return "reboot needed"
    if restart.get("pending"):
        return "reboot pending (restart=none): %s" % ", ".join(str(p) for p in restart["pending"])
    if restart.get("note") and str(restart["note"]).startswith("would "):
        return str(restart["note"])
    return ""


def verify_text(entry):
    """The watch of the cure: window, instances, highest CPU, or why there was none ('' when unknown)."""
    verify = entry.get("verify") or {}
    result = verify.get("result")
    if not result:
        return ""
    if result == "not_watched":
        return "not watched: %s" % verify.get("reason")
    facts = "watched %ss of %ss, %s instance(s) at most, highest CPU %s %%" % (
        verify.get("elapsed"),
        verify.get("seconds"),
        verify.get("instances"),
        verify.get("highest_cpu"),
    )
    if verify.get("service"):
        facts += ", client service %s" % verify["service"]
    if result == "healthy":
        return "healthy (%s)" % facts
    if result == "unverified":
        return "unverified: %s" % verify.get("reason")
    return "FAILED: %s (%s)" % (verify.get("reason") or result, facts)


def site_entry(host, status, msg, data=None, action="stage", at=None):
    data = data or {}
    files = data.get("files") if isinstance(data.get("files"), list) else []
    system_map = data.get("system_map") if isinstance(data.get("system_map"), dict) else None
    entry = {
        "host": host,
        "status": status,
        "msg": msg or None,
        "files": files,
        "files_changed": _files_changed(files),
        "system_map": system_map,
        "action": action,
    }
    if at:
        entry["at"] = at
    return entry


def logon_entry(host, status, msg=None, data=None, at=None, missing=None):
    data = data or {}
    entry = {
        "host": host,
        "status": status,
        "elapsed": data.get("elapsed"),
        "missing": [str(m) for m in (missing or [])],
        "msg": msg,
        "files": data.get("files") if isinstance(data.get("files"), list) else [],
    }
    if data:
        entry["copy_list"] = data.get("copy_list") if isinstance(data.get("copy_list"), dict) else None
    if at:
        entry["at"] = at
    return entry


class RunModel:
    """What one run did, as the callback learns it; `to_report()` gives report.json."""

    def __init__(self, playbook=None, started=None):
        self.playbook = playbook
        self.started = started or utc_now()
        self.check_mode = False
        self.hotfix = {"kb": None, "title": None}
        self.plan = None
        self.lock = None
        self.unlock = None
        # failures outside the three tiers (the plan's window guard, the
        # compliance sum-up): host -> message
        self.run_failures = {}
        # tier -> host -> entry; tier -> ordered hosts the tier's plays target
        self.results: dict[str, dict[str, dict[str, Any]]] = {"site": {}, "logon": {}, "client": {}}
        self.targets: dict[str, list[str]] = {"site": [], "logon": [], "client": []}
        self.compliance = {}
        self.unreachable = {}
        self.client_plan = []
        self.awx = {}
        self.limit = None  # the run's --limit (AWX's Limit field arrives as one)
        self.max_fail_percentage = None
        self.gate = None  # the wave gate's data when it stopped the rollout
        self.timeline = []
        self._open = None  # the timeline span of the play (batch) running now
        self._host_started = {}  # (tier, host) -> when its tier task started
        self._wave_hosts = {}  # wave -> hosts with a result in it

    # ---- what the run targets ----------------------------------------------

    def add_targets(self, tier, hosts):
        known = self.targets[tier]
        for host in hosts:
            if host not in known:
                known.append(host)

    def add_client_play(self, name, hosts, serial):
        """A client play's plan: the batch sizes Ansible makes for its hosts."""
        waves = serial_batches(len(hosts), serial)
        self.client_plan.append(
            {"play": name, "hosts": len(hosts), "serial": [str(item) for item in serial], "waves": waves}
        )
        return waves

    # ---- the timeline ------------------------------------------------------

    def open_span(self, label, at, wave=None):
        """A play (or one serial batch of it) starts; the one before ends now."""
        self.close_span(at)
        self._open = {
            "kind": "wave" if wave else "play",
            "label": label,
            "host": None,
            "wave": wave,
            "start": at,
            "end": None,
            "status": "ok",
            "_rank": 0,
            "_ran": False,
        }
        self.timeline.append(self._open)

    def close_span(self, at):
        if self._open is not None:
            self._open["end"] = at
            self._open = None

    def mark_ran(self):
        """A task of the running play had a result (not a skip): the play ran.
        Plays with no host (the rollback plays of a rollout that did not roll
        back) or whose every task was skipped are left off the timeline."""
        if self._open is not None:
            self._open["_ran"] = True

    def note_phase(self, phase, failed=False):
        """A result of the running play says what the play is (and whether it failed)."""
        span = self._open
        if span is None:
            return
        if failed:
            span["status"] = "failed"
        if phase and span["kind"] == "play" and PHASE_RANK.get(phase, 0) > span["_rank"]:
            span["label"], span["_rank"] = phase, PHASE_RANK.get(phase, 0)

    def host_task_started(self, tier, host, at):
        self._host_started[(tier, host)] = at

    # ---- results -----------------------------------------------------------

    def record(self, action, host, data, failed=False, task_name="", task_state=None, wave=None, tiers=(), at=None):
        """One result of a task (`data` is the module's result dict)."""
        self.mark_ran()
        msg = data.get("msg")
        msg = str(msg).strip() if msg not in (None, "") else None
        if isinstance(data.get("results"), list) and data["results"]:
            # a looped task: the last item speaks for the host
            last = data["results"][-1]
            if isinstance(last, dict):
                data = last

        if action == "sms_hotfix_manifest":
            manifest = data.get("manifest") if isinstance(data.get("manifest"), dict) else {}
            kb = data.get("kb") or manifest.get("kb")
            if kb:
                self.hotfix["kb"] = kb
            if manifest.get("title"):
                self.hotfix["title"] = manifest.get("title")
            platforms = {}
            for name, platform in (manifest.get("platforms") or {}).items():
                files = platform.get("files", []) if isinstance(platform, dict) else []
                platforms[name] = [item.get("name") if isinstance(item, dict) else str(item) for item in files]
            self.plan = {
                "host": host,
                "ok": not failed,
                "kb": kb,
                "title": manifest.get("title"),
                "platforms": platforms,
                "payload_verified": data.get("payload_verified"),
                "msg": msg if failed else None,
            }
            if failed:
                self.run_failures[host] = "hotfix not verified: %s" % (msg or "failed")
            self.note_phase("plan", failed)
            return
        if action == "sms_rollout_lock":
            lock = data.get("lock") if isinstance(data.get("lock"), dict) else {}
            if data.get("state") not in ("acquired", "released"):
                # the module never ran (its arguments were refused): neither taken nor released
                if failed:
                    self.tier_failure(host, "rollout lock: %s" % (msg or "failed"), tiers, wave, at)
                    self.run_failures[host] = "rollout lock: %s" % (msg or "failed")
                    self.note_phase(None, True)
                return
            if data["state"] == "released":  # the state the module ran, as it returned it
                self.unlock = {"host": host, "ok": not failed, "msg": msg, "at": at}
                if self.lock is not None and not failed:
                    self.lock["released"] = True
                elif failed:
                    self.run_failures[host] = "lock not released: %s" % (msg or "failed")
                self.note_phase("unlock", failed)
                return
            self.lock = {
                "host": host,
                "ok": not failed,
                "holder": lock.get("holder"),
                "started": lock.get("started"),
                "msg": msg,
                "released": False,
            }
            if at:
                self.lock["at"] = at
            if failed:
                self.tier_failure(host, "lock not taken: %s" % (msg or "failed"), tiers, wave, at)
            self.note_phase("lock", failed)
            return
        if action in ("sms_client_info", "sms_client_facts"):
            compliance = data.get("compliance") if isinstance(data.get("compliance"), dict) else {}
            if compliance.get("kb") and not self.hotfix["kb"]:
                self.hotfix["kb"] = compliance.get("kb")
            entry = {"host": host, "compliant": bool(compliance.get("compliant", False)) and not failed}
            for key in ("setup_phase", "copy_list_version", "logon_server", "files", "smsrun32", "error"):
                entry[key] = compliance.get(key)
            if failed and not entry["error"]:
                entry["error"] = msg or "failed"
            if at:
                entry["at"] = at
            self.compliance[host] = entry
            self.note_phase("compliance", failed)
            return

        if action == "sms_wave_gate":
            # The gate runs once per wave on the wave's first client; when it stops
            # the rollout, that client (and every later one) is not reached, not failed.
            gate = data.get("wave_gate") if isinstance(data.get("wave_gate"), dict) else {}
            if as_number(gate.get("threshold")) is not None:
                self.max_fail_percentage = as_number(gate.get("threshold"))
            if failed and data.get("status") == "stopped":
                self.gate = plain(gate)
            if failed:
                self.run_failures["wave gate"] = msg or "the wave gate stopped the rollout"
                self.note_phase(None, True)
            return
        tier = TIER_ACTIONS.get(action)
        if tier is None:
            if failed:
                self.tier_failure(host, "%s: %s" % (task_name, msg or "failed"), tiers, wave, at)
                self.note_phase(None, True)
            return
        if data.get("kb") and not self.hotfix["kb"]:
            self.hotfix["kb"] = data.get("kb")

        if tier == "site":
            # sms_hotfix_stage says what it did (`status`) and which job it ran
            # (`state`: present, or absent for the rollback); the task's own
            # argument is read only when the module never ran (refused arguments).
            word = str(data.get("status") or "")
            state = str(data.get("state") or task_state or "")
            rollback = state in ("absent", "rolled_back") or word in SITE_ROLLBACK_WORDS
            if failed:
                status = "failed"
            elif word in SITE_WORDS:
                status = SITE_WORDS[word]
            else:
                status = ("rolled_back" if rollback else "staged") if data.get("changed") else "unchanged"
            self.results["site"][host] = site_entry(
                host, status, msg, data, action="rollback" if rollback else "stage", at=at
            )
            self.note_phase("site rollback" if rollback else "stage", failed)
        elif tier == "logon":
            self._record_logon(action, host, data, failed, msg, at)
        else:
            detail = "failed" if failed else str(data.get("status") or "unknown")
            if failed:
                status = "failed"
            elif data.get("skipped") is True or detail == "skipped":
                status, detail = "skipped", "skipped"
            elif detail == "deferred":
                status = "deferred"
            else:
                status = "done"
            self._put_client(client_entry(host, status, detail, msg, data, wave=wave, at=at))
            self.note_phase(None, failed)

    def _record_logon(self, action, host, data, failed, msg, at):
        """A logon module's result, read from what it returned (`state`: its job; `status`: what it did)."""
        jobs = LOGON_JOBS.get(action, {None: "wait"})
        job = jobs.get(data.get("state"), jobs[None])
        missing = data.get("missing") if isinstance(data.get("missing"), list) else []
        if failed:
            status = "failed"
        elif job == "wait":
            status = "converged" if data.get("status") == "converged" else "lagging"
        else:
            # a baseline says whether the files match too; that is not convergence
            status = job
        phase = LOGON_PHASES[job]
        # a dry run stages nothing, so no server converges in it: lagging there is no failure
        self.note_phase(phase, failed or (status == "lagging" and not self.check_mode))
        previous = self.results["logon"].get(host)
        if status in LOGON_BOOKKEEPING and previous and previous["status"] not in LOGON_BOOKKEEPING:
            return
        self.results["logon"][host] = logon_entry(
            host, status, msg if (failed or status == "lagging") else None, data, at=at, missing=missing
        )
        started = self._host_started.pop(("logon", host), None)
        if phase in ("logon wait", "push", "restore") and started:
            self.timeline.append(
                {
                    "kind": "host",
                    "label": host,
                    "host": host,
                    "wave": None,
                    "start": started,
                    "end": at,
                    "status": status,
                }
            )

    def record_skipped(self, action, host, data, wave=None, at=None):
        """A client task skipped: by the module itself, or by a condition."""
        if TIER_ACTIONS.get(action) != "client":
            return
        if data.get("status"):
            # the module itself skipped the client (its logon server has not
            # converged): it returns skipped=true, which Ansible counts as a skip
            self.record(action, host, data, wave=wave, at=at)
            self.results["client"][host]["status"] = "skipped"
            return
        if host not in self.results["client"]:
            reason = data.get("false_condition") or data.get("skip_reason")
            if reason and "sms_client_platform" in str(reason):
                # the rollout leaves this client's platform out: a real outcome,
                # not a run that never got to the client
                self._put_client(
                    client_entry(
                        host,
                        "skipped",
                        "platform",
                        "skipped: its platform is not one of sms_rollout_platforms",
                        wave=wave,
                        at=at,
                    )
                )
                return
            self._put_client(
                client_entry(
                    host,
                    "skipped",
                    "condition",
                    "skipped by condition: %s" % reason if reason else "skipped",
                    wave=wave,
                    at=at,
                )
            )

    def record_unreachable(self, host, msg, tier, wave=None, at=None):
        self.mark_ran()
        self.unreachable[host] = msg
        self.note_phase(None, True)
        if tier == "client":
            self._put_client(client_entry(host, "unreachable", "unreachable", msg, wave=wave, at=at))
        elif tier == "logon":
            self.results["logon"][host] = logon_entry(host, "unreachable", msg, at=at)
        elif tier == "site":
            self.results["site"][host] = site_entry(host, "unreachable", msg, at=at)

    def tier_failure(self, host, msg, tiers=(), wave=None, at=None):
        """A failure of another task in a tier's play, before that tier's task ran."""
        if "client" in tiers and host not in self.results["client"]:
            self._put_client(client_entry(host, "failed", "failed", msg, wave=wave, at=at))
        elif "logon" in tiers and host not in self.results["logon"]:
            self.results["logon"][host] = logon_entry(host, "failed", msg, at=at)
        elif "site" in tiers and host not in self.results["site"]:
            self.results["site"][host] = site_entry(host, "failed", msg, at=at)
        elif not tiers:
            self.run_failures[host] = msg

    def _put_client(self, entry):
        previous = self.results["client"].get(entry["host"])
        if previous is not None and previous["wave"] != entry["wave"]:
            self._wave_hosts.get(previous["wave"], set()).discard(entry["host"])
        self.results["client"][entry["host"]] = entry
        self._wave_hosts.setdefault(entry["wave"], set()).add(entry["host"])

    def wave_counts(self, wave):
        """Status -> number of clients with a result in a wave so far (called per result: cheap)."""
        counts = dict((status, 0) for status in CLIENT_STATUSES)
        for host in self._wave_hosts.get(wave, ()):
            counts[self.results["client"][host]["status"]] += 1
        return counts

    # ---- the report --------------------------------------------------------

    def _unreached(self, host):
        if host in self.unreachable:
            return "unreachable", self.unreachable[host]
        return "not_reached", None

    def _entries(self, tier, make):
        out = []
        for host in self.targets[tier] + [h for h in self.results[tier] if h not in self.targets[tier]]:
            entry = self.results[tier].get(host)
            if entry is None:
                status, msg = self._unreached(host)
                entry = make(host, status, msg)
            out.append(entry)
        return out

    def to_report(self, stats=None, ended=None, duration=None):
        """report.json's content. `stats`: host -> Ansible's recap counters."""
        ended = ended or utc_now()
        self.close_span(iso_ms(ended))
        site_entries = self._entries("site", site_entry)
        logon = self._entries("logon", logon_entry)
        clients = self._entries("client", lambda host, status, msg: client_entry(host, status, status, msg))
        planned = self.client_plan[0]["waves"] if self.client_plan else []
        if duration is None:
            duration = max(0.0, (ended - self.started).total_seconds())
        report = {
            "schema": SCHEMA_VERSION,
            "playbook": self.playbook,
            "started": iso(self.started),
            "ended": iso(ended),
            "duration": round(float(duration), 3),
            "check_mode": self.check_mode,
            "hotfix": dict(self.hotfix),
            "plan": self.plan,
            "lock": self.lock,
            "site": site_entries[0] if site_entries else None,
            "site_servers": site_entries,
            "logon_servers": logon,
            "clients": clients,
            "waves": wave_rows(clients, lambda number: planned[number - 1] if number - 1 < len(planned) else None),
            "client_plan": self.client_plan,
            "totals": {},
            "ansible_stats": dict(sorted((stats or {}).items())),
            "failures": [{"host": host, "msg": msg} for host, msg in sorted(self.run_failures.items())],
        }
        if self.compliance:
            report["compliance"] = [self.compliance[host] for host in sorted(self.compliance)]
        report["totals"] = totals_of(report)
        failed_hosts = [h for h, c in report["ansible_stats"].items() if c.get("failures") or c.get("unreachable")]
        report["ok"] = not failed_hosts and entries_ok(report)
        # in time order: a server's wait is recorded when it ends, after the play that holds it started
        report["timeline"] = [
            dict((k, v) for k, v in span.items() if not k.startswith("_"))
            for span in sorted(self.timeline, key=lambda span: span["start"] or "")
            if span.get("_ran", True)
        ]
        if self.unlock:
            report["unlock"] = dict(self.unlock)
        if self.awx:
            report["awx"] = dict(self.awx)
        report["limit"] = self.limit
        report["stop"] = wave_stop(report, self.max_fail_percentage, self.gate)
        started_ms = iso_ms(self.started)
        report["started_at"] = started_ms
        return report


def wave_rows(clients, planned_of):
    """report["waves"]: per serial batch that ran, its clients by status."""
    waves: dict[Any, dict[str, int]] = {}
    for entry in clients:
        if entry["wave"] is None:
            continue
        counts = waves.setdefault(entry["wave"], dict((status, 0) for status in CLIENT_STATUSES))
        counts[entry["status"]] += 1
    rows = []
    for number in sorted(waves):
        row = {"wave": number, "planned": planned_of(number)}
        row.update(waves[number])
        rows.append(row)
    return rows


def as_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def percent(value, against=None):
    """33.33 -> "33 %"; one decimal only where a whole number would read as
    the value compared with (20.4 against 20: "20.4 %")."""
    value = float(value)
    if round(value) == value or against is None or round(value) != round(float(against)):
        return "%d %%" % round(value)
    return "%.1f %%" % value


def wave_stop(report, threshold=None, gate=None):
    """Why the client waves stopped, with the arithmetic, or None: the last
    wave that ran, when its failed and unreachable clients are above the
    threshold and clients were left not reached (ansible-core's
    max_fail_percentage or the wave gate stopped the play after it)."""
    if report.get("check_mode"):
        return None
    clients = report.get("clients") or []
    not_reached = hosts_with(clients, "not_reached")
    if not not_reached:
        return None
    waves = report.get("waves") or []
    plan = (report.get("client_plan") or [{}])[0].get("waves") or []
    if gate and gate.get("stopped"):
        if as_number(gate.get("threshold")) is not None:
            threshold = as_number(gate.get("threshold"))
    if threshold is None:
        return None
    # the waves stop after the last one that ran: that one is judged
    for row in sorted(waves, key=lambda item: item["wave"])[-1:]:
        bad = int(row.get("failed") or 0) + int(row.get("unreachable") or 0)
        size = row.get("planned") or sum(int(row.get(k) or 0) for k in CLIENT_STATUSES)
        if not size or not bad:
            continue
        share = 100.0 * bad / size
        if share > threshold:  # as ansible-core and the gate compare
            hosts = [
                c["host"] for c in clients if c.get("wave") == row["wave"] and c["status"] in ("failed", "unreachable")
            ]
            return {
                "wave": row["wave"],
                "waves": max(len(plan), row["wave"]),
                "failed_or_unreachable": bad,
                "size": int(size),
                "percent": round(share, 2),
                "threshold": threshold,
                "hosts": hosts,
                "not_reached": len(not_reached),
            }
    return None


def stop_text(stop):
    """wave 3: 2 of 6 failed or unreachable = 33 % > 20 % (sms_rollout_max_fail_percentage)"""
    return (
        "wave %d: %d of %d failed or unreachable = %s > %s (sms_rollout_max_fail_percentage): "
        "%s not started, %s not reached"
        % (
            stop["wave"],
            stop["failed_or_unreachable"],
            stop["size"],
            percent(stop["percent"], stop["threshold"]),
            percent(stop["threshold"]),
            ("wave %d of %d" % (stop["wave"] + 1, stop["waves"]))
            if stop["waves"] == stop["wave"] + 1
            else ("waves %d-%d of %d" % (stop["wave"] + 1, stop["waves"], stop["waves"]))
            if stop["waves"] > stop["wave"]
            else "later waves",
            plural(stop["not_reached"], "client"),
        )
    )


def totals_of(report):
    totals = {
        "site": _count(report["site_servers"], SITE_STATUSES),
        "logon_servers": _count(report["logon_servers"], LOGON_STATUSES),
        "clients": _count(report["clients"], CLIENT_STATUSES),
    }
    if report.get("compliance"):
        comp = report["compliance"]
        totals["compliance"] = {
            "hosts": len(comp),
            "compliant": sum(1 for c in comp if c["compliant"]),
            "not_compliant": sum(1 for c in comp if not c["compliant"]),
        }
    return totals


def entries_ok(report):
    """No run failure, no tier host failed or unreachable, no logon server lagging."""
    entries = report["site_servers"] + report["logon_servers"] + report["clients"]
    return (
        not report["failures"]
        and not any(e["status"] in ("failed", "unreachable") for e in entries)
        and (report.get("check_mode") or not any(e["status"] == "lagging" for e in report["logon_servers"]))
    )


# ---- reading what a report says --------------------------------------------


def run_kind(report):
    """`rollback`, `compliance`, `plan` (the plan and its read-only preflight
    alone, playbooks/plan.yml) or `rollout` (any tier of it)."""
    if (
        any(s.get("action") == "rollback" for s in report.get("site_servers") or [])
        or any(c.get("detail") == "rolled_back" for c in report.get("clients") or [])
        or os.path.splitext(str(report.get("playbook") or ""))[0] == "rollback"
    ):
        return "rollback"
    if report.get("compliance") and not (
        report.get("site_servers") or report.get("logon_servers") or report.get("clients")
    ):
        return "compliance"
    if report.get("plan") and not (
        report.get("site_servers") or report.get("logon_servers") or report.get("clients") or report.get("compliance")
    ):
        return "plan"
    return "rollout"


def hosts_with(entries, *statuses):
    return [entry["host"] for entry in entries if entry["status"] in statuses]


def lock_still_held(report):
    lock = report.get("lock")
    return bool(lock and lock.get("ok") and not lock.get("released") and not report.get("check_mode"))


def outcome(report):
    """The run in one line: {"level": green|amber|red, "word", "why": [reasons]}."""
    clients = report.get("clients") or []
    check = report.get("check_mode")
    why, loose = [], []
    if report.get("stop"):
        why.append(stop_text(report["stop"]))
    for failure in report.get("failures") or []:
        why.append("%s: %s" % (failure["host"], short_text(failure["msg"], 160)))
    for site in report.get("site_servers") or []:
        if site["status"] in ("failed", "unreachable"):
            why.append("site server %s %s" % (site["host"], site["status"]))
        elif site["status"] == "not_reached":
            loose.append("site server %s not reached" % site["host"])
    logon = report.get("logon_servers") or []
    bad_logon = hosts_with(logon, "failed", "lagging", "unreachable")
    if bad_logon:
        why.append("logon servers not converged: %s" % names(bad_logon, 5))
    unreached_logon = hosts_with(logon, "not_reached")
    if unreached_logon:
        loose.append("%s not reached" % plural(len(unreached_logon), "logon server"))
    counts = dict((status, len(hosts_with(clients, status))) for status in CLIENT_STATUSES)
    failed_waves = sorted(set(c["wave"] for c in clients if c["status"] in ("failed", "unreachable") and c["wave"]))
    if counts["failed"] or counts["unreachable"]:
        bits = []
        if counts["failed"]:
            bits.append("%s failed" % plural(counts["failed"], "client"))
        if counts["unreachable"]:
            bits.append("%s unreachable" % plural(counts["unreachable"], "client"))
        where = (" (wave %s)" % ", ".join(str(w) for w in failed_waves)) if failed_waves else ""
        why.append(", ".join(bits) + where)
    if counts["not_reached"]:
        (why if why else loose).append("%s not reached" % plural(counts["not_reached"], "client"))
    if counts["skipped"]:
        loose.append("%s skipped (logon server not ready)" % plural(counts["skipped"], "client"))
    if counts["deferred"]:
        loose.append("%s deferred (pending a restart)" % plural(counts["deferred"], "client"))
    comp = (report.get("totals") or {}).get("compliance")
    if comp and comp.get("not_compliant"):
        loose.append("%d of %d clients not compliant" % (comp["not_compliant"], comp["hosts"]))
    if lock_still_held(report):
        loose.append("the rollout lock is still held by %s" % report["lock"].get("holder"))
    # a merged report's ok is this verdict itself (merge()): its jobs' failures are in `failures`
    if why or (not report.get("ok", True) and not report.get("merged_from")):
        if not why:
            why.append("a task failed (see Ansible's recap)")
        return {
            "level": "red",
            "word": "Stopped" if counts["not_reached"] and not check else "Failed",
            "why": why + loose,
        }
    if loose:
        return {"level": "amber", "word": "Needs attention", "why": loose}
    good = []
    done_word = "would be done" if check else "done"
    if clients:
        good.append("%d/%d clients %s" % (counts["done"], len(clients), done_word))
    for site in report.get("site_servers") or []:
        good.append("site server %s %s" % (site["host"], site["status"].replace("_", " ")))
    if logon:
        converged = len(hosts_with(logon, "converged", "pushed", "restored"))
        if converged:
            good.append("%d/%d logon servers converged" % (converged, len(logon)))
        else:
            good.append("%d logon servers: %s" % (len(logon), ", ".join(sorted(set(e["status"] for e in logon)))))
    if comp:
        good.append("%d/%d clients compliant" % (comp["compliant"], comp["hosts"]))
    if run_kind(report) == "plan":
        good.append("the plan: hotfix verified, every input and server checked; nothing was changed")
    if not good:
        good.append("nothing failed")
    return {"level": "green", "word": "Would succeed" if check else "Succeeded", "why": good}


def verdict(report):
    """The one verdict on a run (a job's report or a merged one): what the
    page's outcome, `bin/sms-report merge` and playbooks/report.yml say.
    ok only when the outcome is green: nothing failed and every client the
    run was meant for is done (a client not reached, skipped or deferred
    still needs a run)."""
    result = outcome(report)
    return dict(result, ok=result["level"] == "green")


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def short_text(text, limit=400):
    text = " ".join(str(text or "failed").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def names(hosts, limit=20, rest=""):
    """Host names for one line: the first `limit`, then a count (and where the rest are)."""
    if len(hosts) <= limit:
        return ", ".join(hosts)
    return "%s and %d more%s" % (", ".join(hosts[:limit]), len(hosts) - limit, rest)


# ---- reading reports back, and merging them --------------------------------


def load(path):
    """The report dicts at `path`: a report.json, or a folder searched for report.json files."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        found = []
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            if "report.json" in files:
                found.append(os.path.join(folder, "report.json"))
        if not found:
            raise ReportError(
                "%s: no report.json in this folder or below it; give a report folder "
                "(reports/<time>-<playbook>/) or a report.json" % path
            )
        return [read(item) for item in found]
    return [read(path)]


def read(path):
    try:
        with open(path, "rb") as handle:
            report = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise ReportError("%s: no such file; give a report folder or a report.json" % path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(
            "%s: not a readable report.json (%s); give a file written by the sms_rollout_report callback" % (path, exc)
        )
    missing = [
        key
        for key in ("schema", "playbook", "started", "site_servers", "logon_servers", "clients")
        if not isinstance(report, dict) or key not in report
    ]
    if missing:
        raise ReportError(
            "%s: not an SMS rollout report (no %s); give a report.json written by the "
            "sms_rollout_report callback" % (path, ", ".join(missing))
        )
    if report.get("schema") != SCHEMA_VERSION:
        raise ReportError(
            "%s: report schema %r, this tool reads schema %d" % (path, report.get("schema"), SCHEMA_VERSION)
        )
    report.setdefault("report_dir", os.path.dirname(os.path.abspath(path)))
    return report


def _started(report):
    return (
        parse_time(report.get("started_at"))
        or parse_time(report.get("started"))
        or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    )


def _ended(report):
    return parse_time(report.get("ended")) or _started(report)


def _node(report):
    """Which job of a workflow a report is: its AWX job template, else its playbook."""
    awx = report.get("awx") or {}
    return str(awx.get("job_template_name") or awx.get("job_template_id") or report.get("playbook") or "")


def _source_label(report):
    awx = report.get("awx") or {}
    if awx.get("job_id") is not None:
        return "job %s" % awx["job_id"]
    return os.path.splitext(str(report.get("playbook") or "run"))[0]


def _runs(sources):
    """Reports of one node grouped into runs: reports that overlap in time are
    concurrent slices of one run; a later, separate one is a re-run."""
    runs: list[list[dict[str, Any]]] = []
    for source in sorted(sources, key=_started):
        if runs and _started(source) < max(_ended(item) for item in runs[-1]):
            runs[-1].append(source)
        else:
            runs.append([source])
    return runs


def _untouched(entry):
    """A run that did not touch a host says nothing of it: not reached, or its
    tasks skipped by a condition (an AWX failure path that rolls nothing back)."""
    return entry.get("status") == "not_reached" or (
        entry.get("status") == "skipped" and entry.get("detail") == "condition"
    )


def _newest(old, new, bookkeeping=()):
    """The entry that wins for one host: the latest result; a run that did not
    touch the host never replaces one that did."""
    if old is None:
        return new
    if _untouched(new) and not _untouched(old):
        return old
    if _untouched(old) and not _untouched(new):
        return new
    if new.get("status") in bookkeeping and old.get("status") not in bookkeeping:
        return old
    old_at, new_at = parse_time(old.get("at")), parse_time(new.get("at"))
    if new_at is None:
        return old if old_at is not None else new
    if old_at is None:
        return new
    return new if new_at >= old_at else old


def merge(*reports, clients=()):
    """One report for several runs: the nodes and slices of one AWX workflow,
    or a run and its re-runs. Per host the latest result wins (a run that did
    not touch a host leaves what an earlier one found); waves are counted
    again from the merged clients (each node's waves in time order, the
    slices of one run counted together). `clients`: the inventory's clients
    the runs were meant to reach; one no run touched is not reached."""
    sources = sorted([r for r in reports if r], key=lambda r: (_started(r), _source_label(r)))
    if not sources:
        raise ReportError("nothing to merge: no report given")
    by_node: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        by_node.setdefault(_node(source), []).append(source)
    # every run of every node, in time order; wave numbers follow that order
    runs = []
    latest = []
    for items in by_node.values():
        node_runs = _runs(items)
        runs.extend(node_runs)
        latest.extend(node_runs[-1])
    runs.sort(key=lambda run: _started(run[0]))
    wave_key: dict[int, tuple[int, Any]] = {}
    planned: dict[tuple[int, Any], int] = {}
    for index, run in enumerate(runs):
        for source in run:
            for row in source.get("waves") or []:
                slot = (index, row["wave"])
                if row.get("planned") is not None:
                    planned[slot] = planned.get(slot, 0) + int(row["planned"])
            for entry in source.get("clients") or []:
                if entry.get("wave"):
                    wave_key[id(entry)] = (index, entry["wave"])

    def fold(key, bookkeeping=()):
        chosen: dict[str, Any] = {}
        order: list[str] = []
        for source in sources:
            for entry in source.get(key) or []:
                host = entry["host"]
                if host not in chosen:
                    order.append(host)
                chosen[host] = _newest(chosen.get(host), entry, bookkeeping)
        return [chosen[host] for host in order]

    folded = fold("clients")
    used = sorted(set(wave_key[id(c)] for c in folded if id(c) in wave_key and not _untouched(c)))
    number = dict((key, index + 1) for index, key in enumerate(used))
    merged_clients = []
    for entry in folded:
        copy = dict(entry)
        if _untouched(entry):
            copy.update(status="not_reached", detail="not_reached", wave=None)
        else:
            copy["wave"] = number.get(wave_key[id(entry)]) if id(entry) in wave_key else None
        merged_clients.append(copy)
    seen = set(entry["host"] for entry in merged_clients)
    for host in clients or ():
        if host not in seen:
            seen.add(host)
            merged_clients.append(client_entry(host, "not_reached", "not_reached", None))
    by_number = dict((value, key) for key, value in number.items())

    def planned_of(wave):
        run_wave = by_number.get(wave)
        return planned.get(run_wave) if run_wave is not None else None

    site_servers = fold("site_servers")
    first, last = sources[0], max(sources, key=_ended)
    lock = None
    for source in sources:
        if source.get("lock"):
            lock = dict(source["lock"])
    if lock is not None and not lock.get("released"):
        lock_at = parse_time(lock.get("at")) or _started(first)
        for source in sources:
            unlock = source.get("unlock")
            if unlock and unlock.get("ok") and (parse_time(unlock.get("at")) or _ended(source)) >= lock_at:
                lock["released"] = True
    plan = None
    for source in sources:
        plan = source.get("plan") or plan
    hotfix: dict[str, Any] = {"kb": None, "title": None}
    for source in sources:
        for key in ("kb", "title"):
            hotfix[key] = hotfix[key] or (source.get("hotfix") or {}).get(key)
    stats: dict[str, dict[str, int]] = {}
    for source in sources:
        for host, counters in (source.get("ansible_stats") or {}).items():
            mine = stats.setdefault(host, dict((k, 0) for k in counters))
            for key, value in counters.items():
                mine[key] = mine.get(key, 0) + int(value or 0)
    failures: list[dict[str, Any]] = []
    for source in latest:
        failures.extend(source.get("failures") or [])
        if not source.get("ok") and not source.get("failures"):
            # the latest run of a node failed: that stays a failure of the whole run, even where a later
            # node (the failure path's rollback) gave its hosts a newer result
            bad = [
                e["host"]
                for key in ("site_servers", "logon_servers", "clients")
                for e in source.get(key) or []
                if e.get("status") in ("failed", "unreachable", "lagging")
            ]
            failures.append(
                {
                    "host": _source_label(source),
                    "msg": "this job failed (%s)" % (names(bad, 10) if bad else "see its output"),
                }
            )
    playbooks = []
    for source in sources:
        if source.get("playbook") not in playbooks:
            playbooks.append(source.get("playbook"))
    report = {
        "schema": SCHEMA_VERSION,
        "playbook": ", ".join(str(p) for p in playbooks),
        "started": iso(_started(first)),
        "ended": iso(_ended(last)),
        "duration": round(max(0.0, (_ended(last) - _started(first)).total_seconds()), 3),
        "check_mode": any(bool(s.get("check_mode")) for s in sources),
        "hotfix": hotfix,
        "plan": plan,
        "lock": lock,
        "site": site_servers[0] if site_servers else None,
        "site_servers": site_servers,
        "logon_servers": fold("logon_servers", LOGON_BOOKKEEPING),
        "clients": merged_clients,
        "waves": wave_rows(merged_clients, planned_of),
        "client_plan": [dict(plan_row) for s in sources for plan_row in (s.get("client_plan") or [])],
        "totals": {},
        "ansible_stats": dict(sorted(stats.items())),
        "failures": failures,
    }
    compliance = fold("compliance")
    if compliance:
        report["compliance"] = compliance
    report["totals"] = totals_of(report)
    # ok = the one verdict (the page's outcome, bin/sms-report, playbooks/report.yml):
    # a merged run is ok when every client it was meant for is done, not only
    # when no job failed
    report["ok"] = all(bool(s.get("ok")) for s in latest) and entries_ok(report)
    timeline = []
    for source in sources:
        for span in source.get("timeline") or []:
            item = dict(span)
            item["job"] = _source_label(source)
            timeline.append(item)
    report["timeline"] = timeline
    report["started_at"] = iso_ms(_started(first))
    shared = {}
    for key in AWX_KEYS:
        # the header names what every job shares (the workflow), not one job's own values
        values = [(s.get("awx") or {}).get(key) for s in sources]
        if values[0] is not None and all(value == values[0] for value in values):
            shared[key] = values[0]
    if shared:
        report["awx"] = shared
    report["merged_from"] = [
        {
            "playbook": s.get("playbook"),
            "started": s.get("started"),
            "ended": s.get("ended"),
            "ok": bool(s.get("ok")),
            "report_dir": s.get("report_dir"),
            "job": _source_label(s),
            "node": _node(s),
        }
        for s in sources
    ]
    report["ok"] = report["ok"] and verdict(report)["ok"]
    return report
