# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.html: the page an operator opens (from a share, an AWX artifact, offline).

`render_html(report)` is a pure function of the report model: `view()` turns
the model into what the page shows (the outcome in one line, per-wave bars,
the timeline, per-server convergence times, the tables in the order an
operator reads them) and the autoescaped Jinja2 template in
sms_report_templates/ lays it out as one self-contained page: inline CSS and
SVG, a few lines of inline script for the client filter, nothing fetched.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_model import (
    CLIENT_STATUSES,
    hosts_with,
    lock_still_held,
    outcome,
    parse_time,
    restart_text,
    run_kind,
    verify_text,
)

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sms_report_templates")

# Failed and unreachable clients come first in the table: they are why the page is opened.
CLIENT_ORDER = ("failed", "unreachable", "deferred", "skipped", "not_reached", "done")
STATUS_WORDS = {
    "done": "done",
    "failed": "failed",
    "skipped": "skipped",
    "deferred": "deferred",
    "unreachable": "unreachable",
    "not_reached": "not reached",
}
GOOD = ("done", "converged", "pushed", "restored", "staged", "unchanged", "rolled_back", "ok", "compliant")
BAD = ("failed", "unreachable", "lagging", "not_compliant")

# Chart geometry (SVG user units): label column, bar area, text column.
LABEL_W, BAR_W, TEXT_W = 150, 440, 320
ROW_H, BAR_H = 26, 16
CHART_W = LABEL_W + BAR_W + TEXT_W
MAX_HOST_ROWS = 40
FOLD_AT = 120


def _fit(label, limit=24):
    """A chart label that fits its column (the full text is in the bar's tooltip)."""
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _tone(status):
    if status in GOOD:
        return "good"
    if status in BAD:
        return "bad"
    return "other"


def _seconds(value):
    value = float(value)
    if value < 10:
        return "%.1fs" % value
    if value < 90:
        return "%ds" % round(value)
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 90:
        return "%dm%02ds" % (minutes, seconds) if seconds else "%dm" % minutes
    hours, minutes = divmod(minutes, 60)
    return "%dh%02dm" % (hours, minutes)


def _tick_step(span):
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800):
        if span / step <= 8:
            return step
    return span / 8.0


def _message(text):
    """(short, full, folded) for a message cell: long or multi-line ones fold."""
    if text is None:
        return "", "", False
    full = str(text)
    one_line = " ".join(full.split())
    if len(one_line) <= FOLD_AT and "\n" not in full.strip():
        return one_line, full, False
    return one_line[: FOLD_AT - 20].rstrip() + "…", full, True


def _wave_chart(report):
    """Per wave a bar of its clients by status (full width = the wave), then the
    waves that never ran, all 'not reached'."""
    clients = report.get("clients") or []
    rows = []
    for row in report.get("waves") or []:
        counts = dict((status, int(row.get(status) or 0)) for status in CLIENT_STATUSES)
        rows.append(
            {"label": "wave %d" % row["wave"], "wave": row["wave"], "planned": row.get("planned"), "counts": counts}
        )
    not_reached = len(hosts_with(clients, "not_reached"))
    plan = (report.get("client_plan") or [{}])[0].get("waves") or []
    unrun = plan[len(rows) :] if len(report.get("client_plan") or []) == 1 else []
    if not_reached and unrun and sum(unrun) == not_reached:
        for index, size in enumerate(unrun, start=len(rows) + 1):
            counts = dict((status, 0) for status in CLIENT_STATUSES)
            counts["not_reached"] = size
            rows.append({"label": "wave %d" % index, "wave": index, "planned": size, "counts": counts})
    elif not_reached:
        counts = dict((status, 0) for status in CLIENT_STATUSES)
        counts["not_reached"] = not_reached
        rows.append({"label": "not reached", "wave": None, "planned": None, "counts": counts})
    for index, row in enumerate(rows):
        total = sum(row["counts"].values())
        row["total"] = total
        row["y"] = index * ROW_H
        x = 0.0
        row["segments"] = []
        for status in CLIENT_STATUSES:
            count = row["counts"][status]
            if not count:
                continue
            width = BAR_W * count / float(total)
            row["segments"].append(
                {
                    "status": status,
                    "count": count,
                    "x": round(LABEL_W + x, 2),
                    "w": round(width, 2),
                    "word": STATUS_WORDS[status],
                }
            )
            x += width
        words = ["%d %s" % (row["counts"][s], STATUS_WORDS[s]) for s in CLIENT_STATUSES if row["counts"][s]]
        planned = row["planned"] if row["planned"] is not None else total
        row["text"] = "%s of %d" % (", ".join(words) or "no result", planned)
    return {
        "rows": rows,
        "height": max(1, len(rows)) * ROW_H + 4,
        "width": CHART_W,
        "legend": [(status, STATUS_WORDS[status]) for status in CLIENT_STATUSES],
    }


