# -*- coding: utf-8 -*-
# The rollout's operator report: a per-tier summary at the end of the run and
# a report folder (JSON, JUnit XML, HTML) per run. Schema: docs/report.schema.json.

from __future__ import annotations

DOCUMENTATION = """
    name: sms_rollout_report
    type: aggregate
    short_description: per-tier summary and report folder for the Q216552 rollout
    description:
      - Follows the results of the rollout's modules (C(sms_hotfix_manifest), C(sms_rollout_lock),
        C(sms_hotfix_stage), C(sms_replication), C(sms_client_upgrade), C(sms_client_facts)) and
        announces each tier's plan as its play starts (hosts, client waves).
      - At the end of the run prints one summary line per tier (site server, logon servers,
        clients per wave) and writes C(<report_dir>/<UTC stamp>-<playbook>/) holding
        C(report.json) (schema in C(docs/report.schema.json)), C(junit.xml) (one test case per
        host) and C(report.html).
      - A report folder that cannot be written gives a warning; the run's result does not change.
      - Runs beside any stdout callback, on the CLI and under ansible-runner / AWX.
    requirements:
      - enable it with C(callbacks_enabled = sms_rollout_report) in ansible.cfg
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
"""

import datetime
import functools
import html
import json
import os
import re
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

from ansible import context
from ansible.plugins.callback import CallbackBase

SCHEMA_VERSION = 1

TIER_ACTIONS = {
    "sms_hotfix_stage": "site",
    "sms_replication": "logon",
    "sms_client_upgrade": "client",
}
OTHER_ACTIONS = ("sms_hotfix_manifest", "sms_rollout_lock", "sms_client_facts")
TIER_LABEL = {"site": "site server", "logon": "logon servers", "client": "clients"}
CLIENT_DONE = ("upgraded", "unchanged", "rolled_back")
CLIENT_STATUSES = ("done", "failed", "skipped", "deferred", "unreachable", "not_reached")
LOGON_STATUSES = ("converged", "pushed", "baseline", "restored", "reset", "lagging", "failed", "unreachable",
                  "not_reached")
SITE_STATUSES = ("staged", "unchanged", "rolled_back", "failed", "unreachable", "not_reached")


def short_action(action):
    """`ansible.legacy.sms_replication` -> `sms_replication`."""
    return str(action or "").rsplit(".", 1)[-1]


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


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


