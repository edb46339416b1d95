# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""junit.xml for CI dashboards: one <testsuite> per tier, one <testcase> per host.

Built with ElementTree from the report model alone (docs/REPORTS.md says
which statuses are failures and which are skips).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

SITE_FAILING, SITE_SKIPPING = ("failed", "unreachable"), ("not_reached",)
LOGON_FAILING, LOGON_SKIPPING = ("failed", "lagging", "unreachable"), ("not_reached",)
CLIENT_FAILING, CLIENT_SKIPPING = ("failed", "unreachable"), ("skipped", "deferred", "not_reached")


def _case(suite, classname, name, status, msg, elapsed, failing, skipping):
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="%.3f" % float(elapsed or 0))
    if status in failing:
        failure = ET.SubElement(case, "failure", message=msg or status, type=status)
        failure.text = msg or status
    elif status in skipping:
        ET.SubElement(case, "skipped", message=(msg or status.replace("_", " ")))
    ET.SubElement(case, "system-out").text = "status: %s" % status
    return case


def _groups(report):
    """(suite name, class name, [(host, status, msg, elapsed)], failing, skipping) per suite."""
    groups = [
        (
            "site server",
            "sms_rollout.site",
            [(e["host"], e["status"], e["msg"], None) for e in report["site_servers"]],
            SITE_FAILING,
            SITE_SKIPPING,
        ),
        (
            "logon servers",
            "sms_rollout.logon",
            [
                (
                    e["host"],
                    e["status"],
                    e["msg"] or (("missing: " + ", ".join(e["missing"])) if e["missing"] else None),
                    e["elapsed"],
                )
                for e in report["logon_servers"]
            ],
            LOGON_FAILING,
            LOGON_SKIPPING,
        ),
        (
            "clients",
            "sms_rollout.client",
            [(e["host"], e["status"], e["msg"] or e["detail"], None) for e in report["clients"]],
            CLIENT_FAILING,
            CLIENT_SKIPPING,
        ),
    ]
    if report.get("compliance"):
        groups.append(
            (
                "compliance",
                "sms_rollout.compliance",
                [
                    (
                        e["host"],
                        "compliant" if e["compliant"] else "not_compliant",
                        e.get("error") or ("setup phase %s" % e.get("setup_phase")),
                        None,
                    )
                    for e in report["compliance"]
                ],
                ("not_compliant",),
                (),
            )
        )
    if report.get("failures"):
        groups.insert(
            0,
            (
                "run",
                "sms_rollout.run",
                [(f["host"], "failed", f["msg"], None) for f in report["failures"]],
                ("failed",),
                (),
            ),
        )
    return groups


def render_junit(report):
    """The report as JUnit XML text."""
    root = ET.Element("testsuites", name="sms_rollout %s" % ((report.get("hotfix") or {}).get("kb") or ""))
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for label, classname, cases, failing, skipping in _groups(report):
        if not cases:
            continue
        failures = sum(1 for c in cases if c[1] in failing)
        skipped = sum(1 for c in cases if c[1] in skipping)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=label,
            tests=str(len(cases)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            timestamp=report.get("started") or "",
        )
        for host, status, msg, elapsed in cases:
            _case(suite, classname, host, status, msg, elapsed, failing, skipping)
        total["tests"] += len(cases)
        total["failures"] += failures
        total["skipped"] += skipped
    for key, value in total.items():
        root.set(key, str(value))
    root.set("errors", "0")
    root.set("time", "%.3f" % float(report.get("duration") or 0))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
