"""The report model and each renderer alone, on models built in the test.

The model (plugin_utils/_sms_report_model.py) is fed the way the callback feeds
it, with plain values and a clock the test sets; the renderers (JSON, JUnit,
HTML, console) are then checked against what the model says: counts, order,
escaping, the picture's geometry, the closing command. merge() and the
`bin/sms-report` tool are checked on reports written by the renderers.
"""

import datetime
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from sms_html import parse
from sms_testlib import REPO

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_files as files
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_html as html_renderer
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_model as model
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_console import (
    next_step,
    summary_lines,
    wave_progress,
)
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_json import render_json
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_junit import render_junit

SCHEMA = os.path.join(REPO, "docs", "report.schema.json")
TOOL = os.path.join(REPO, "bin", "sms-report")
T0 = datetime.datetime(2026, 11, 24, 22, 15, 0, tzinfo=datetime.timezone.utc)
SERVERS = ["smssite", "logon01", "logon02"]
LONG_MSG = (
    "client04: SMS.INI not found at /lab/hosts/client04/SMS.INI; check sms_drive_root and that the "
    "client's first local drive is mounted there. Nothing was changed on this client.\n"
    "details: [Errno 2] No such file or directory"
)


def at(seconds):
    return model.iso_ms(T0 + datetime.timedelta(seconds=seconds))


def validate(report):
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(render_json(report)))


def site_files():
    return [
        {
            "platform": "x86",
            "name": name,
            "path": "/site/X86.bin/" + name,
            "before_sha256": "a" * 64,
            "after_sha256": "b" * 64,
            "backup": "/b/" + name,
            "changed": True,
        }
        for name in ("Smsrun32.exe", "Smssrv32.exe")
    ]


def rollout_model(
    clients=12,
    serial=(1, "10%", "50%", "100%"),
    failing=("client04", "client06"),
    unreachable=("client07",),
    deferred=("client05",),
    skipped=(),
    stop_after=3,
    check=False,
    rollback=False,
    holder="op@ctl",
    awx=None,
    t_start=0.0,
    playbook="rollout.yml",
    unlock=False,
):
    """A RunModel fed like the callback feeds it: a rollout whose wave 3 fails."""
    m = model.RunModel(playbook=playbook, started=T0 + datetime.timedelta(seconds=t_start))
    m.check_mode = check
    m.awx = dict(awx or {})
    t = t_start
    m.open_span("Plan | Check the window, verify the hotfix, show the plan", at(t))
    m.record(
        "sms_hotfix_manifest",
        "localhost",
        {
            "kb": "Q216552",
            "payload_verified": True,
            "manifest": {
                "kb": "Q216552",
                "title": "SMSRUN hangs at 90% CPU <while> IE setup & more",
                "platforms": {"x86": {"files": [{"name": "Smsrun32.exe"}, {"name": "Smssrv32.exe"}]}},
            },
        },
        at=at(t + 1),
    )
    m.add_targets("site", ["smssite"])
    m.add_targets("logon", SERVERS)
    m.open_span("Site server | Take the rollout lock", at(t + 2))
    taken = {
        "changed": True,
        "status": "taken_over",
        "state": "acquired",
        "lock": {"holder": holder, "started": model.iso(T0)},
    }
    m.record("sms_rollout_lock", "smssite", taken, task_state="acquired", tiers={"site"}, at=at(t + 2.5))
    m.open_span("Logon servers | Record the copy-list baseline", at(t + 3))
    for server in SERVERS:
        m.record(
            "sms_copy_list_baseline",
            server,
            {"changed": True, "recorded": True, "converged": False, "status": "recorded", "state": "present"},
            tiers={"logon"},
            at=at(t + 3.5),
        )
    m.open_span("Site server | Stage", at(t + 4))
    stage = {
        "changed": True,
        "state": "rolled_back" if rollback else "staged",
        "files": site_files(),
        "system_map": {"path": "/site/System.map", "bumped": True, "mtime": model.iso(T0)},
        "msg": "ok",
    }
    m.record("sms_hotfix_stage", "smssite", stage, tiers={"site"}, at=at(t + 6))
    m.open_span("Logon servers | Wait", at(t + 7))
    for index, server in enumerate(SERVERS):
        m.host_task_started("logon", server, at(t + 7.1))
        m.record(
            "sms_logon_wait",
            server,
            {
                "changed": False,
                "converged": True,
                "elapsed": 2.0 + index,
                "missing": [],
                "files": [],
                "copy_list": {"baseline": 7, "current": 8},
                "status": "converged",
                "state": "converged",
            },
            tiers={"logon"},
            at=at(t + 9.1 + index),
        )
    hosts = ["client%02d" % number for number in range(1, clients + 1)]
    m.add_targets("client", hosts)
    waves = m.add_client_play("Clients | Upgrade.bat equivalent, in waves", hosts, list(serial))
    t += 13
    first = 0
    for wave, size in enumerate(waves, start=1):
        if stop_after and wave > stop_after:
            break
        m.open_span("Clients | Upgrade.bat equivalent, in waves", at(t), wave=wave)
        for host in hosts[first : first + size]:
            t += 0.5
            if host in failing:
                m.record(
                    "sms_client_upgrade",
                    host,
                    {"msg": LONG_MSG.replace("client04", host)},
                    failed=True,
                    wave=wave,
                    tiers={"client"},
                    at=at(t),
                )
            elif host in unreachable:
                m.record_unreachable(
                    host, "Failed to connect to the host via ssh: Connection refused", "client", wave=wave, at=at(t)
                )
            elif host in deferred:
                m.record(
                    "sms_client_upgrade",
                    host,
                    {"status": "deferred", "pending_restart": True, "files": [], "logon_server": "LOGON01"},
                    wave=wave,
                    tiers={"client"},
                    at=at(t),
                )
            elif host in skipped:
                m.record_skipped(
                    "sms_client_upgrade",
                    host,
                    {"status": "skipped", "skipped": True, "msg": "logon server LOGON02 has not converged"},
                    wave=wave,
                    at=at(t),
                )
            else:
                m.record(
                    "sms_client_upgrade",
                    host,
                    {
                        "changed": True,
                        "status": "rolled_back" if rollback else "upgraded",
                        "files": [{"name": "Smsrun32.exe", "changed": True}, {"name": "Smssrv32.exe", "changed": True}],
                        "reboot_required": True,
                        "logon_server": "LOGON01",
                    },
                    wave=wave,
                    tiers={"client"},
                    at=at(t),
                )
        first += size
    if unlock:
        m.open_span("Site server | Release the rollout lock", at(t + 0.5))
        m.record(
            "sms_rollout_lock",
            "smssite",
            {"changed": True, "status": "broken", "state": "released"},
            tiers=set(),
            at=at(t + 1),
        )
    stats = {}
    for host in ["localhost", "smssite"] + SERVERS[1:] + hosts[:first]:
        stats[host] = {
            "ok": 1,
            "changed": 0,
            "failures": int(host in failing),
            "unreachable": int(host in unreachable),
            "skipped": 0,
            "rescued": 0,
            "ignored": 0,
        }
    return m.to_report(stats=stats, ended=T0 + datetime.timedelta(seconds=t + 1))


