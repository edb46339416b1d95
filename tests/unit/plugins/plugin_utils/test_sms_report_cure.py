"""The report's client parts for the cure (issue 27): how each client was
restarted and what the watch saw, in the console summary, report.html and
report.json; and the AWX approval's description pointing at those lines."""

import datetime
import json
import os

import jsonschema
import yaml

from sms_html import parse
from sms_testlib import REPO

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_html as html_renderer
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_model as model
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_console import summary_lines
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_json import render_json

T0 = datetime.datetime(2026, 11, 24, 22, 15, 0, tzinfo=datetime.timezone.utc)
FILES = [{"name": "Smsrun32.exe", "changed": True}, {"name": "Smssrv32.exe", "changed": True}]
HEALTHY = {
    "result": "healthy",
    "reason": None,
    "seconds": 120.0,
    "elapsed": 120.3,
    "looks": 120,
    "instances": 1,
    "highest_cpu": 2.5,
    "threshold": 90.0,
    "service": "running",
}
HUNG = {
    "result": "hung",
    "reason": "2 instances of SMSRUN32 at once (Q216552: two instances, one hung)",
    "seconds": 120.0,
    "elapsed": 1.0,
    "looks": 1,
    "instances": 2,
    "highest_cpu": 97.0,
    "threshold": 90.0,
}


def at(seconds):
    return model.iso_ms(T0 + datetime.timedelta(seconds=seconds))


def cure_model(canary):
    """A client play whose canary (client01) got `canary` (healthy, hung or restart_failed), the rest healthy."""
    m = model.RunModel(playbook="playbooks/clients.yml", started=T0)
    hosts = ["client01", "client02", "client03"]
    m.add_targets("client", hosts)
    m.add_client_play("Clients | Upgrade.bat equivalent, in waves", hosts, [1, "100%"])
    m.open_span("Clients | Upgrade.bat equivalent, in waves", at(1), wave=1)
    restarted = {"how": "service", "done": True, "service": "sms-client"}
    if canary == "hung":
        m.record(
            "sms_client_upgrade",
            "client01",
            {
                "changed": True,
                "status": "verify_failed",
                "files": FILES,
                "restart": restarted,
                "verify": HUNG,
                "msg": "client01: ...; but the cure did not hold",
            },
            failed=True,
            wave=1,
            tiers={"client"},
            at=at(2),
        )
    elif canary == "restart_failed":
        m.record(
            "sms_client_upgrade",
            "client01",
            {
                "changed": True,
                "status": "restart_failed",
                "files": FILES,
                "reboot_required": True,
                "restart": {"how": "service", "done": False, "error": "sms-client failed to start (exit 1)"},
                "msg": "client01: ...; sms-client failed to start",
            },
            failed=True,
            wave=1,
            tiers={"client"},
            at=at(2),
        )
    else:
        m.record(
            "sms_client_upgrade",
            "client01",
            {"changed": True, "status": "upgraded", "files": FILES, "restart": restarted, "verify": HEALTHY},
            wave=1,
            tiers={"client"},
            at=at(2),
        )
        m.open_span("Clients | Upgrade.bat equivalent, in waves", at(3), wave=2)
        for host in hosts[1:]:
            m.record(
                "sms_client_upgrade",
                host,
                {
                    "changed": True,
                    "status": "upgraded",
                    "files": FILES,
                    "reboot_required": True,
                    "restart": {"how": "none", "done": False, "pending": ["Smssrv32.exe"], "note": "reboot pending"},
                    "verify": dict(HEALTHY, seconds=30.0, elapsed=30.1, highest_cpu=1.0),
                },
                wave=2,
                tiers={"client"},
                at=at(4),
            )
    return m.to_report(stats={}, ended=T0 + datetime.timedelta(seconds=10))


def validate(report):
    with open(os.path.join(REPO, "docs", "report.schema.json")) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator(schema).validate(json.loads(render_json(report)))


def test_console_says_how_each_client_was_restarted_and_that_it_verified_healthy():
    report = cure_model("healthy")
    lines = [line.strip() for line in summary_lines(report, "reports/x")]
    assert "client service restarted (1): client01" in lines, lines
    assert "reboot pending (client service changed, not restarted): client02, client03" in lines, lines
    assert (
        "verified healthy (3): client01, client02, client03 (at most 1 SMSRUN32 at once, highest CPU 2.5 %)" in lines
    ), lines
    assert not any("FAILED" in line for line in lines)
    validate(report)
    entry = {e["host"]: e for e in json.loads(render_json(report))["clients"]}["client02"]
    assert entry["restart"]["pending"] == ["Smssrv32.exe"] and entry["verify"]["seconds"] == 30.0


def test_console_names_the_canary_whose_cure_did_not_hold_with_what_the_watch_saw():
    report = cure_model("hung")
    lines = [line.strip() for line in summary_lines(report, "reports/x")]
    assert "failed (1): client01" in lines, lines
    assert (
        "verification client01: FAILED: 2 instances of SMSRUN32 at once (Q216552: two instances, one hung) "
        "(watched 1.0s of 120.0s, 2 instance(s) at most, highest CPU 97.0 %)"
    ) in lines, lines
    validate(report)


def test_console_names_a_failed_service_restart():
    lines = [line.strip() for line in summary_lines(cure_model("restart_failed"), "reports/x")]
    assert "client01: client service restart FAILED: sms-client failed to start (exit 1)" in lines, lines


def test_html_has_the_restart_and_the_verification_per_client():
    hung = html_renderer.render_html(cure_model("hung"))
    parse(hung)  # well-formed
    assert "<th>verification</th>" in hung and "FAILED: 2 instances of SMSRUN32" in hung
    assert "client service restarted" in hung
    healthy = html_renderer.render_html(cure_model("healthy"))
    assert (
        "healthy (watched 120.3s of 120.0s, 1 instance(s) at most, highest CPU 2.5 %, client service running)"
        in healthy
    )
    assert "reboot pending (restart=none): Smssrv32.exe" in healthy


def test_the_awx_approval_points_at_the_lines_the_canary_job_prints():
    with open(os.path.join(REPO, "awx", "assets.yml"), encoding="utf-8") as handle:
        assets = yaml.safe_load(handle)["sms_awx"]
    (approve,) = [n for n in assets["workflow"]["nodes"] if n["identifier"] == "approve"]
    said = approve["unified_job_template"]["description"]
    healthy = [line.strip() for line in summary_lines(cure_model("healthy"), "reports/x")]
    hung = [line.strip() for line in summary_lines(cure_model("hung"), "reports/x")]
    for quoted, lines in (("verified healthy (N): ", healthy), ("verification <client>: FAILED: ", hung)):
        assert '"%s' % quoted.rstrip() in said or quoted.split(" (", maxsplit=1)[0] in said, said
        prefix = quoted.replace("(N)", "(").replace("<client>", "client01").split("(", maxsplit=1)[0]
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert "clients[].verify" in said and "verification column" in said
    assert "verify" in json.loads(render_json(cure_model("healthy")))["clients"][0]