def walk_tasks(play):
    """Every static task of a play (pre_tasks, roles, tasks, post_tasks, blocks)."""
    def blocks_of(items):
        for item in items or []:
            if hasattr(item, "block"):
                for part in ("block", "rescue", "always"):
                    for task in blocks_of(getattr(item, part, None)):
                        yield task
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
        for task in blocks_of(source):
            yield task


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def guarded(method):
    """A callback must never break the run: errors become a warning."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            try:
                self._display.warning("sms_rollout_report: %s failed (%s: %s); the run goes on, "
                                      "the report may be incomplete"
                                      % (method.__name__, type(exc).__name__, exc))
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
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.reset()

    def reset(self):
        self.playbook = None
        self.started = utc_now()
        self.started_clock = time.monotonic()
        self.check_mode = False
        self.hotfix = {"kb": None, "title": None}
        self.plan = None
        self.lock = None
        # failures outside the three tiers (the plan's window guard, the
        # compliance sum-up): host -> message
        self.run_failures = {}
        # tier -> host -> entry; tier -> ordered list of hosts the tier's plays target
        self.results = {"site": {}, "logon": {}, "client": {}}
        self.targets = {"site": [], "logon": [], "client": []}
        self.compliance = {}
        self.unreachable = {}
        self.plays = {}            # play uuid -> {"tiers", "batches", "hosts", "serial"}
        self.current_play = None
        self.client_plan = []      # [{"play", "hosts", "serial", "waves"}]

    # ---- helpers -----------------------------------------------------------

    def _option(self, name, default=None):
        try:
            value = self.get_option(name)
        except Exception:
            value = None
        return default if value is None else value

    def _play_tiers(self, play):
        tiers = set()
        for task in walk_tasks(play):
            tier = TIER_ACTIONS.get(short_action(getattr(task, "action", None)))
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

    def _add_targets(self, tier, hosts):
        known = self.targets[tier]
        for host in hosts:
            if host not in known:
                known.append(host)

    def _play_state(self):
        return self.plays.get(self.current_play) if self.current_play else None

    def _wave(self):
        state = self._play_state()
        return state["batches"] if state else None

    def _tier_of_result(self, result):
        return TIER_ACTIONS.get(short_action(result.task.action))

    # ---- plan --------------------------------------------------------------

    @guarded
    def v2_playbook_on_start(self, playbook):
        # `ansible-playbook a.yml b.yml` makes one run and one report, named after a.yml
        if self.playbook is None:
            self.reset()
            self.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "playbook")
        self.check_mode = bool((context.CLIARGS or {}).get("check", False))
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
                    self._add_targets(tier, hosts)
            except Exception:
                continue

    @guarded
    def v2_playbook_on_play_start(self, play):
        # Sent once per serial batch, with the play's hosts already templated.
        # ansible-runner's awx_display (stdout callback under AWX, called
        # first) renames a repeated play uuid to "<uuid>_<n>": strip that.
        uuid = re.sub(r"_\d+$", "", str(play._uuid))
        self.current_play = uuid
        if getattr(play, "check_mode", False):
            self.check_mode = True
        state = self.plays.get(uuid)
        if state is None:
            hosts = self._resolve_hosts(play)
            state = {"tiers": self._play_tiers(play), "batches": 0, "hosts": hosts,
                     "serial": list(play.serial or []), "name": play.get_name().strip()}
            self.plays[uuid] = state
            for tier in state["tiers"]:
                self._add_targets(tier, hosts)
            if "client" in state["tiers"]:
                waves = serial_batches(len(hosts), state["serial"])
                state["waves"] = waves
                self.client_plan.append({"play": state["name"], "hosts": len(hosts),
                                         "serial": [str(item) for item in state["serial"]], "waves": waves})
                self._display.display("SMS rollout: clients — %s in %s: %s"
                                      % (plural(len(hosts), "host"), plural(len(waves), "wave"),
                                         ", ".join(str(size) for size in waves) or "none"))
            elif "logon" in state["tiers"]:
                self._display.display("SMS rollout: logon servers — %s: %s"
                                      % (plural(len(hosts), "host"), ", ".join(hosts)))
            elif "site" in state["tiers"]:
                self._display.display("SMS rollout: site server — %s" % ", ".join(hosts))
        state["batches"] += 1
        if "client" in state["tiers"] and len(state.get("waves", [])) > 1:
            self._display.display("SMS rollout: client wave %d of %d starting"
                                  % (state["batches"], len(state["waves"])))

    @guarded
    def v2_playbook_on_task_start(self, task, is_conditional):
        # A tier task reached through a dynamic include: the play's hosts are
        # that tier's targets too.
        tier = TIER_ACTIONS.get(short_action(task.action))
        state = self._play_state()
        if tier and state is not None and tier not in state["tiers"]:
            state["tiers"].add(tier)
            self._add_targets(tier, state["hosts"])

    # ---- results -----------------------------------------------------------

    @guarded
    def v2_runner_on_ok(self, result):
        self._record(result, failed=False)

    @guarded
    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    @guarded
    def v2_runner_on_skipped(self, result):
        tier = self._tier_of_result(result)
        if tier != "client":
            return
        if result.result.get("status"):
            # the module itself skipped the client (its logon server has not
            # converged): it returns skipped=true, which Ansible counts as a skip
            self._record(result, failed=False)
            self.results["client"][result.host.get_name()]["status"] = "skipped"
            return
        host = result.host.get_name()
        if host not in self.results["client"]:
            reason = result.result.get("false_condition") or result.result.get("skip_reason")
            self.results["client"][host] = self._client_entry(
                host, "skipped", "condition", "skipped by condition: %s" % reason if reason else "skipped")

    @guarded
    def v2_runner_on_unreachable(self, result):
        host = result.host.get_name()
        msg = str(result.result.get("msg", "unreachable")).strip()
        self.unreachable[host] = msg
        tier = self._tier_of_result(result)
        if tier is None:
            state = self._play_state()
            tiers = state["tiers"] if state else ()
            tier = "client" if "client" in tiers else ("logon" if "logon" in tiers else ("site" if "site" in tiers else None))
        if tier == "client":
            self.results["client"][host] = self._client_entry(host, "unreachable", "unreachable", msg)
        elif tier == "logon":
            self.results["logon"][host] = {"host": host, "status": "unreachable", "elapsed": None,
                                           "missing": [], "msg": msg, "files": []}
        elif tier == "site":
            self.results["site"][host] = self._site_entry(host, "unreachable", msg)

    def _client_entry(self, host, status, detail, msg, data=None):
        data = data or {}
        files = data.get("files") if isinstance(data.get("files"), list) else []
        smsrun32 = data.get("smsrun32") if isinstance(data.get("smsrun32"), dict) else None
        return {
            "host": host, "wave": self._wave(), "status": status, "detail": detail,
            "msg": msg or None,
            "reboot_required": bool(data.get("reboot_required", False)),
            "pending_restart": bool(data.get("pending_restart", False)),
            "files_changed": sum(1 for item in files if isinstance(item, dict) and item.get("changed")),
            "logon_server": data.get("logon_server"),
            "smsrun32": smsrun32,
        }

    @staticmethod
    def _site_entry(host, status, msg, data=None, action="stage"):
        data = data or {}
        files = data.get("files") if isinstance(data.get("files"), list) else []
        system_map = data.get("system_map") if isinstance(data.get("system_map"), dict) else None
        return {"host": host, "status": status, "msg": msg or None, "files": files,
                "files_changed": sum(1 for item in files if isinstance(item, dict) and item.get("changed")),
                "system_map": system_map, "action": action}

    def _record(self, result, failed):
        data = result.result
        host = result.host.get_name()
        action = short_action(result.task.action)
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
            self.plan = {"host": host, "ok": not failed, "kb": kb, "title": manifest.get("title"),
                         "platforms": platforms, "payload_verified": data.get("payload_verified"),
                         "msg": msg if failed else None}
            if failed:
                self.run_failures[host] = "hotfix not verified: %s" % (msg or "failed")
            return
        if action == "sms_rollout_lock":
            lock = data.get("lock") if isinstance(data.get("lock"), dict) else {}
            releasing = str(result.task.args.get("state") or "acquired") == "released"
            if releasing:
                if self.lock is not None and not failed:
                    self.lock["released"] = True
                elif failed:
                    self.run_failures[host] = "lock not released: %s" % (msg or "failed")
                return
            self.lock = {"host": host, "ok": not failed, "holder": lock.get("holder"),
                         "started": lock.get("started"), "msg": msg, "released": False}
            if failed:
                self._tier_failure(host, "lock not taken: %s" % (msg or "failed"))
            return
        if action == "sms_client_facts":
            compliance = data.get("compliance") if isinstance(data.get("compliance"), dict) else {}
            if compliance.get("kb") and not self.hotfix["kb"]:
                self.hotfix["kb"] = compliance.get("kb")
            entry = {"host": host, "compliant": bool(compliance.get("compliant", False)) and not failed}
            for key in ("setup_phase", "copy_list_version", "logon_server", "files", "smsrun32", "error"):
                entry[key] = compliance.get(key)
            if failed and not entry["error"]:
                entry["error"] = msg or "failed"
            self.compliance[host] = entry
            return

        tier = TIER_ACTIONS.get(action)
        if tier is None:
            if failed:
                self._tier_failure(host, "%s: %s" % (result.task.get_name().strip(), msg or "failed"))
            return
        if data.get("kb") and not self.hotfix["kb"]:
            self.hotfix["kb"] = data.get("kb")

        if tier == "site":
            state = str(data.get("state") or result.task.args.get("state") or "")
            if failed:
                status = "failed"
            elif state == "rolled_back":
                status = "rolled_back" if data.get("changed") else "unchanged"
            else:
                status = "staged" if data.get("changed") else "unchanged"
            self.results["site"][host] = self._site_entry(
                host, status, msg, data, action="rollback" if state == "rolled_back" else "stage")
        elif tier == "logon":
            state = str(data.get("state") or result.task.args.get("state") or "")
            missing = data.get("missing") if isinstance(data.get("missing"), list) else []
            if failed:
                status = "failed"
            elif state in ("reset", "restored"):
                status = state
            elif state == "pushed" or isinstance(data.get("pushed"), list):
                status = "pushed"
            elif state == "baseline" or "recorded" in data or "converged" not in data:
                # a baseline run says whether the files match too; that is not convergence
                status = "baseline"
            elif data.get("converged") is True:
                status = "converged"
            else:
                status = "lagging"
            previous = self.results["logon"].get(host)
            # bookkeeping before (baseline) or after (reset) the wait does not
            # replace what the wait found
            if status in ("baseline", "reset") and previous and previous["status"] not in ("baseline", "reset"):
                return
            self.results["logon"][host] = {
                "host": host, "status": status, "elapsed": data.get("elapsed"), "missing": [str(m) for m in missing],
                "msg": msg if (failed or status == "lagging") else None,
                "files": data.get("files") if isinstance(data.get("files"), list) else [],
                "copy_list": data.get("copy_list") if isinstance(data.get("copy_list"), dict) else None,
            }
        else:
            detail = "failed" if failed else str(data.get("status") or "unknown")
            if failed:
                status = "failed"
            elif data.get("skipped") is True or detail == "skipped":
                status, detail = "skipped", "skipped"
            elif detail == "deferred":
                status = "deferred"
            elif detail in CLIENT_DONE:
                status = "done"
            else:
                status = "done"
            self.results["client"][host] = self._client_entry(host, status, detail, msg, data)

    def _tier_failure(self, host, msg):
        """A failure of another task in a tier's play, before that tier's task ran."""
        state = self._play_state()
        tiers = state["tiers"] if state else set()
        if "client" in tiers and host not in self.results["client"]:
            self.results["client"][host] = self._client_entry(host, "failed", "failed", msg)
        elif "logon" in tiers and host not in self.results["logon"]:
            self.results["logon"][host] = {"host": host, "status": "failed", "elapsed": None, "missing": [],
                                           "msg": msg, "files": []}
        elif "site" in tiers and host not in self.results["site"]:
            self.results["site"][host] = self._site_entry(host, "failed", msg)
        elif not tiers:
            self.run_failures[host] = msg

    # ---- report ------------------------------------------------------------

    def _unreached(self, host):
        if host in self.unreachable:
            return "unreachable", self.unreachable[host]
        return "not_reached", None

    def build_report(self, stats=None):
        ended = utc_now()
        site_entries = []
        for host in self.targets["site"] + [h for h in self.results["site"] if h not in self.targets["site"]]:
            entry = self.results["site"].get(host)
            if entry is None:
                status, msg = self._unreached(host)
                entry = self._site_entry(host, status, msg)
            site_entries.append(entry)

        logon = []
        for host in self.targets["logon"] + [h for h in self.results["logon"] if h not in self.targets["logon"]]:
            entry = self.results["logon"].get(host)
            if entry is None:
                status, msg = self._unreached(host)
                entry = {"host": host, "status": status, "elapsed": None, "missing": [], "msg": msg, "files": []}
            logon.append(entry)

        clients = []
        for host in self.targets["client"] + [h for h in self.results["client"] if h not in self.targets["client"]]:
            entry = self.results["client"].get(host)
            if entry is None:
                status, msg = self._unreached(host)
                entry = {"host": host, "wave": None, "status": status, "detail": status, "msg": msg,
                         "reboot_required": False, "pending_restart": False, "files_changed": 0,
                         "logon_server": None, "smsrun32": None}
            clients.append(entry)

        waves = {}
        for entry in clients:
            if entry["wave"] is None:
                continue
            counts = waves.setdefault(entry["wave"], dict((status, 0) for status in CLIENT_STATUSES))
            counts[entry["status"]] += 1
        planned = self.client_plan[0]["waves"] if self.client_plan else []
        wave_list = []
        for number in sorted(waves):
            row = {"wave": number, "planned": planned[number - 1] if number - 1 < len(planned) else None}
            row.update(waves[number])
            wave_list.append(row)

        def count(entries, statuses):
            totals = dict((status, 0) for status in statuses)
            for entry in entries:
                totals[entry["status"]] = totals.get(entry["status"], 0) + 1
            totals["hosts"] = len(entries)
            return totals

        totals = {"site": count(site_entries, SITE_STATUSES),
                  "logon_servers": count(logon, LOGON_STATUSES),
                  "clients": count(clients, CLIENT_STATUSES)}
        if self.compliance:
            comp = list(self.compliance.values())
            totals["compliance"] = {"hosts": len(comp),
                                    "compliant": sum(1 for c in comp if c["compliant"]),
                                    "not_compliant": sum(1 for c in comp if not c["compliant"])}

        report = {
            "schema": SCHEMA_VERSION,
            "playbook": self.playbook,
            "started": iso(self.started),
            "ended": iso(ended),
            "duration": round(time.monotonic() - self.started_clock, 3),
            "check_mode": self.check_mode,
            "hotfix": dict(self.hotfix),
            "plan": self.plan,
            "lock": self.lock,
            "site": site_entries[0] if site_entries else None,
            "site_servers": site_entries,
            "logon_servers": logon,
            "clients": clients,
            "waves": wave_list,
            "client_plan": self.client_plan,
            "totals": totals,
            "ansible_stats": self._stats(stats),
            "failures": [{"host": host, "msg": msg} for host, msg in sorted(self.run_failures.items())],
        }
        failed_hosts = [h for h, c in report["ansible_stats"].items() if c["failures"] or c["unreachable"]]
        report["ok"] = (not failed_hosts and not report["failures"]
                        and not any(e["status"] in ("failed", "unreachable") for e in site_entries + logon + clients)
                        and not any(e["status"] == "lagging" for e in logon))
        if self.compliance:
            report["compliance"] = list(self.compliance.values())
        return report

    @staticmethod
    def _stats(stats):
        out = {}
        if stats is None:
            return out
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            out[host] = dict((key, int(summary.get(key, 0))) for key in
                             ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored"))
        return out

    # ---- summary lines -----------------------------------------------------

    def summary_lines(self, report, where):
        kb = report["hotfix"].get("kb") or "hotfix"
        mode = " [CHECK MODE: nothing was changed]" if report["check_mode"] else ""
        lines = ["SMS rollout %s — report: %s%s" % (kb, where, mode)]
        for site in report["site_servers"]:
            status = site["status"]
            words = {"staged": "would stage" if report["check_mode"] else "staged",
                     "unchanged": "already rolled back (no change)" if site.get("action") == "rollback"
                     else "already staged (no change)",
                     "rolled_back": "would roll back" if report["check_mode"] else "rolled back",
                     "not_reached": "not reached"}.get(status, status)
            details = []
            if status in ("staged", "rolled_back", "unchanged") and site["files"]:
                details.append("%s changed" % plural(site["files_changed"], "file"))
            if site["system_map"] and site["system_map"].get("bumped"):
                details.append("System.map bumped")
            if site["msg"] and status in ("failed", "unreachable"):
                details.append(site["msg"])
            lines.append("%-14s%-10s %s%s" % ("site server", site["host"], words,
                                               " (%s)" % ", ".join(details) if details else ""))
        if report["logon_servers"]:
            logon = report["logon_servers"]
            totals = report["totals"]["logon_servers"]
            done = totals["converged"] + totals["pushed"]
            parts = []
            for entry in logon:
                if entry["status"] in ("converged", "pushed") and entry["elapsed"] is not None:
                    parts.append("%s %.1fs" % (entry["host"], float(entry["elapsed"])))
                elif entry["status"] == "lagging" and report["check_mode"]:
                    # a dry run stages nothing, so no server can converge in it
                    parts.append("%s not yet (check mode: would wait)" % entry["host"])
                else:
                    parts.append("%s %s" % (entry["host"], entry["status"].replace("_", " ").upper()))
            verb = "pushed" if totals["pushed"] and not totals["converged"] else "converged"
            lines.append("%-14s%d/%d %s  %s" % ("logon servers", done, len(logon), verb, "  ".join(parts)))
        if report["clients"]:
            waves = []
            for row in report["waves"]:
                bits = ["%d %s" % (row["done"], "would be done" if report["check_mode"] else "done")]
                for status in ("failed", "skipped", "deferred", "unreachable"):
                    if row[status]:
                        bits.append("%d %s" % (row[status], status))
                waves.append("wave %d: %s" % (row["wave"], ", ".join(bits)))
            totals = report["totals"]["clients"]
            waves.append("not reached: %d" % totals["not_reached"])
            waves.append("skipped: %d" % totals["skipped"])
            if totals["deferred"]:
                waves.append("deferred: %d" % totals["deferred"])
            if totals["unreachable"]:
                waves.append("unreachable: %d" % totals["unreachable"])
            lines.append("%-14s%s" % ("clients", " | ".join(waves)))
            reboot = [c["host"] for c in report["clients"] if c["reboot_required"]]
            pending = [c["host"] for c in report["clients"] if c["pending_restart"]]
            if reboot:
                # the SMS client service file changed: it runs the old one until the restart
                lines.append("%-14s%s" % ("", "reboot required (client service changed): %s" % _hosts(reboot)))
            if pending:
                lines.append("%-14s%s" % ("", "pending a restart (deferred, SetupPhase=verifying_files): %s"
                                          % _hosts(pending)))
        if "compliance" in report:
            comp = report["totals"]["compliance"]
            lines.append("%-14s%d/%d compliant" % ("compliance", comp["compliant"], comp["hosts"]))
        for failure in report.get("failures") or []:
            lines.append("%-14s%s: %s" % ("run failed", failure["host"], _short(failure["msg"])))
        lock = report.get("lock")
        if lock and lock.get("ok") and not lock.get("released") and not report["check_mode"]:
            lines.append("%-14sstill held by %s on %s: the run stopped before the unlock step; a re-run by the "
                         "same holder goes on (playbooks/unlock.yml releases it)"
                         % ("rollout lock", lock.get("holder"), lock["host"]))
        return lines

    # ---- files -------------------------------------------------------------

    def _report_folder(self, report):
        base = os.path.abspath(os.path.expanduser(str(self._option("report_dir", "reports"))))
        stem = os.path.splitext(report["playbook"] or "playbook")[0]
        name = "%s-%s" % (self.started.strftime("%Y%m%dT%H%M%SZ"), stem)
        folder = os.path.join(base, name)
        suffix = 1
        while os.path.exists(folder):
            suffix += 1
            folder = os.path.join(base, "%s-%d" % (name, suffix))
        return folder

    @staticmethod
    def _write(folder, name, text):
        handle, temp = tempfile.mkstemp(prefix=".%s." % name, dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, os.path.join(folder, name))
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise

    def write_report(self, report):
        folder = self._report_folder(report)
        os.makedirs(folder)
        report["report_dir"] = folder
        self._write(folder, "report.json", json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
        self._write(folder, "junit.xml", render_junit(report))
        self._write(folder, "report.html", render_html(report))
        return folder

    @guarded
    def v2_playbook_on_stats(self, stats):
        report = self.build_report(stats)
        where = "not written"
        if self._option("disable", False):
            where = "disabled (SMS_REPORT_DISABLE)"
        else:
            try:
                folder = self.write_report(report)
                where = os.path.relpath(folder) if not os.path.relpath(folder).startswith("..") else folder
            except Exception as exc:
                self._display.warning("sms_rollout_report: could not write the report folder under %r (%s: %s); "
                                      "the run is not affected. Set SMS_REPORT_DIR or [callback_sms_rollout_report] "
                                      "report_dir to a writable folder."
                                      % (str(self._option("report_dir", "reports")), type(exc).__name__, exc))
        self._display.display("")
        for line in self.summary_lines(report, where):
            self._display.display(line)


# ---- renderers (module level so tests and tools can reuse them) -----------

def _junit_case(suite, classname, name, status, msg, elapsed=None, failing=(), skipping=()):
    case = ET.SubElement(suite, "testcase", classname=classname, name=name,
                         time="%.3f" % float(elapsed or 0))
    if status in failing:
        failure = ET.SubElement(case, "failure", message=msg or status, type=status)
        failure.text = msg or status
    elif status in skipping:
        ET.SubElement(case, "skipped", message=(msg or status.replace("_", " ")))
    ET.SubElement(case, "system-out").text = "status: %s" % status
    return case


def render_junit(report):
    root = ET.Element("testsuites", name="sms_rollout %s" % (report["hotfix"].get("kb") or ""))
    groups = [
        ("site server", "sms_rollout.site", [(e["host"], e["status"], e["msg"], None) for e in report["site_servers"]],
         ("failed", "unreachable"), ("not_reached",)),
        ("logon servers", "sms_rollout.logon",
         [(e["host"], e["status"], e["msg"] or (("missing: " + ", ".join(e["missing"])) if e["missing"] else None),
           e["elapsed"]) for e in report["logon_servers"]],
         ("failed", "lagging", "unreachable"), ("not_reached",)),
        ("clients", "sms_rollout.client",
         [(e["host"], e["status"], e["msg"] or e["detail"], None) for e in report["clients"]],
         ("failed", "unreachable"), ("skipped", "deferred", "not_reached")),
    ]
    if report.get("compliance"):
        groups.append(("compliance", "sms_rollout.compliance",
                       [(e["host"], "compliant" if e["compliant"] else "not_compliant",
                         e.get("error") or ("setup phase %s" % e.get("setup_phase")), None)
                        for e in report["compliance"]],
                       ("not_compliant",), ()))
    if report.get("failures"):
        groups.insert(0, ("run", "sms_rollout.run",
                          [(f["host"], "failed", f["msg"], None) for f in report["failures"]], ("failed",), ()))
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for label, classname, cases, failing, skipping in groups:
        if not cases:
            continue
        failures = sum(1 for c in cases if c[1] in failing)
        skipped = sum(1 for c in cases if c[1] in skipping)
        suite = ET.SubElement(root, "testsuite", name=label, tests=str(len(cases)), failures=str(failures),
                              errors="0", skipped=str(skipped), timestamp=report["started"] or "")
        for host, status, msg, elapsed in cases:
            _junit_case(suite, classname, host, status, msg, elapsed, failing, skipping)
        total["tests"] += len(cases)
        total["failures"] += failures
        total["skipped"] += skipped
    for key, value in total.items():
        root.set(key, str(value))
    root.set("errors", "0")
    root.set("time", "%.3f" % float(report.get("duration") or 0))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}.s-done,.s-converged,.s-staged,.s-pushed,.s-compliant{background:#e5f5e0}
.s-failed,.s-lagging,.s-unreachable,.s-not_compliant{background:#fde0dd}
.s-skipped,.s-deferred,.s-not_reached,.s-baseline{background:#fff7d6}.meta{color:#555}
"""