# ---- the model --------------------------------------------------------------


def test_the_model_is_the_report_json_and_follows_the_schema():
    report = rollout_model()
    validate(report)
    status = {c["host"]: (c["status"], c["wave"]) for c in report["clients"]}
    assert status["client01"] == ("done", 1) and status["client02"] == ("done", 2)
    assert [status["client%02d" % n][0] for n in range(3, 9)] == [
        "done",
        "failed",
        "deferred",
        "failed",
        "unreachable",
        "done",
    ]
    assert all(status["client%02d" % n] == ("not_reached", None) for n in range(9, 13))
    assert report["waves"][2] == {
        "wave": 3,
        "planned": 6,
        "done": 2,
        "failed": 2,
        "skipped": 0,
        "deferred": 1,
        "unreachable": 1,
        "not_reached": 0,
    }
    assert report["totals"]["clients"]["not_reached"] == 4 and report["ok"] is False
    assert [(e["host"], e["status"], e["elapsed"]) for e in report["logon_servers"]] == [
        ("smssite", "converged", 2.0),
        ("logon01", "converged", 3.0),
        ("logon02", "converged", 4.0),
    ]
    # the timeline: each play, each logon server's wait, each wave, from the model's own clock
    spans = [(s["kind"], s["label"] if s["kind"] != "wave" else s["wave"], s["status"]) for s in report["timeline"]]
    assert spans[:5] == [
        ("play", "plan", "ok"),
        ("play", "lock", "ok"),
        ("play", "baseline", "ok"),
        ("play", "stage", "ok"),
        ("play", "logon wait", "ok"),
    ]
    assert [s for s in spans if s[0] == "host"] == [
        ("host", "smssite", "converged"),
        ("host", "logon01", "converged"),
        ("host", "logon02", "converged"),
    ]
    assert [s for s in spans if s[0] == "wave"] == [("wave", 1, "ok"), ("wave", 2, "ok"), ("wave", 3, "failed")]
    wait = [s for s in report["timeline"] if s["kind"] == "host" and s["host"] == "logon02"][0]
    assert (wait["start"], wait["end"]) == (at(7.1), at(11.1))
    assert all(s["end"] for s in report["timeline"])
    assert report["clients"][0]["at"] == at(13.5)


def test_json_renderer_writes_the_model_as_it_is():
    report = rollout_model()
    assert json.loads(render_json(report)) == json.loads(json.dumps(report))
    assert render_json(report).endswith("}\n")


def test_junit_renderer_counts_failures_and_skips_per_tier():
    report = rollout_model()
    root = ET.fromstring(render_junit(report).split("\n", 1)[1])
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert list(suites) == ["site server", "logon servers", "clients"]
    clients = suites["clients"]
    assert (clients.get("tests"), clients.get("failures"), clients.get("skipped")) == ("12", "3", "5")
    failed = {case.get("name"): case.find("failure") for case in clients.findall("testcase")}
    assert sorted(name for name, failure in failed.items() if failure is not None) == [
        "client04",
        "client06",
        "client07",
    ]
    assert failed["client04"].get("message").startswith("client04: SMS.INI not found")
    assert root.get("tests") == str(1 + 3 + 12) and root.get("failures") == "3"
    times = {case.get("name"): case.get("time") for case in suites["logon servers"].findall("testcase")}
    assert times == {"smssite": "2.000", "logon01": "3.000", "logon02": "4.000"}


# ---- the HTML page ----------------------------------------------------------


def page_of(report):
    text = html_renderer.render_html(report)
    return text, parse(text)


def test_html_puts_the_outcome_and_the_picture_first():
    report = rollout_model()
    text, dom = page_of(report)
    outcome = dom.by_id("outcome")
    assert outcome.attrs["data-level"] == "red" and "red" in outcome.classes()
    assert outcome.text.startswith("Stopped:")
    assert "2 clients failed, 1 client unreachable (wave 3)" in outcome.text
    assert "4 clients not reached" in outcome.text
    assert "the rollout lock is still held by op@ctl" in outcome.text
    # the outcome and the picture come before every table
    assert (
        text.index('id="outcome"')
        < text.index('id="wave-chart"')
        < text.index('id="timeline"')
        < text.index('id="logon-chart"')
        < text.index("<table")
    )

    # per wave a stacked bar; the waves that never ran are all "not reached"
    waves = dom.by_id("wave-chart").find_all("g", cls="wave")
    assert [w.attrs["data-wave"] for w in waves] == ["1", "2", "3", "4"]
    for row, group in zip(report["waves"], waves):
        for status in model.CLIENT_STATUSES:
            assert int(group.attrs["data-" + status.replace("_", "-")]) == row[status], (row, status)
        segments = group.find_all("rect", cls="seg")
        assert sum(int(s.attrs["data-count"]) for s in segments) == row["planned"]
        assert abs(sum(float(s.attrs["width"]) for s in segments) - html_renderer.BAR_W) < 0.1
    assert waves[3].attrs["data-not-reached"] == "4" and waves[3].attrs["data-planned"] == "4"
    assert waves[2].find("text", cls="count").text == "2 done, 2 failed, 1 deferred, 1 unreachable of 6"
    failed_segment = waves[2].find("rect", cls="s-failed")
    assert failed_segment.attrs["data-count"] == "2"

    # the timeline: plan, lock, baseline, stage, the wait and each server's wait, each wave
    spans = dom.by_id("timeline").find_all("g", cls="span")
    labels = [g.find("text", cls="label").text for g in spans]
    assert labels == [
        "plan",
        "lock",
        "baseline",
        "stage",
        "logon wait",
        "wait smssite",
        "wait logon01",
        "wait logon02",
        "wave 1",
        "wave 2",
        "wave 3",
    ]
    bars = [g.find("rect") for g in spans]
    assert all(float(b.attrs["x"]) >= html_renderer.LABEL_W for b in bars)
    assert (
        max(float(b.attrs["x"]) + float(b.attrs["width"]) for b in bars)
        <= html_renderer.LABEL_W + html_renderer.BAR_W + 2.01
    )
    assert [float(b.attrs["x"]) for b in bars] == sorted(float(b.attrs["x"]) for b in bars)
    assert "bar t-bad" in str(bars[-1].attrs["class"]) and spans[-1].attrs["data-status"] == "failed"

    # how long each logon server took, longest first
    servers = dom.by_id("logon-chart").find_all("g", cls="server")
    assert [(g.attrs["data-host"], g.find("text", cls="count").text) for g in servers] == [
        ("logon02", "4.0s converged"),
        ("logon01", "3.0s converged"),
        ("smssite", "2.0s converged"),
    ]