def _timeline(report):
    """Each play (each client wave) and each logon server's wait, on one time axis."""
    spans = []
    for span in report.get("timeline") or []:
        start, end = parse_time(span.get("start")), parse_time(span.get("end") or span.get("start"))
        if start is None or end is None:
            continue
        spans.append((start, max(end, start), span))
    if not spans:
        return None
    t0 = min(item[0] for item in spans)
    t1 = max(item[1] for item in spans)
    total = max((t1 - t0).total_seconds(), 0.001)
    scale = BAR_W / total
    kinds = {"play": 0, "wave": 0, "host": 1}
    spans.sort(key=lambda item: (item[0], kinds.get(item[2].get("kind"), 2)))
    hidden = shown_hosts = 0
    rows: list[dict[str, Any]] = []
    for start, end, span in spans:
        kind = span.get("kind") or "play"
        if kind == "host":
            if shown_hosts >= MAX_HOST_ROWS:
                hidden += 1
                continue
            shown_hosts += 1
        begin = (start - t0).total_seconds()
        length = (end - start).total_seconds()
        if kind == "host":
            label = "wait %s" % span.get("host")
        elif kind == "wave":
            label = "wave %s" % span.get("wave")
        else:
            label = str(span.get("label") or "play")
        if span.get("job"):
            label = "%s · %s" % (span["job"], label)
        status = str(span.get("status") or "ok")
        rows.append(
            {
                "label": _fit(label),
                "kind": kind,
                "status": status,
                "tone": _tone(status),
                "x": round(LABEL_W + begin * scale, 2),
                "w": round(max(length * scale, 2.0), 2),
                "y": len(rows) * ROW_H,
                "text": _seconds(length),
                "title": "%s: %s from +%s (%s)" % (label, _seconds(length), _seconds(begin), status),
            }
        )
    step = _tick_step(total)
    ticks = []
    value = 0.0
    while value <= total + 1e-9:
        ticks.append({"x": round(LABEL_W + value * scale, 2), "label": _seconds(value) if value else "0"})
        value += step
    height = len(rows) * ROW_H
    return {
        "rows": rows,
        "ticks": ticks,
        "height": height + 22,
        "axis_y": height + 4,
        "width": CHART_W,
        "hidden": hidden,
        "total": _seconds(total),
    }


def _logon_chart(report):
    """How long each logon server took to converge (or what it is instead)."""
    servers = report.get("logon_servers") or []
    timed = [e for e in servers if e.get("elapsed") is not None]
    if not timed:
        return None
    longest = max(float(e["elapsed"]) for e in timed) or 1.0
    rows: list[dict[str, Any]] = []
    for entry in sorted(timed, key=lambda e: -float(e["elapsed"]))[:MAX_HOST_ROWS]:
        elapsed = float(entry["elapsed"])
        rows.append(
            {
                "host": entry["host"],
                "label": _fit(entry["host"]),
                "status": entry["status"],
                "tone": _tone(entry["status"]),
                "y": len(rows) * ROW_H,
                "x": LABEL_W,
                "w": round(max(BAR_W * elapsed / longest, 2.0), 2),
                "text": "%s %s" % (_seconds(elapsed), entry["status"].replace("_", " ")),
            }
        )
    return {
        "rows": rows,
        "height": len(rows) * ROW_H + 4,
        "width": CHART_W,
        "hidden": max(0, len(timed) - MAX_HOST_ROWS),
        "untimed": [e["host"] + " " + e["status"].replace("_", " ") for e in servers if e.get("elapsed") is None],
    }


def _client_rows(report):
    rank = dict((status, index) for index, status in enumerate(CLIENT_ORDER))
    rows = []
    ordered = sorted(enumerate(report.get("clients") or []), key=lambda item: (rank.get(item[1]["status"], 9), item[0]))
    for _index, entry in ordered:
        short, full, folded = _message(entry.get("msg"))
        restart = "reboot" if entry.get("reboot_required") else "pending" if entry.get("pending_restart") else ""
        if restart and report.get("check_mode"):
            restart = "would " + ("reboot" if restart == "reboot" else "defer")
        restart = restart_text(entry) or restart
        search = " ".join(
            str(part)
            for part in (entry["host"], entry["status"], entry.get("detail"), entry.get("logon_server"), full)
            if part
        ).lower()
        rows.append(
            {
                "host": entry["host"],
                "wave": entry.get("wave"),
                "status": entry["status"],
                "word": STATUS_WORDS.get(entry["status"], entry["status"]),
                "detail": entry.get("detail"),
                "files_changed": entry.get("files_changed"),
                "restart": restart,
                "verify": verify_text(entry),
                "logon_server": entry.get("logon_server"),
                "short": short,
                "full": full,
                "folded": folded,
                "search": search,
            }
        )
    return rows


