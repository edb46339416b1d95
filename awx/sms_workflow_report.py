#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One report for a whole AWX workflow run (the workflow's report node).

Every node of the workflow, and every slice of a sliced node, is a job of its
own whose sms_rollout_report callback writes one report folder (report.json,
docs/report.schema.json) under the run's folder:

    <SMS_REPORT_DIR>/awx-workflow-<id>/.../report.json

This program reads them all and writes ONE report for the run into
<run folder>/workflow/ (report.json, junit.xml, report.html), prints a short
summary, and exits 0 when every client of the inventory is done, 1 when
some failed, were unreachable or were never reached (or a report says the run
was not ok), 2 when it could not merge (no reports, unreadable input).

    sms_workflow_report.py --workflow-dir DIR [--out DIR] [--name TITLE] < clients.json

stdin (optional) is JSON {"clients": [inventory names]}: the clients the run
was meant to reach, so a client no report mentions is counted as not reached.

When the shared report model's CLI (bin/sms-report merge) is there, the
merging is its job and this program only judges its result; merge() below
is the stand-in until then.
"""

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CLI = os.path.join(REPO, "bin", "sms-report")
CALLBACK = os.path.join(REPO, "plugins", "callback", "sms_rollout_report.py")
OUT_NAME = "workflow"
# Runs whose report is not part of the rollout's outcome: the report node itself.
SKIP_PLAYBOOKS = ("report.yml",)
RELEASING = ("unlock.yml",)

CLIENT_STATUSES = ("done", "failed", "skipped", "deferred", "unreachable", "not_reached")
LOGON_STATUSES = ("converged", "pushed", "baseline", "restored", "reset", "lagging", "failed", "unreachable",
                  "not_reached")
SITE_STATUSES = ("staged", "unchanged", "rolled_back", "failed", "unreachable", "not_reached")
UNREACHED = ("not_reached",)


class ReportError(Exception):
    pass


# ---- finding the run's reports ---------------------------------------------

def find_reports(workflow_dir, out_dir):
    """Every report.json below workflow_dir except our own output and the
    report node's own runs: [(folder, report)] in the order they started."""
    if not os.path.isdir(workflow_dir):
        raise ReportError("no report folder %s: no node of this workflow run wrote a report there (is "
                          "SMS_REPORT_DIR the same for every job, e.g. set in AWX's job settings?)" % workflow_dir)
    found = []
    out_real = os.path.realpath(out_dir)
    for folder, dirs, files in os.walk(workflow_dir):
        dirs.sort()
        if os.path.realpath(folder) == out_real:
            dirs[:] = []
            continue
        if "report.json" not in files:
            continue
        path = os.path.join(folder, "report.json")
        try:
            with open(path, encoding="utf-8") as handle:
                report = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ReportError("cannot read %s: %s; repair or move it away and run the report again" % (path, exc))
        if not isinstance(report, dict) or report.get("schema") != 1:
            raise ReportError("%s is not an sms_rollout_report report (schema 1)" % path)
        if report.get("playbook") in SKIP_PLAYBOOKS:
            continue
        found.append((folder, report))
    found.sort(key=lambda item: (item[1].get("started") or "", item[1].get("ended") or "", item[0]))
    return found


# ---- the stand-in merge ----------------------------------------------------

def _count(entries, statuses):
    totals = dict((status, 0) for status in statuses)
    for entry in entries:
        totals[entry["status"]] = totals.get(entry["status"], 0) + 1
    totals["hosts"] = len(entries)
    return totals


def _untouched(entry):
    """A node that did not touch a host says nothing of it: not reached, or
    every task skipped by a condition (the failure path when no rollback
    was asked for)."""
    return entry["status"] in UNREACHED or (entry["status"] == "skipped" and entry.get("detail") == "condition")


def _latest(entries_in_order):
    """host -> entry: a later run's result wins, unless that run did not
    touch the host."""
    chosen = {}
    for entry in entries_in_order:
        host = entry["host"]
        if _untouched(entry):
            if host not in chosen:
                chosen[host] = dict(entry, status="not_reached", detail="not_reached", wave=None) \
                    if "detail" in entry else dict(entry, status="not_reached")
            continue
        chosen[host] = entry
    return chosen