def test_html_client_table_lists_failed_and_unreachable_first_and_folds_long_messages():
    report = rollout_model()
    _text, dom = page_of(report)
    rows = dom.by_id("clients").find("tbody").find_all("tr")
    assert [r.attrs["data-status"] for r in rows][:3] == ["failed", "failed", "unreachable"]
    assert [r.find("td").text for r in rows][:3] == ["client04", "client06", "client07"]
    assert len(rows) == len(report["clients"])
    order = [r.attrs["data-status"] for r in rows]
    assert order.index("done") > order.index("not_reached") > order.index("deferred")
    # a long message is folded: a short summary, the whole text inside
    folded = rows[0].find("details", cls="msg")
    assert folded is not None and folded.find("summary").text.endswith("…")
    assert "No such file or directory" in folded.find("pre").text
    assert "client04" in rows[0].attrs["data-search"] and "sms.ini not found" in rows[0].attrs["data-search"]
    # the filter: status choices with their counts; hidden until the script shows it
    options = [(o.attrs["value"], o.text) for o in dom.by_id("status-filter").find_all("option")]
    assert options == [
        ("", "all (12)"),
        ("failed", "failed (2)"),
        ("unreachable", "unreachable (1)"),
        ("deferred", "deferred (1)"),
        ("not_reached", "not reached (4)"),
        ("done", "done (4)"),
    ]
    assert dom.by_id("client-filter").hidden and dom.by_id("client-search") is not None


def test_html_is_self_contained_and_escapes_what_hosts_say():
    report = rollout_model()
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    report["clients"][0]["msg"] = evil
    report["clients"][1]["host"] = 'c"><b>'
    report["failures"] = [{"host": "localhost", "msg": evil}]
    text, dom = page_of(report)
    assert evil not in text and 'c"><b>' not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert text.count("<script") == 1 and "<script>" in text  # the filter's own inline script only
    # nothing fetched: no element loads anything, the inline CSS imports nothing
    assert dom.find("img") is None and dom.find("link") is None
    for node in dom.iter():
        assert not ({"src", "href", "xlink:href"} & set(node.attrs)), (node.tag, node.attrs)
    style = dom.find("style").text.lower()
    assert "url(" not in style and "@import" not in style and "http" not in style
    assert "SMSRUN hangs at 90% CPU &lt;while&gt; IE setup &amp; more" in text


def test_html_says_check_mode_and_rollback_at_the_top():
    _text, dom = page_of(rollout_model(check=True))
    banner = dom.by_id("banner-check")
    assert banner is not None and "CHECK MODE: nothing was changed" in banner.text
    assert "check" in banner.classes() and dom.by_id("banner-rollback") is None
    assert "check-mode" in dom.find("body").classes()

    rollback = rollout_model(
        rollback=True, failing=(), unreachable=(), deferred=(), stop_after=None, playbook="rollback.yml", unlock=True
    )
    _text, dom = page_of(rollback)
    assert "ROLLBACK" in dom.by_id("banner-rollback").text and dom.by_id("banner-check") is None
    assert dom.by_id("outcome").attrs["data-level"] == "green"


def test_html_outcome_green_amber_and_no_clients():
    green = rollout_model(failing=(), unreachable=(), deferred=(), stop_after=None, unlock=True)
    assert green["ok"] is True and green["lock"]["released"] is True
    outcome = page_of(green)[1].by_id("outcome")
    assert outcome.attrs["data-level"] == "green"
    assert outcome.text == "Succeeded: 12/12 clients done; site server smssite staged; 3/3 logon servers converged"
    # the same run with its lock left held (it stopped before the unlock step) asks for attention
    held = page_of(rollout_model(failing=(), unreachable=(), deferred=(), stop_after=None))[1].by_id("outcome")
    assert held.attrs["data-level"] == "amber" and "the rollout lock is still held by op@ctl" in held.text
    amber = rollout_model(failing=(), unreachable=(), deferred=("client05",), skipped=("client06",), stop_after=None)
    outcome = page_of(amber)[1].by_id("outcome")
    assert outcome.attrs["data-level"] == "amber"
    assert "1 client skipped" in outcome.text and "1 client deferred (pending a restart)" in outcome.text
    # a plan-only run: no client section, no wave chart, still an outcome
    m = model.RunModel(playbook="plan.yml", started=T0)
    m.open_span("Plan", at(0))
    m.record("sms_hotfix_manifest", "localhost", {"kb": "Q216552", "manifest": {}}, at=at(1))
    report = m.to_report(
        stats={
            "localhost": {
                "ok": 1,
                "changed": 0,
                "failures": 0,
                "unreachable": 0,
                "skipped": 0,
                "rescued": 0,
                "ignored": 0,
            }
        },
        ended=T0,
    )
    validate(report)
    _text, dom = page_of(report)
    assert dom.by_id("wave-chart") is None and dom.by_id("clients") is None
    assert dom.by_id("outcome").attrs["data-level"] == "green"


def test_html_at_a_thousand_clients():
    hosts = ["client%02d" % n for n in range(1, 1001)]
    failing = set(hosts[100:130])
    unreachable = set(hosts[200:205])
    report = rollout_model(clients=1000, failing=failing, unreachable=unreachable, deferred=(), stop_after=None)
    validate(report)
    text, dom = page_of(report)
    rows = dom.by_id("clients").find("tbody").find_all("tr")
    assert len(rows) == 1000
    assert [r.attrs["data-status"] for r in rows[:35]] == ["failed"] * 30 + ["unreachable"] * 5
    assert len(dom.by_id("wave-chart").find_all("g", cls="wave")) == len(report["waves"]) == 4
    assert text.count("<script") == 1
    # a page an operator can still open from a share: well under 2 MB
    assert len(text.encode("utf-8")) < 2 * 1024 * 1024