def _smsrun32(state):
    """The SMSRUN32 cell of a compliance row: hung or not, how many."""
    if not isinstance(state, dict) or not state.get("known", True):
        return "unknown"
    count = int(state.get("count") or 0)
    if not count:
        return "not running"
    return "%s (%d)" % ("HUNG" if state.get("hung") else "running", count)


def _awx_header(report):
    awx = report.get("awx") or {}
    pairs = []
    for key, label in (
        ("workflow_job_id", "AWX workflow job"),
        ("workflow_job_name", "workflow"),
        ("job_id", "AWX job"),
        ("job_template_name", "job template"),
        ("user_name", "launched by"),
        ("schedule_name", "schedule"),
        ("launch_type", "launch"),
        ("inventory_name", "inventory"),
        ("execution_node", "execution node"),
        ("project_revision", "project revision"),
    ):
        if awx.get(key) not in (None, ""):
            pairs.append((label, awx[key]))
    return pairs


def view(report):
    """What the page shows, computed from the report model alone."""
    kind = run_kind(report)
    check = bool(report.get("check_mode"))
    banners = []
    if check:
        banners.append(("check", "CHECK MODE: nothing was changed. Every status says what the run would do."))
    if report.get("limit"):
        banners.append(
            ("limit", "LIMITED to %s (--limit): hosts outside it were not part of this run." % report["limit"])
        )
    if kind == "rollback":
        banners.append(
            ("rollback", "ROLLBACK: this run puts the original files back (site server, logon servers, clients).")
        )
    clients = report.get("clients") or []
    counts = dict((status, len(hosts_with(clients, status))) for status in CLIENT_STATUSES)
    site_rows = []
    for site in report.get("site_servers") or []:
        short, full, folded = _message(site.get("msg"))
        site_rows.append(
            {
                "host": site["host"],
                "status": site["status"],
                "action": site.get("action"),
                "files_changed": site.get("files_changed"),
                "bumped": (site.get("system_map") or {}).get("bumped"),
                "short": short,
                "full": full,
                "folded": folded,
            }
        )
    site_files = [
        {
            "host": s["host"],
            "platform": f.get("platform"),
            "name": f.get("name"),
            "changed": f.get("changed"),
            "before": f.get("before_sha256"),
            "after": f.get("after_sha256"),
        }
        for s in report.get("site_servers") or []
        for f in s.get("files") or []
        if isinstance(f, dict)
    ]
    logon_rows = []
    for entry in report.get("logon_servers") or []:
        short, full, folded = _message(entry.get("msg"))
        logon_rows.append(
            {
                "host": entry["host"],
                "status": entry["status"],
                "elapsed": None if entry.get("elapsed") is None else _seconds(entry["elapsed"]),
                "missing": ", ".join(entry.get("missing") or []),
                "short": short,
                "full": full,
                "folded": folded,
            }
        )
    compliance_rows = []
    for entry in sorted(report.get("compliance") or [], key=lambda e: e["host"]):
        short, full, folded = _message(entry.get("error"))
        compliance_rows.append(
            {
                "host": entry["host"],
                "status": "compliant" if entry["compliant"] else "not_compliant",
                "smsrun32": _smsrun32(entry.get("smsrun32")),
                "setup_phase": entry.get("setup_phase"),
                "copy_list_version": entry.get("copy_list_version"),
                "logon_server": entry.get("logon_server"),
                "short": short,
                "full": full,
                "folded": folded,
            }
        )
    plan = report.get("plan")
    platforms = ""
    if plan:
        platforms = "; ".join(
            "%s: %s" % (name, ", ".join(str(f) for f in files))
            for name, files in sorted((plan.get("platforms") or {}).items())
        )
    kb = (report.get("hotfix") or {}).get("kb") or "hotfix"
    return {
        "title": "SMS rollout %s: %s" % (kb, report.get("playbook") or ""),
        "kind": kind,
        "check": check,
        "banners": banners,
        "outcome": outcome(report),
        "next_step": report.get("next_step") or None,
        "awx": _awx_header(report),
        "duration": _seconds(report.get("duration") or 0),
        "counts": counts,
        "client_total": len(clients),
        "waves": _wave_chart(report) if clients else None,
        "timeline": _timeline(report),
        "logon_chart": _logon_chart(report),
        "site_rows": site_rows,
        "site_files": site_files,
        "logon_rows": logon_rows,
        "client_rows": _client_rows(report),
        "filters": [(status, STATUS_WORDS[status], counts[status]) for status in CLIENT_ORDER if counts[status]],
        "compliance_rows": compliance_rows,
        "platforms": platforms,
        "lock_held": lock_still_held(report),
        "merged_from": report.get("merged_from") or [],
        "text_x": LABEL_W + BAR_W + 8,
    }


@functools.lru_cache(maxsize=1)
def _environment():
    # compiled once per process: the callback renders once, a merge or a test many times
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def render_html(report):
    """The report as one self-contained HTML page."""
    return _environment().get_template("report.html.j2").render(r=report, v=view(report))