def _when(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")


def merge(reports, clients=(), name="workflow"):
    """Reports of one workflow run (oldest first) -> one report of the same
    schema. Client waves are numbered through the run: each node's (and each
    slice's) batches follow the ones before, so every batch keeps its own row."""
    if not reports:
        raise ReportError("no reports to merge")
    site, logon, client_entries = [], [], []
    waves, client_plan, failures = [], [], []
    hotfix = {"kb": None, "title": None}
    plan, lock, stats = None, None, {}
    offset = 0
    for report in reports:
        for key in ("kb", "title"):
            hotfix[key] = hotfix[key] or (report.get("hotfix") or {}).get(key)
        plan = plan or report.get("plan")
        this_lock = report.get("lock")
        if this_lock:
            if lock is None and this_lock.get("ok"):
                lock = dict(this_lock)
            elif lock is not None and this_lock.get("released"):
                lock["released"] = True
        elif lock is not None and report.get("playbook") in RELEASING and report.get("ok"):
            # the callback records a release only in the run that took the
            # lock; an unlock node that ended well released it
            lock["released"] = True
        site += report.get("site_servers") or []
        logon += report.get("logon_servers") or []
        touched = any(not _untouched(entry) for entry in report.get("clients") or [])
        for entry in report.get("clients") or []:
            entry = dict(entry)
            if entry.get("wave") is not None:
                entry["wave"] = entry["wave"] + offset
            client_entries.append(entry)
        if touched:
            batches = report.get("waves") or []
            for row in batches:
                row = dict(row)
                row["wave"] = row["wave"] + offset
                waves.append(row)
            offset += max([row["wave"] for row in batches] or [0])
            client_plan += report.get("client_plan") or []
        for failure in report.get("failures") or []:
            if failure not in failures:
                failures.append(failure)
        for host, counts in (report.get("ansible_stats") or {}).items():
            total = stats.setdefault(host, dict((key, 0) for key in counts))
            for key, value in counts.items():
                total[key] = total.get(key, 0) + int(value)

    site_by_host, logon_by_host = _latest(site), _latest(logon)
    client_by_host = _latest(client_entries)
    for host in clients:
        if host not in client_by_host:
            client_by_host[host] = {"host": host, "wave": None, "status": "not_reached", "detail": "not_reached",
                                    "msg": "no job of this workflow run reached it", "reboot_required": False,
                                    "pending_restart": False, "files_changed": 0, "logon_server": None,
                                    "smsrun32": None}
    site_list = [site_by_host[h] for h in sorted(site_by_host)]
    logon_list = [logon_by_host[h] for h in sorted(logon_by_host)]
    client_list = [client_by_host[h] for h in sorted(client_by_host)]
    started = min(r["started"] for r in reports if r.get("started"))
    ended = max(r["ended"] for r in reports if r.get("ended"))
    merged = {
        "schema": 1,
        "playbook": name,
        "started": started,
        "ended": ended,
        # wall time of the run: slices overlap, so durations do not add up
        "duration": float((_when(ended) - _when(started)).total_seconds()),
        "check_mode": all(r.get("check_mode") for r in reports),
        "hotfix": hotfix,
        "plan": plan,
        "lock": lock,
        "site": site_list[0] if site_list else None,
        "site_servers": site_list,
        "logon_servers": logon_list,
        "clients": client_list,
        "waves": waves,
        "client_plan": client_plan,
        "totals": {"site": _count(site_list, SITE_STATUSES),
                   "logon_servers": _count(logon_list, LOGON_STATUSES),
                   "clients": _count(client_list, CLIENT_STATUSES)},
        "ansible_stats": stats,
        "failures": failures,
    }
    merged["ok"] = (all(r.get("ok") for r in reports)
                    and not any(e["status"] in ("failed", "unreachable") for e in site_list + logon_list + client_list)
                    and not any(e["status"] == "lagging" for e in logon_list))
    return merged


# ---- rendering and writing -------------------------------------------------

def _renderers():
    """render_junit / render_html of the rollout's callback, or None."""
    try:
        spec = importlib.util.spec_from_file_location("_sms_rollout_report_renderers", CALLBACK)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.render_junit, module.render_html
    except Exception:  # the renderers moved: the JSON alone is still the report
        return None


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


def write_report(report, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    report["report_dir"] = os.path.abspath(out_dir)
    _write(out_dir, "report.json", json.dumps(report, indent=2, default=str) + "\n")
    renderers = _renderers()
    if renderers:
        render_junit, render_html = renderers
        _write(out_dir, "junit.xml", render_junit(report))
        _write(out_dir, "report.html", render_html(report))


def merge_with_shared_cli(folders, out_dir):
    """The shared report model's merge (bin/sms-report merge), when it exists."""
    result = subprocess.run([sys.executable, SHARED_CLI, "merge", "--out", out_dir] + folders,
                            capture_output=True, text=True, timeout=600)
    if result.returncode not in (0, 1):
        raise ReportError("bin/sms-report merge failed (rc %d): %s" % (result.returncode,
                                                                        (result.stderr or result.stdout)[-2000:]))
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as handle:
        return json.load(handle)


# ---- the verdict -----------------------------------------------------------

def _names(hosts, limit=20):
    if len(hosts) <= limit:
        return ", ".join(hosts)
    return "%s and %d more (see the report)" % (", ".join(hosts[:limit]), len(hosts) - limit)


def verdict(report, clients=()):
    """(ok, summary lines) for the run: ok only when the reports say so and
    every client of the inventory is done."""
    by_host = dict((entry["host"], entry) for entry in report.get("clients") or [])
    for host in clients:
        by_host.setdefault(host, {"host": host, "status": "not_reached"})
    groups = {}
    for host in sorted(by_host):
        groups.setdefault(by_host[host]["status"], []).append(host)
    lines = ["SMS workflow %s — report: %s" % ((report.get("hotfix") or {}).get("kb") or "",
                                                 report.get("report_dir") or "")]
    for entry in report.get("site_servers") or []:
        lines.append("site server   %s %s" % (entry["host"], entry["status"].replace("_", " ")))
    logon = report.get("logon_servers") or []
    if logon:
        lines.append("logon servers %s" % ", ".join("%s %s" % (e["host"], e["status"].replace("_", " "))
                                                    for e in logon))
    counts = ", ".join("%d %s" % (len(groups[s]), s.replace("_", " ")) for s in CLIENT_STATUSES if groups.get(s))
    lines.append("clients       %d: %s" % (len(by_host), counts or "none"))
    for status in ("failed", "unreachable", "not_reached", "skipped", "deferred"):
        if groups.get(status):
            lines.append("              %s: %s" % (status.replace("_", " "), _names(groups[status])))
    lock = report.get("lock")
    if lock and lock.get("ok") and not lock.get("released"):
        lines.append("rollout lock  still held by %s on %s" % (lock.get("holder"), lock.get("host")))
    for failure in report.get("failures") or []:
        lines.append("run failed    %s: %s" % (failure.get("host"), " ".join(str(failure.get("msg")).split())[:300]))
    not_done = [h for h, e in by_host.items() if e["status"] != "done"]
    ok = bool(report.get("ok")) and not not_done
    lines.append("outcome       %s" % ("every client done" if ok else "NOT every client done: a relaunch of the "
                                       "workflow goes on where this run stopped" if not_done else
                                       "a job of this run failed (see its output)"))
    return ok, lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow-dir", required=True, help="the run's folder: <SMS_REPORT_DIR>/awx-workflow-<id>")
    parser.add_argument("--out", help="where the merged report goes (default: <workflow-dir>/workflow)")
    parser.add_argument("--name", default="workflow", help="the merged report's 'playbook' (a title)")
    args = parser.parse_args(argv)
    out_dir = args.out or os.path.join(args.workflow_dir, OUT_NAME)
    clients = []
    try:
        if not sys.stdin.isatty():
            text = sys.stdin.read().strip()
            if text:
                clients = [str(c) for c in json.loads(text).get("clients", [])]
        found = find_reports(args.workflow_dir, out_dir)
        if not found:
            raise ReportError("no report.json below %s: no node of this workflow run wrote a report"
                              % args.workflow_dir)
        if os.path.exists(SHARED_CLI):
            report = merge_with_shared_cli([folder for folder, _report in found], out_dir)
        else:
            report = merge([r for _folder, r in found], clients=clients, name=args.name)
            write_report(report, out_dir)
    except (ReportError, OSError, ValueError) as exc:
        print("sms_workflow_report: %s" % exc, file=sys.stderr)
        return 2
    ok, lines = verdict(report, clients)
    lines.insert(1, "merged        %d report(s) of %s" % (len(found), args.workflow_dir))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