# ---- the console ------------------------------------------------------------


def test_console_names_the_clients_that_need_a_look():
    report = rollout_model()
    lines = summary_lines(report, "reports/20261124T221500Z-rollout")
    assert lines[0] == "SMS rollout Q216552 — report: reports/20261124T221500Z-rollout"
    assert "              failed (2): client04, client06" in lines
    assert "              unreachable (1): client07" in lines
    assert "              not reached (4): client09, client10, client11, client12" in lines
    many = rollout_model(
        clients=60,
        serial=(10,),
        failing=["client%02d" % n for n in range(1, 26)],
        unreachable=(),
        deferred=(),
        stop_after=1,
    )
    lines = summary_lines(many, "reports/x")
    failed = [line for line in lines if line.strip().startswith("failed (")][0]
    assert failed.strip().startswith("failed (10): client01, client02")
    unreached = [line for line in lines if line.strip().startswith("not reached (")][0]
    assert unreached.strip() == (
        "not reached (50): %s and 30 more (all in reports/x/report.json)"
        % ", ".join("client%02d" % n for n in range(11, 31))
    )
    lines = summary_lines(many, "not written", written=False)
    assert any(line.endswith("and 30 more (see the recap above)") for line in lines)


INVOCATION = {
    "playbooks": ["rollout.yml"],
    "inventory": ["/work/x/inventories/prod/hosts.yml"],
    "limit": None,
    "extra_vars": [
        '{"sms_rollout_waves": [4, 4, 4], "ansible_become_password": "hunter2"}',
        "sms_rollout_force=true api_token=s3cret",
        "@vars/site.yml",
    ],
    "check": False,
    "diff": False,
    "cwd": "/work/x",
    "rollback_playbook": "/work/x/playbooks/rollback.yml",
    "rollout_playbook": "/work/x/rollout.yml",
}


def test_console_ends_with_the_command_that_goes_on_or_undoes():
    stopped = rollout_model()
    label, text = next_step(stopped, INVOCATION)
    assert label == "go on"
    assert text.startswith(
        "ansible-playbook rollout.yml -i inventories/prod/hosts.yml -e @vars/site.yml "
        "-e '{\"sms_rollout_force\": \"true\", \"sms_rollout_waves\": [4, 4, 4]}'"
    )
    assert "hunter2" not in text and "s3cret" not in text and "other extra vars" in text
    assert summary_lines(stopped, "reports/x", (label, text))[-1] == "go on         " + text

    done = rollout_model(failing=(), unreachable=(), deferred=(), stop_after=None)
    label, text = next_step(done, dict(INVOCATION, extra_vars=[]))
    assert (label, text) == ("undo", "ansible-playbook playbooks/rollback.yml -i inventories/prod/hosts.yml")

    rolled_back = rollout_model(
        rollback=True, failing=(), unreachable=(), deferred=(), stop_after=None, playbook="rollback.yml"
    )
    assert next_step(
        rolled_back, dict(INVOCATION, extra_vars=[], inventory=[], playbooks=["playbooks/rollback.yml"])
    ) == ("undo", "ansible-playbook rollout.yml")

    dry = rollout_model(check=True, failing=(), unreachable=(), deferred=(), stop_after=None)
    assert next_step(dry, dict(INVOCATION, extra_vars=[], inventory=[], check=True, diff=True)) == (
        "apply",
        "ansible-playbook rollout.yml",
    )

    awx = rollout_model(awx={"job_id": 123, "workflow_job_id": 45, "workflow_job_name": "SMS rollout"})
    assert next_step(awx, {}) == (
        "go on",
        "relaunch AWX workflow job 45 (SMS rollout): the same holder goes on where this run stopped",
    )


def test_wave_progress_lines_speak_like_the_logon_waiter():
    counts = {"done": 238, "failed": 2, "unreachable": 1, "skipped": 0, "deferred": 0, "not_reached": 0}
    assert (
        wave_progress(3, 4, counts, 500, 12.4)
        == "sms_client_upgrade: wave 3/4 running 12s: 238 done, 2 failed, 1 unreachable of 500"
    )
    assert (
        wave_progress(3, 4, counts, 500, 80.06, finished=True, check_mode=True)
        == "sms_client_upgrade: wave 3/4 finished after 80.1s: 238 would be done, 2 failed, 1 unreachable of 500"
    )


# ---- merge: the nodes and slices of one workflow -----------------------------


def slice_model(hosts, job, started, fail=(), workflow=45, template="clients"):
    """One AWX job of the clients node: its slice of the hosts, its own waves."""
    m = model.RunModel(playbook="clients.yml", started=T0 + datetime.timedelta(seconds=started))
    m.awx = {"job_id": job, "workflow_job_id": workflow, "job_template_name": template, "user_name": "alice"}
    m.add_targets("client", hosts)
    waves = m.add_client_play("Clients", hosts, [1, "100%"])
    first, t = 0, started
    for wave, size in enumerate(waves, start=1):
        m.open_span("Clients", at(t), wave=wave)
        for host in hosts[first : first + size]:
            t += 1
            if host in fail:
                m.record(
                    "sms_client_upgrade",
                    host,
                    {"msg": "%s failed" % host},
                    failed=True,
                    wave=wave,
                    tiers={"client"},
                    at=at(t),
                )
            else:
                m.record(
                    "sms_client_upgrade",
                    host,
                    {"status": "upgraded", "files": []},
                    wave=wave,
                    tiers={"client"},
                    at=at(t),
                )
        first += size
    stats = dict(
        (
            h,
            {
                "ok": 1,
                "changed": 1,
                "failures": int(h in fail),
                "unreachable": 0,
                "skipped": 0,
                "rescued": 0,
                "ignored": 0,
            },
        )
        for h in hosts
    )
    return m.to_report(stats=stats, ended=T0 + datetime.timedelta(seconds=t + 1))


