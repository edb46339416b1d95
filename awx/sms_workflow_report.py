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

The merging is the shared report model's (plugins/plugin_utils, as
bin/sms-report merge uses it); this program finds the run's reports, counts
the inventory's clients in, and judges the result.
"""

import argparse
import functools
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_NAME = "workflow"
# Runs whose report is not part of the rollout's outcome: the report node itself.
SKIP_PLAYBOOKS = ("report.yml",)

CLIENT_STATUSES = ("done", "failed", "skipped", "deferred", "unreachable", "not_reached")


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


# ---- merging and writing (the shared report model) ------------------------

def collection_paths(root):
    """Where the sms.hotfix collection rooted at `root` is found: collections/ of a checkout, or the
    collections path an installed one sits in."""
    paths = [os.path.join(root, "collections")]
    top = os.path.dirname(os.path.dirname(root))
    if os.path.basename(top) == "ansible_collections":
        paths.append(os.path.dirname(top))
    return paths


@functools.lru_cache(maxsize=1)
def _shared():
    """The report model and files of the sms.hotfix collection this program is part of: a checkout
    (collections/ links to it) or an installed collection (<path>/ansible_collections/sms/hotfix)."""
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=collection_paths(REPO))._install()
    from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_files as files
    from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_model as model
    return model, files


def merge_and_write(reports, clients, out_dir):
    """One report for the run (every inventory client counted) in out_dir."""
    model, files = _shared()
    try:
        report = model.merge(*reports, clients=clients)
    except model.ReportError as exc:
        raise ReportError(str(exc))
    report["report_dir"] = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    for name, text in files.render_all(report):
        files.write_text(out_dir, name, text)
    return report


# ---- the verdict -----------------------------------------------------------

def _names(hosts, limit=20):
    if len(hosts) <= limit:
        return ", ".join(hosts)
    return "%s and %d more (see the report)" % (", ".join(hosts[:limit]), len(hosts) - limit)


def verdict(report, clients=(), name="workflow"):
    """(ok, summary lines) for the run: ok only when the reports say so and
    every client of the inventory is done."""
    by_host = dict((entry["host"], entry) for entry in report.get("clients") or [])
    for host in clients:
        by_host.setdefault(host, {"host": host, "status": "not_reached"})
    groups = {}
    for host in sorted(by_host):
        groups.setdefault(by_host[host]["status"], []).append(host)
    kb = (report.get("hotfix") or {}).get("kb") or ""
    lines = ["%s %s — report: %s" % (name, kb, report.get("report_dir") or "")]
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
    # the one verdict: the same function the page's outcome and bin/sms-report use
    model, _files = _shared()
    ruling = model.verdict(report)
    ok = ruling["ok"] and not not_done
    lines.append("outcome       %s" % ("every client done" if ok else "NOT every client done: a relaunch of the "
                                       "workflow goes on where this run stopped" if not_done else
                                       "%s: %s" % (ruling["word"], "; ".join(ruling["why"]))))
    return ok, lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--workflow-dir", required=True, help="the run's folder: <SMS_REPORT_DIR>/awx-workflow-<id>")
    parser.add_argument("--out", help="where the merged report goes (default: <workflow-dir>/workflow)")
    parser.add_argument("--name", default="workflow", help="the run's name in the summary (the AWX workflow's)")
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
        report = merge_and_write([r for _folder, r in found], clients, out_dir)
    except (ReportError, OSError, ValueError) as exc:
        print("sms_workflow_report: %s" % exc, file=sys.stderr)
        return 2
    ok, lines = verdict(report, clients, args.name)
    lines.insert(1, "merged        %d report(s) of %s" % (len(found), args.workflow_dir))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
