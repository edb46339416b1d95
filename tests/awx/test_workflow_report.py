"""The workflow report node's program (awx/sms_workflow_report.py) on reports
built here: which result of a client wins, what counts as not reached, the
lock, the waves, the verdict and exit codes. The rehearsal runs it for real
(test_awx_workflow.py)."""

import importlib.util
import io
import json
import os

import jsonschema
import pytest

from awx_rehearsal import REPO

_spec = importlib.util.spec_from_file_location(
    "sms_workflow_report", os.path.join(REPO, "awx", "sms_workflow_report.py")
)
wr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wr)

with open(os.path.join(REPO, "docs", "report.schema.json"), encoding="utf-8") as _handle:
    SCHEMA = json.load(_handle)

STATUSES = wr.CLIENT_STATUSES
MODEL, _FILES = wr._shared()


def client(host, wave, status, detail=None):
    return {
        "host": host,
        "wave": wave,
        "status": status,
        "detail": detail or status,
        "msg": None,
        "reboot_required": False,
        "pending_restart": False,
        "files_changed": 0,
        "logon_server": None,
        "smsrun32": None,
    }


def report(playbook, started, ended, clients=(), ok=True, lock=None, site=None, unlock=None):
    clients = list(clients)
    waves = {}
    for entry in clients:
        if entry["wave"] is not None:
            row = waves.setdefault(entry["wave"], dict((s, 0) for s in STATUSES))
            row[entry["status"]] += 1
    rows = [dict(wave=number, planned=sum(counts.values()), **counts) for number, counts in sorted(waves.items())]
    sites = [site] if site else []
    built = {
        "schema": 1,
        "playbook": playbook,
        "started": started,
        "ended": ended,
        "duration": 1.0,
        "check_mode": False,
        "hotfix": {"kb": "Q216552", "title": "t"},
        "plan": None,
        "lock": lock,
        "site": site,
        "site_servers": sites,
        "logon_servers": [],
        "clients": clients,
        "waves": rows,
        "client_plan": [],
        "ansible_stats": {},
        "failures": [],
        "ok": ok,
        "totals": {
            "site": MODEL._count(sites, MODEL.SITE_STATUSES),
            "logon_servers": MODEL._count([], MODEL.LOGON_STATUSES),
            "clients": MODEL._count(clients, STATUSES),
        },
    }
    if unlock:
        built["unlock"] = unlock
    jsonschema.validate(built, SCHEMA)
    return built


def site_entry(status):
    return {
        "host": "smssite",
        "status": status,
        "msg": None,
        "files": [],
        "files_changed": 0,
        "system_map": None,
        "action": "stage",
    }


T = "2026-11-27T10:%02d:00Z"


def a_run():
    lock = {"host": "smssite", "ok": True, "holder": "awx workflow W", "started": T % 1, "msg": None, "released": False}
    return [
        report("site.yml", T % 1, T % 2, lock=lock, site=site_entry("staged")),
        report("clients.yml", T % 3, T % 4, [client("c1", 1, "done", "upgraded")]),  # the canary
        report(
            "clients.yml",
            T % 5,
            T % 7,
            [
                client("c1", 1, "done", "unchanged"),  # slice 1
                client("c3", 2, "done", "upgraded"),
            ],
        ),
        report("clients.yml", T % 5, T % 6, [client("c2", 1, "failed")], ok=False),  # slice 2
        report(
            "on_failure.yml",
            T % 8,
            T % 8,
            [client(c, n, "skipped", "condition") for n, c in enumerate(["c1", "c2", "c3"], 1)],
            site=site_entry("not_reached"),
        ),
        report("unlock.yml", T % 9, T % 9, unlock={"host": "smssite", "ok": True}),
    ]


def test_the_latest_result_wins_but_a_job_that_did_not_touch_a_host_says_nothing_of_it():
    merged = MODEL.merge(*a_run(), clients=["c1", "c2", "c3", "c4"])
    jsonschema.validate(merged, SCHEMA)
    by_host = dict((e["host"], (e["status"], e["detail"])) for e in merged["clients"])
    # the failure path skipped every client by a condition: that says nothing of them
    assert by_host == {
        "c1": ("done", "unchanged"),
        "c2": ("failed", "failed"),
        "c3": ("done", "upgraded"),
        "c4": ("not_reached", "not_reached"),
    }
    assert merged["site"]["status"] == "staged"
    assert merged["ok"] is False
    assert merged["lock"]["holder"] == "awx workflow W" and merged["lock"]["released"] is True
    assert merged["started"] == T % 1 and merged["ended"] == T % 9 and merged["duration"] == 480.0
    # batches numbered through the run as the clients' latest results fell: the slices' (counted
    # together, c1's canary result replaced by its slice's); none from the failure path
    assert [(row["wave"], row["done"], row["failed"]) for row in merged["waves"]] == [(1, 1, 1), (2, 1, 0)]
    assert dict((e["host"], e["wave"]) for e in merged["clients"]) == {"c1": 1, "c2": 1, "c3": 2, "c4": None}
    assert merged["totals"]["clients"]["not_reached"] == 1 and merged["totals"]["clients"]["hosts"] == 4