def node_model(playbook, job, started, template, lock=None, unlock=False):
    m = model.RunModel(playbook=playbook, started=T0 + datetime.timedelta(seconds=started))
    m.awx = {"job_id": job, "workflow_job_id": 45, "job_template_name": template}
    m.open_span(template, at(started))
    if lock:
        taken = {
            "status": "acquired",
            "state": "acquired",
            "lock": {"holder": "awx workflow 9", "started": model.iso(T0)},
        }
        m.record("sms_rollout_lock", "smssite", taken, task_state="acquired", tiers={"site"}, at=at(started + 1))
    if unlock:
        m.record("sms_rollout_lock", "smssite", {"status": "released", "state": "released"}, at=at(started + 1))
    return m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=started + 2))


def test_merge_folds_nodes_slices_and_a_relaunch_into_one_report():
    clients = ["client%02d" % n for n in range(1, 9)]
    site = node_model("site.yml", 100, 0, "site", lock=True)
    # slice 1 and 2 of one sliced job run at the same time; slice 2 has a failure
    slice1 = slice_model(clients[0::2], 101, 10)
    slice2 = slice_model(clients[1::2], 102, 10, fail=("client04",))
    unlock = node_model("unlock.yml", 103, 40, "unlock", unlock=True)
    for report in (site, slice1, slice2, unlock):
        validate(report)
    merged = model.merge(unlock, slice2, site, slice1)
    validate(merged)
    entries = {c["host"]: c for c in merged["clients"]}
    assert sorted(entries) == clients
    assert sorted(h for h, c in entries.items() if c["status"] == "failed") == ["client04"]
    # the slices' waves counted together: wave 1 is each slice's canary
    waves = [(w["wave"], w["planned"], w["done"], w["failed"]) for w in merged["waves"]]
    assert waves == [(1, 2, 2, 0), (2, 6, 5, 1)]
    assert merged["ok"] is False and merged["totals"]["clients"]["hosts"] == 8
    assert merged["lock"]["released"] is True, "the unlock node released the site node's lock"
    assert merged["awx"] == {"workflow_job_id": 45}
    assert [s["job"] for s in merged["merged_from"]] == ["job 100", "job 101", "job 102", "job 103"]
    assert {s["job"] for s in merged["timeline"]} == {"job 100", "job 101", "job 102", "job 103"}

    # the failed node relaunched later: its results are newer and win
    relaunch = slice_model(clients[1::2], 201, 100, workflow=46)
    again = model.merge(site, slice1, slice2, unlock, relaunch)
    validate(again)
    entries = {c["host"]: c for c in again["clients"]}
    assert entries["client04"]["status"] == "done" and entries["client04"]["at"] == relaunch["clients"][1]["at"]
    assert again["ok"] is True, again["failures"]
    assert again["totals"]["clients"]["done"] == 8
    # slice 1's clients keep their first results; the relaunch's waves follow in time
    waves = [(w["wave"], w["planned"], w["done"]) for w in again["waves"]]
    assert waves == [(1, 2, 1), (2, 6, 3), (3, 1, 1), (4, 3, 3)]
    # every renderer takes a merged report
    text = html_renderer.render_html(again)
    assert "Merged from 5 reports" in text and ET.fromstring(render_junit(again).split("\n", 1)[1]) is not None


def test_a_host_never_reached_loses_to_any_result():
    clients = ["client01", "client02"]
    first = slice_model(clients, 1, 0)
    stopped = model.RunModel(playbook="clients.yml", started=T0 + datetime.timedelta(seconds=50))
    stopped.add_targets("client", clients)
    later = stopped.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=51))
    assert [c["status"] for c in later["clients"]] == ["not_reached", "not_reached"]
    merged = model.merge(first, later)
    assert [c["status"] for c in merged["clients"]] == ["done", "done"]


# ---- the report folder and the merge tool -----------------------------------


def test_folder_names_keep_awx_jobs_apart(tmp_path):
    parents, name = files.folder_name(T0, "clients.yml", {"job_id": 101, "workflow_job_id": 45})
    assert (parents, name) == (["awx-workflow-45"], "20261124T221500Z-clients-job-101")
    assert files.folder_name(T0, "rollout.yml") == ([], "20261124T221500Z-rollout")
    assert files.folder_name(T0, "a b/../x.yml", {"job_id": "7/../../etc"})[1] == "20261124T221500Z-x-job-7_.._.._etc"
    one = files.make_folder(str(tmp_path), T0, "clients.yml", {"job_id": 101, "workflow_job_id": 45})
    two = files.make_folder(str(tmp_path), T0, "clients.yml", {"job_id": 101, "workflow_job_id": 45})
    assert one == str(tmp_path / "awx-workflow-45" / "20261124T221500Z-clients-job-101")
    assert two == one + "-2" and os.path.isdir(two)


def test_write_report_is_all_or_nothing(tmp_path, monkeypatch):
    report = rollout_model()
    folder = str(tmp_path / "r")
    os.mkdir(folder)
    files.write_report(report, folder)
    assert sorted(os.listdir(folder)) == ["junit.xml", "report.html", "report.json"]
    with open(os.path.join(folder, "report.json")) as handle:
        assert json.load(handle)["report_dir"] == folder

    broken = str(tmp_path / "broken")
    os.mkdir(broken)

    def boom(_report):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(files, "RENDERERS", (("report.json", render_json), ("report.html", boom)))
    with pytest.raises(RuntimeError):
        files.write_report(report, broken)
    assert os.listdir(broken) == []