def _h(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    return html.escape(str(value), quote=True)


def _short(text, limit=400):
    text = " ".join(str(text or "failed").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _hosts(names, limit=20):
    """A host list for one summary line: the first `limit`, then a count."""
    if len(names) <= limit:
        return ", ".join(names)
    return "%s and %d more (see the report)" % (", ".join(names[:limit]), len(names) - limit)


def _table(headers, rows, status_column=None):
    out = ["<table><thead><tr>%s</tr></thead><tbody>" % "".join("<th>%s</th>" % _h(h) for h in headers)]
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            css = ' class="s-%s"' % _h(value) if index == status_column and value else ""
            cells.append("<td%s>%s</td>" % (css, _h(value)))
        out.append("<tr>%s</tr>" % "".join(cells))
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report):
    kb = report["hotfix"].get("kb") or "hotfix"
    title = "SMS rollout %s — %s" % (kb, report.get("playbook") or "")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>%s</title><style>%s</style></head><body>" % (_h(title), _CSS),
             "<h1>%s</h1>" % _h(title),
             '<p class="meta">%s%s → %s UTC (%.1fs)%s</p>' % (
                 (_h(report["hotfix"]["title"]) + " — ") if report["hotfix"].get("title") else "",
                 _h(report["started"]), _h(report["ended"]),
                 float(report.get("duration") or 0), " — CHECK MODE, nothing was changed" if report["check_mode"] else "")]
    totals = report["totals"]
    parts.append("<h2>Summary</h2>")
    rows = [("site server", ", ".join("%s=%d" % (k, v) for k, v in totals["site"].items() if v and k != "hosts"),
             totals["site"]["hosts"]),
            ("logon servers", ", ".join("%s=%d" % (k, v) for k, v in totals["logon_servers"].items()
                                        if v and k != "hosts"), totals["logon_servers"]["hosts"]),
            ("clients", ", ".join("%s=%d" % (k, v) for k, v in totals["clients"].items() if v and k != "hosts"),
             totals["clients"]["hosts"])]
    if "compliance" in totals:
        rows.append(("compliance", "compliant=%d, not_compliant=%d" % (totals["compliance"]["compliant"],
                                                                     totals["compliance"]["not_compliant"]),
                     totals["compliance"]["hosts"]))
    parts.append(_table(("tier", "outcome", "hosts"), rows))
    if report["waves"]:
        parts.append("<h2>Client waves</h2>")
        parts.append(_table(("wave", "planned", "done", "failed", "skipped", "deferred", "unreachable"),
                            [(w["wave"], w["planned"], w["done"], w["failed"], w["skipped"], w["deferred"],
                              w["unreachable"]) for w in report["waves"]]))
    if report.get("plan"):
        plan = report["plan"]
        parts.append("<h2>Plan</h2>")
        parts.append(_table(("kb", "title", "platforms", "payload verified"),
                            [(plan.get("kb"), plan.get("title"),
                              "; ".join("%s: %s" % (p, ", ".join(str(f) for f in files))
                                        for p, files in sorted((plan.get("platforms") or {}).items())),
                              plan.get("payload_verified"))]))
    if report.get("lock"):
        lock = report["lock"]
        parts.append("<h2>Rollout lock</h2>")
        parts.append(_table(("host", "ok", "holder", "started", "message"),
                            [(lock["host"], lock["ok"], lock["holder"], lock["started"], lock["msg"])]))
    if report["site_servers"]:
        parts.append("<h2>Site server</h2>")
        parts.append(_table(("host", "status", "files changed", "System.map bumped", "message"),
                            [(s["host"], s["status"], s["files_changed"],
                              (s["system_map"] or {}).get("bumped"), s["msg"]) for s in report["site_servers"]], 1))
        files = [(s["host"], f.get("platform"), f.get("name"), f.get("changed"), f.get("before_sha256"),
                  f.get("after_sha256")) for s in report["site_servers"] for f in s["files"] if isinstance(f, dict)]
        if files:
            parts.append(_table(("host", "platform", "file", "changed", "before sha256", "after sha256"), files))
    if report["logon_servers"]:
        parts.append("<h2>Logon servers</h2>")
        parts.append(_table(("host", "status", "elapsed (s)", "missing", "message"),
                            [(e["host"], e["status"], e["elapsed"], ", ".join(e["missing"]), e["msg"])
                             for e in report["logon_servers"]], 1))
    if report["clients"]:
        parts.append("<h2>Clients</h2>")
        parts.append(_table(("host", "wave", "status", "detail", "files changed", "restart pending",
                             "logon server", "message"),
                            [(c["host"], c["wave"], c["status"], c["detail"], c["files_changed"],
                              c["reboot_required"] or c["pending_restart"], c["logon_server"], c["msg"])
                             for c in report["clients"]], 2))
    if report.get("compliance"):
        parts.append("<h2>Compliance</h2>")
        parts.append(_table(("host", "status", "setup phase", "copy list version", "logon server", "error"),
                            [(c["host"], "compliant" if c["compliant"] else "not_compliant", c.get("setup_phase"),
                              c.get("copy_list_version"), c.get("logon_server"), c.get("error"))
                             for c in report["compliance"]], 1))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