def test_a_host_only_skipped_by_a_condition_is_not_reached():
    merged = MODEL.merge(report("on_failure.yml", T % 8, T % 8, [client("c9", 1, "skipped", "condition")]))
    assert [(e["host"], e["status"], e["wave"]) for e in merged["clients"]] == [("c9", "not_reached", None)]
    assert merged["waves"] == []
    ok, lines = wr.verdict(merged)
    assert not ok and "              not reached: c9" in lines


def test_a_client_whose_platform_the_rollout_leaves_out_stays_skipped():
    merged = MODEL.merge(
        report("clients.yml", T % 3, T % 4, [client("c5", 1, "skipped", "platform")]),
        report("on_failure.yml", T % 8, T % 8, [client("c5", 1, "skipped", "condition")]),
    )
    assert [(e["host"], e["status"], e["detail"]) for e in merged["clients"]] == [("c5", "skipped", "platform")]


def test_a_lock_no_unlock_released_stays_held():
    merged = MODEL.merge(*a_run()[:4])
    assert merged["lock"]["released"] is False
    ok, lines = wr.verdict(merged)
    assert not ok and any("still held by awx workflow W" in line for line in lines)


def write(folder, built):
    os.makedirs(folder)
    with open(os.path.join(folder, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(built, handle)


def run_main(monkeypatch, capsys, args, clients=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"clients": clients}) if clients else ""))
    code = wr.main(args)
    return code, capsys.readouterr()


def test_the_verdict_names_what_is_not_done_and_the_folder_holds_one_report(tmp_path, monkeypatch, capsys):
    run = tmp_path / "awx-workflow-7"
    for index, built in enumerate(a_run()):
        write(str(run / ("job-%d" % index) / "t-x"), built)
    write(str(run / "job-99" / "t-report"), report("report.yml", T % 10, T % 10, ok=False))
    code, out = run_main(monkeypatch, capsys, ["--workflow-dir", str(run), "--name", "W"], ["c1", "c2", "c3", "c4"])
    assert code == 1, out
    assert "merged        6 report(s)" in out.out
    assert "failed: c2" in out.out and "not reached: c4" in out.out
    with open(str(run / "workflow" / "report.json"), encoding="utf-8") as handle:
        merged = json.load(handle)
    jsonschema.validate(merged, SCHEMA)
    assert merged["report_dir"] == str(run / "workflow")
    assert os.path.exists(str(run / "workflow" / "report.html")) and os.path.exists(str(run / "workflow" / "junit.xml"))
    # a second run reads neither its own output nor the report node's report
    code, out = run_main(monkeypatch, capsys, ["--workflow-dir", str(run)], ["c1", "c2", "c3", "c4"])
    assert code == 1 and "merged        6 report(s)" in out.out


def test_every_client_done_is_exit_0(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    write(str(run / "a"), report("clients.yml", T % 1, T % 2, [client("c1", 1, "done", "upgraded")]))
    code, out = run_main(monkeypatch, capsys, ["--workflow-dir", str(run)], ["c1"])
    assert code == 0 and "every client done" in out.out


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no report folder"),
        ("", "no report.json below"),
        ("{not json", "cannot read"),
    ],
)
def test_nothing_to_merge_or_a_broken_report_is_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys, content, message
):
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "job-1").mkdir()
            (run / "job-1" / "report.json").write_text(content)
    code, out = run_main(monkeypatch, capsys, ["--workflow-dir", str(run)])
    assert code == 2 and message in out.err
    assert not os.path.exists(str(run / "workflow"))


def test_the_report_node_changes_nothing_so_a_no_op_relaunch_is_green_and_unchanged(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    write(str(run / "job-1"), report("clients.yml", T % 1, T % 2, [client("c1", 1, "done", "unchanged")]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    clients:\n      hosts:\n        c1:\n")
    bin_dir = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([bin_dir, "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "NO_COLOR": "1",
        "SMS_REPORT_DIR": str(tmp_path / "reports"),
    }
    result = subprocess.run(
        [
            os.path.join(bin_dir, "ansible-playbook"),
            "playbooks/report.yml",
            "-i",
            str(inventory),
            "-e",
            "sms_report_workflow_dir=%s" % run,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "every client done" in result.stdout
    assert os.path.exists(str(run / "workflow" / "report.json"))
    recap = result.stdout.split("PLAY RECAP", 1)[1]
    assert "localhost" in recap and "changed=0" in recap and "failed=0" in recap, recap