def sms_report(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def test_merge_tool_writes_one_report_for_a_workflow(tmp_path):
    clients = ["client%02d" % n for n in range(1, 7)]
    workflow = tmp_path / "reports" / "awx-workflow-45"
    for report in (
        slice_model(clients[0::2], 101, 10),
        slice_model(clients[1::2], 102, 10),
        node_model("site.yml", 100, 0, "site", lock=True),
    ):
        folder = files.make_folder(
            str(tmp_path / "reports"), model.parse_time(report["started_at"]), report["playbook"], report["awx"]
        )
        files.write_report(report, folder)
    out = workflow / "merged"
    result = sms_report("merge", "--out", str(out), str(workflow))
    # every client done, but the site node's lock was never released: the page's verdict, exit 1
    assert result.returncode == 1, result.stderr
    assert "Needs attention: the rollout lock is still held by awx workflow 9" in result.stdout
    assert sorted(os.listdir(str(out))) == ["junit.xml", "report.html", "report.json"]
    with open(str(out / "report.json")) as handle:
        merged = json.load(handle)
    validate(merged)
    assert len(merged["merged_from"]) == 3 and sorted(c["host"] for c in merged["clients"]) == clients
    assert merged["report_dir"] == str(out)
    assert "merged 3 reports: 6 clients (6 done)" in result.stdout
    # run again: the merged folder inside the workflow's folder is not an input
    again = sms_report("merge", "--out", str(out), str(workflow))
    assert again.returncode == 1, again.stderr
    with open(str(out / "report.json")) as handle:
        assert len(json.load(handle)["merged_from"]) == 3


def test_merge_tool_without_ansible_core_names_the_interpreter_to_use(tmp_path):
    # -S: no site-packages, so no ansible-core, as with a system python3 outside the virtualenv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-S", TOOL, "merge", "--out", str(tmp_path / "out"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot import ansible-core" in proc.stderr and "'.venv/bin/python bin/sms-report ...'" in proc.stderr
    assert os.listdir(str(tmp_path)) == []


def test_merge_tool_refuses_bad_input_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = tmp_path / "out"
    result = sms_report("merge", "--out", str(out), str(bad))
    assert result.returncode == 2
    assert "%s: not a readable report.json" % bad in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = sms_report("merge", "--out", str(out), str(empty))
    assert result.returncode == 2 and "no report.json in this folder" in result.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": 1, "hello": "world"}))
    result = sms_report("merge", "--out", str(out), str(other))
    assert result.returncode == 2 and "not an SMS rollout report" in result.stderr
    assert not out.exists()


def test_a_client_of_a_platform_the_rollout_leaves_out_is_skipped_for_that_reason():
    m = model.RunModel(playbook="clients.yml", started=T0)
    m.add_targets("client", ["client01", "client02"])
    m.record_skipped(
        "sms_client_upgrade",
        "client01",
        {
            "skipped": True,
            "false_condition": "sms_client_platforms | length == 0 or sms_client_platform in sms_client_platforms",
        },
        wave=1,
        at=at(1),
    )
    m.record_skipped(
        "sms_client_upgrade", "client02", {"skipped": True, "false_condition": "something_else"}, wave=1, at=at(1)
    )
    report = m.to_report(ended=T0)
    validate(report)
    entries = dict((e["host"], (e["status"], e["detail"])) for e in report["clients"])
    assert entries == {"client01": ("skipped", "platform"), "client02": ("skipped", "condition")}
    # merged with a later run that did not touch them: the platform skip stays, the other is not reached
    merged = model.merge(
        report,
        dict(
            report,
            started=report["ended"],
            clients=[dict(e, status="not_reached", detail="not_reached") for e in report["clients"]],
        ),
    )
    statuses = dict((e["host"], e["status"]) for e in merged["clients"])
    assert statuses == {"client01": "skipped", "client02": "not_reached"}


# ---- one verdict: the page, bin/sms-report merge and playbooks/report.yml ----


def test_merge_verdict_is_the_pages_and_the_workflow_reports(tmp_path):
    """12 clients, 8 done by the jobs, 4 in the inventory no job reached: every
    judge says not ok (issue 22 item 5: the merge tool said ok)."""
    clients = ["client%02d" % n for n in range(1, 13)]
    workflow = tmp_path / "reports" / "awx-workflow-45"
    for report in (
        node_model("site.yml", 100, 0, "site", lock=True),
        slice_model(clients[0:8], 101, 10),
        node_model("unlock.yml", 103, 40, "unlock", unlock=True),
    ):
        folder = files.make_folder(
            str(tmp_path / "reports"), model.parse_time(report["started_at"]), report["playbook"], report["awx"]
        )
        files.write_report(report, folder)
    # bin/sms-report merge on the job folders, the 4 unreached clients in a report of their own run
    # that never reached them
    unreached = slice_model([], 104, 50)
    unreached["clients"] = [model.client_entry(h, "not_reached", "not_reached", None) for h in clients[8:]]
    unreached["totals"] = model.totals_of(unreached)
    folder = files.make_folder(
        str(tmp_path / "reports"), model.parse_time(unreached["started_at"]), unreached["playbook"], unreached["awx"]
    )
    files.write_report(unreached, folder)
    out = tmp_path / "merged"
    result = sms_report("merge", "--out", str(out), str(workflow))
    assert "12 clients (8 done, 4 not reached)" in result.stdout, result.stdout
    assert result.returncode == 1 and "; ok" not in result.stdout, result.stdout
    assert "Needs attention: 4 clients not reached" in result.stdout
    with open(str(out / "report.json")) as handle:
        merged = json.load(handle)
    assert merged["ok"] is False
    page = parse((out / "report.html").read_text())
    assert page.by_id("outcome").attrs["data-level"] == "amber"
    # awx/sms_workflow_report.py (what playbooks/report.yml runs) on the same folder
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "awx", "sms_workflow_report.py"),
            "--workflow-dir",
            str(workflow),
            "--out",
            str(tmp_path / "wf"),
        ],
        input=json.dumps({"clients": clients}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and "NOT every client done" in proc.stdout, proc.stdout + proc.stderr
    assert model.verdict(merged)["ok"] is False and model.verdict(merged)["word"] == "Needs attention"


# ---- the next step: what the operator should actually type ----

RUN = {
    "playbooks": ["rollout.yml"],
    "inventory": ["/work/x/inventories/lab/hosts.yml"],
    "limit": None,
    "extra_vars": [],
    "check": False,
    "diff": False,
    "cwd": "/work/x",
    "program": "/work/x/.venv/bin/ansible-playbook",
    "rollback_playbook": "/work/x/playbooks/rollback.yml",
    "rollout_playbook": "/work/x/rollout.yml",
}


def test_next_step_names_the_ansible_playbook_that_ran_and_repeats_no_secret():
    done = rollout_model(failing=(), unreachable=(), deferred=(), stop_after=None)
    invocation = dict(
        RUN,
        extra_vars=[
            '{"sms_smb_password": "hunter2", "sms_rollout_waves": [1, 2]}',
            "sms_smb_user=op SMS_API_TOKEN=t0k3n sms_client_secret=xyz",
        ],
    )
    label, text = next_step(done, invocation)
    assert label == "undo"
    assert text.startswith(".venv/bin/ansible-playbook playbooks/rollback.yml -i inventories/lab/hosts.yml -e "), text
    assert "hunter2" not in text and "t0k3n" not in text and "xyz" not in text and "sms_smb_password" not in text
    assert '"sms_smb_user": "op"' in text and '"sms_rollout_waves": [1, 2]' in text
    assert text.endswith("(plus the other extra vars of this run, not repeated here)")
    # outside the working folder: the full path; no path known: the bare name
    assert next_step(done, dict(RUN, cwd="/elsewhere"))[1].startswith(
        "/work/x/.venv/bin/ansible-playbook /work/x/playbooks/rollback.yml -i /work/x/inventories/lab/hosts.yml"
    )
    assert next_step(done, dict(RUN, cwd="/work/x/.venv/bin"))[1].startswith("./ansible-playbook ")


def test_a_successful_check_says_how_to_apply_even_with_servers_that_would_wait():
    dry = rollout_model(check=True, failing=(), unreachable=(), deferred=(), stop_after=None)
    # a dry run stages nothing: no logon server converges in it
    m = model.RunModel(playbook="rollout.yml", started=T0)
    m.check_mode = True
    m.open_span("Logon servers | Wait", at(1))
    m.record(
        "sms_logon_wait",
        "logon01",
        {
            "changed": False,
            "converged": False,
            "missing": ["X86.bin/Smsrun32.exe"],
            "status": "lagging",
            "state": "converged",
        },
        tiers={"logon"},
        at=at(2),
    )
    waiting = m.to_report(
        stats={
            "logon01": {
                "ok": 1,
                "changed": 0,
                "failures": 0,
                "unreachable": 0,
                "skipped": 0,
                "rescued": 0,
                "ignored": 0,
            }
        },
        ended=T0 + datetime.timedelta(seconds=3),
    )
    assert waiting["logon_servers"][0]["status"] == "lagging" and waiting["ok"] is True
    assert waiting["timeline"][0]["status"] == "ok"
    for report in (dry, waiting):
        assert next_step(report, dict(RUN, check=True, diff=True)) == (
            "apply",
            ".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml",
        )
    lines = summary_lines(dry, "reports/x")
    assert any(
        line.strip().startswith("would need a reboot (client service would change): client01") for line in lines
    ), lines
    assert not any("reboot required" in line for line in lines)


def test_next_step_never_repeats_a_refused_value_nor_another_playbooks_setting():
    refused = model.RunModel(playbook="rollout.yml", started=T0)
    refused.add_targets("site", ["smssite"])
    refused.tier_failure(
        "localhost",
        "the inventory has no group 'clientz' for the clients (sms_client_group); "
        "name the right group with sms_client_group=<group>",
    )
    report = refused.to_report(stats={}, ended=T0)
    invocation = dict(RUN, extra_vars=['{"sms_client_group": "clientz", "sms_rollout_force": true}'])
    label, text = next_step(report, invocation)
    assert label == "go on" and "clientz" not in text, text
    assert '-e \'{"sms_rollout_force": true}\'' in text and "(with the right sms_client_group" in text
    # compliance with -e sms_compliance_fail=true: the rollout, without the compliance job's own setting
    comp = model.RunModel(playbook="compliance.yml", started=T0)
    comp.record("sms_client_facts", "client01", {"compliance": {"compliant": False, "kb": "Q216552"}}, at=at(1))
    label, text = next_step(
        comp.to_report(stats={}, ended=T0),
        dict(RUN, playbooks=["playbooks/compliance.yml"], extra_vars=["sms_compliance_fail=true"]),
    )
    assert (label, text) == ("go on", ".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml")
    # a failed report.yml: the rollout again, not report.yml again
    rep = model.RunModel(playbook="report.yml", started=T0)
    rep.tier_failure("localhost", "Report | Fail while clients are not done: ...")
    label, text = next_step(
        rep.to_report(stats={}, ended=T0),
        dict(RUN, playbooks=["playbooks/report.yml"], extra_vars=['{"sms_report_workflow_dir": "reports/w"}']),
    )
    assert label == "go on" and "report.yml" not in text and "sms_report_workflow_dir" not in text, text
    assert text.startswith(".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml"), text
    assert next_step(rep.to_report(stats={}, ended=T0), {})[1] != ""


def test_a_limit_refused_for_leaving_out_the_site_server_goes_on_with_the_limit_that_keeps_it():
    refused = model.RunModel(playbook="rollout.yml", started=T0)
    refused.tier_failure(
        "client05",
        "the rollout does not start, and nothing was changed: --limit client05 leaves "
        "out the site server (smssite), which this playbook must go through before any "
        "client: ... Keep it in the limit (what is already done there reports no "
        "change): .venv/bin/ansible-playbook rollout.yml --limit site_server,client05",
    )
    report = refused.to_report(stats={}, ended=T0)
    label, text = next_step(report, dict(RUN, limit="client05"))
    assert (label, text) == (
        "go on",
        ".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml --limit site_server,client05",
    )


def test_a_wave_over_the_threshold_says_the_arithmetic_and_the_next_step():
    # 12 clients in [1, 1, 6, 4]; 2 of wave 3's 6 failed: 33 % > 20 %, wave 4 never starts
    m = model.RunModel(playbook="rollout.yml", started=T0)
    m.max_fail_percentage = 20
    hosts = ["client%02d" % n for n in range(1, 13)]
    m.add_targets("client", hosts)
    m.add_client_play("Clients", hosts, [1, "10%", "50%", "100%"])
    for number, wave in ((1, [hosts[0]]), (2, [hosts[1]]), (3, hosts[2:8])):
        m.open_span("Clients", at(number), wave=number)
        for host in wave:
            m.record(
                "sms_client_upgrade",
                host,
                {"msg": "no SMS.INI"} if host in ("client04", "client06") else {"status": "upgraded", "files": []},
                failed=host in ("client04", "client06"),
                wave=number,
                tiers={"client"},
                at=at(number + 0.5),
            )
    report = m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=9))
    validate(report)
    assert report["stop"]["hosts"] == ["client04", "client06"]
    lines = summary_lines(report, "reports/x", next_step(report, RUN))
    assert (
        "stopped       wave 3: 2 of 6 failed or unreachable = 33 % > 20 % (sms_rollout_max_fail_percentage): "
        "wave 4 of 4 not started, 4 clients not reached"
    ) in lines
    assert lines[-1] == (
        "go on         fix client04, client06 (why: above and in report.html), then run again: "
        ".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml  (a re-run goes on "
        "where this one stopped; what is done reports no change)"
    )
    report["next_step"] = {"label": "go on", "text": lines[-1][14:]}
    dom = parse(html_renderer.render_html(report))
    assert "wave 3: 2 of 6 failed or unreachable = 33 % > 20 %" in dom.by_id("outcome").text
    assert dom.by_id("next-step").text.startswith("go on: fix client04, client06")
    # 1 of 6 is 17 %: within 20 %, no stop (README's old sample said otherwise)
    assert model.percent(100.0 / 6, 20) == "17 %" and model.percent(20.4, 20) == "20.4 %"


def test_timeline_shows_only_plays_that_ran():
    m = model.RunModel(playbook="rollout.yml", started=T0)
    m.open_span("Clients | Upgrade", at(1), wave=1)
    m.record("sms_client_upgrade", "client01", {"status": "upgraded", "files": []}, wave=1, tiers={"client"}, at=at(2))
    m.open_span("Site server | Restore the original files", at(3))  # no host: skipped by Ansible
    m.open_span("Clients | Restore the original client files", at(4), wave=1)  # a second "wave 1", no host
    m.open_span("Outcome | Say how it ended", at(5))
    m.record_skipped("ansible.builtin.debug", "localhost", {"skip_reason": "Conditional result was False"}, at=at(5))
    m.open_span("Site server | Release the rollout lock", at(6))
    m.record("sms_rollout_lock", "smssite", {"changed": True, "status": "broken", "state": "released"}, at=at(6.5))
    report = m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=7))
    assert [(s["kind"], s["label"], s["wave"]) for s in report["timeline"]] == [
        ("wave", "Clients | Upgrade", 1),
        ("play", "unlock", None),
    ]


def test_a_plan_alone_reports_as_a_plan():
    m = model.RunModel(playbook="plan.yml", started=T0)
    m.open_span("Plan | Check", at(1))
    m.record(
        "sms_hotfix_manifest",
        "localhost",
        {"kb": "Q216552", "payload_verified": True, "manifest": {"kb": "Q216552", "platforms": {}}},
        at=at(1),
    )
    report = m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=2))
    assert model.run_kind(report) == "plan" and report["ok"] is True
    step = next_step(report, dict(RUN, playbooks=["playbooks/plan.yml"]))
    assert step == (
        "apply",
        ".venv/bin/ansible-playbook rollout.yml -i inventories/lab/hosts.yml  (the rollout this plan checked)",
    )
    # as the AWX workflow's plan node: the next nodes go on by themselves
    assert next_step(dict(report, awx={"job_id": 7, "workflow_job_id": 45}), {}) is None
    lines = summary_lines(report, "reports/x", step)
    assert lines[1].startswith(
        "plan          hotfix verified, every input and every server checked; nothing was changed"
    )
    assert not any("lock" in line.split()[0:2] or "staged" in line or "rollback" in line for line in lines), lines


def test_compliance_console_and_page_show_the_hung_smsrun32_sorted():
    m = model.RunModel(playbook="compliance.yml", started=T0)
    for index, host in enumerate(("client03", "client01", "client02")):
        m.record(
            "sms_client_facts",
            host,
            {
                "compliance": {
                    "compliant": host == "client02",
                    "kb": "Q216552",
                    "setup_phase": "installed",
                    "smsrun32": {"count": 2 if host == "client03" else 1, "hung": host == "client03", "known": True},
                }
            },
            at=at(index),
        )
    report = m.to_report(stats={}, ended=T0)
    assert [c["host"] for c in report["compliance"]] == ["client01", "client02", "client03"]
    lines = summary_lines(report, "reports/x")
    assert "              not compliant (2): client01, client03" in lines
    assert "              SMSRUN32 hung (1): client03" in lines
    rows = parse(html_renderer.render_html(report)).by_id("compliance-section").find("tbody").find_all("tr")
    assert [(r.find_all("td")[0].text, r.find_all("td")[2].text) for r in rows] == [
        ("client01", "running (1)"),
        ("client02", "running (1)"),
        ("client03", "HUNG (2)"),
    ]


def test_a_limited_run_says_so():
    m = model.RunModel(playbook="rollout.yml", started=T0)
    m.limit = "client05,client06"
    report = m.to_report(stats={}, ended=T0)
    validate(report)
    assert report["limit"] == "client05,client06"
    lines = summary_lines(report, "reports/x")
    assert lines[1] == "limited to    client05,client06 (--limit): hosts outside it were not part of this run"
    dom = parse(html_renderer.render_html(report))
    assert dom.by_id("banner-limit").text.startswith("LIMITED to client05,client06")


def test_a_logon_servers_status_is_what_its_module_returned():
    """The model reads each logon module's `state` and `status`; it guesses nothing from other keys."""
    m = model.RunModel(playbook="rollout.yml", started=T0)
    m.open_span("Logon servers", at(1))
    results = [
        # a baseline that finds the files already there is still a baseline, not convergence
        (
            "a",
            "sms_copy_list_baseline",
            {"changed": False, "converged": True, "status": "kept", "state": "present"},
            "baseline",
        ),
        (
            "b",
            "sms_logon_wait",
            {"changed": False, "converged": True, "status": "converged", "state": "converged"},
            "converged",
        ),
        ("c", "sms_logon_wait", {"changed": False, "status": "lagging", "state": "converged"}, "lagging"),
        ("d", "sms_logon_push", {"changed": True, "pushed": [], "status": "pushed", "state": "present"}, "pushed"),
        ("e", "sms_logon_push", {"changed": True, "restored": [], "status": "restored", "state": "absent"}, "restored"),
        (
            "f",
            "sms_copy_list_baseline",
            {"changed": True, "removed": [], "status": "removed", "state": "absent"},
            "reset",
        ),
        # the deprecated module: its old state words
        (
            "g",
            "sms_replication",
            {"changed": False, "converged": True, "status": "converged", "state": "converged"},
            "converged",
        ),
        ("h", "sms_replication", {"changed": False, "status": "unchanged", "state": "restored"}, "restored"),
        (
            "i",
            "sms_replication",
            {"changed": True, "recorded": True, "status": "recorded", "state": "baseline"},
            "baseline",
        ),
    ]
    for host, action, data, _status in results:
        m.record(action, host, data, tiers={"logon"}, at=at(2))
    report = m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=3))
    assert {e["host"]: e["status"] for e in report["logon_servers"]} == {h: s for h, _a, _d, s in results}
