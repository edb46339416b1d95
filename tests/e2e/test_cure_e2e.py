"""The cure of Q216552 end to end on the lab twin (issue 27): every upgraded
client's SMS client service is restarted and the client is watched before its
wave counts. The twin's SMSRUN32 hangs as the KB says (two instances burning
CPU) when IE 4.01's per-user setup runs on a client whose binary is not the
hotfix's (`sms-lab ie-setup`); its client service can be made to fail to start
(`sms-lab service-fault`). The lab's watch lasts seconds (its inventory).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from sms_e2e import REPO

pytestmark = pytest.mark.slow

HOTFIX = os.path.join(REPO, "hotfixes", "Q216552")
SMALL = dict(cycle=1, hung=0, clients=4, alpha=1)


def not_the_hotfix(tmp_path):
    """A hotfix folder whose Smsrun32.exe is still the buggy binary (same size and date), recorded as such."""
    top = str(tmp_path / "not-the-hotfix")
    shutil.copytree(HOTFIX, top)
    for folder in ("X86.bin", "Alpha.bin"):
        path = os.path.join(top, "payload", folder, "Smsrun32.exe")
        stat = os.stat(path)
        with open(path, "rb") as handle:
            data = handle.read()
        header = b"SMS 1.2 client stand-in (pre-Q216552, not the hotfix)\r\n"
        with open(path, "wb") as handle:
            handle.write(header + data[len(header) :])
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    manifest = os.path.join(top, "manifest.json")
    subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "bin", "sms-hotfix-manifest"),
            "record",
            "--manifest",
            manifest,
            "--payload",
            os.path.join(top, "payload"),
        ],
        check=True,
        capture_output=True,
    )
    return manifest


def summary(run):
    """The console summary's lines (after the recap)."""
    out = run.stdout
    return out[out.rindex("SMS rollout") :].splitlines() if "SMS rollout" in out else []


def clients_of(report):
    return {entry["host"]: entry for entry in report["clients"]}


def test_with_the_hotfix_every_client_is_restarted_and_verifies_healthy(make_lab, run_playbook):
    lab = make_lab(**SMALL)
    lab.cmd("ie-setup", "--host", "client01", "--lifetime", "5")  # the canary is in IE 4.01's per-user setup
    run = run_playbook(lab)
    assert run.rc == 0, run.stdout[-3000:]
    results = run.results("sms_client_upgrade")
    assert sorted(results) == lab.clients()
    for client, result in results.items():
        assert result["status"] == "upgraded", (client, result)
        assert result["restart"]["how"] == "service" and result["restart"]["done"] is True, (client, result)
        verify = result["verify"]
        assert verify["result"] == "healthy" and verify["instances"] == 1, (client, verify)
        assert verify["service"] == "running", (client, verify)
        assert lab.cmd("service", "--host", client, "status", check=False).returncode == 0
    # the canary (first wave) is watched longer than the others (lab: 2 s against 1 s)
    assert results["client01"]["verify"]["seconds"] == 2.0 and results["client04"]["verify"]["seconds"] == 1.0
    report = clients_of(run.report())
    assert report["client01"]["verify"]["result"] == "healthy" and report["client01"]["restart"]["done"] is True
    lines = summary(run)
    assert any(
        line.strip().startswith("client service restarted (4): client01, client02, client03, client04")
        for line in lines
    ), lines
    assert any(line.strip().startswith("verified healthy (4): ") for line in lines), lines
    assert not any("reboot pending" in line for line in lines), lines
    with open(os.path.join(run.report_dir, sorted(os.listdir(run.report_dir))[-1], "report.html")) as handle:
        page = handle.read()
    assert "<th>verification</th>" in page and "healthy (watched" in page
    # a second run changes nothing and watches nothing
    again = run_playbook(lab)
    assert again.rc == 0 and again.changed() == 0, again.stdout[-3000:]
    assert all(r["verify"]["result"] == "not_watched" for r in again.results("sms_client_upgrade").values())


def test_a_canary_left_with_the_old_binary_fails_verification_and_stops_the_rollout(make_lab, run_playbook, tmp_path):
    lab = make_lab(**SMALL)
    manifest = not_the_hotfix(tmp_path)
    lab.cmd("ie-setup", "--host", "client01", "--lifetime", "5")
    others = {c: lab.snapshot(c) for c in lab.clients() if c != "client01"}
    run = run_playbook(lab, extravars={"sms_hotfix_manifest": manifest})
    assert run.rc != 0
    canary = run.results("sms_client_upgrade")
    assert sorted(canary) == ["client01"], "a wave after the canary started"
    result = canary["client01"]
    assert result["status"] == "verify_failed" and result["verify"]["result"] == "hung", result
    assert result["verify"]["instances"] == 2
    assert "the cure did not hold: 2 instances of SMSRUN32" in result["msg"]
    for client, before in others.items():
        assert lab.snapshot(client) == before, "%s was touched after the canary failed" % client
    entry = clients_of(run.report())["client01"]
    assert entry["status"] == "failed" and entry["verify"]["result"] == "hung"
    lines = summary(run)
    assert any(line.strip().startswith("verification client01: FAILED: 2 instances of SMSRUN32") for line in lines), (
        lines
    )
    assert any(line.strip().startswith("stopped") and "wave 1" in line for line in lines), lines


def test_a_client_whose_service_fails_to_start_is_failed_and_named(make_lab, run_playbook):
    lab = make_lab(**SMALL)
    lab.cmd("service-fault", "--host", "client03")
    run = run_playbook(lab, extravars={"sms_rollout_max_fail_percentage": 100})
    assert run.rc != 0
    results = run.results("sms_client_upgrade")
    bad = results["client03"]
    assert bad["status"] == "restart_failed" and "failed to start" in bad["restart"]["error"], bad
    assert bad["msg"].startswith("client03: ")
    assert all(results[c]["status"] == "upgraded" for c in results if c != "client03"), results
    lines = summary(run)
    assert any(line.strip() == "failed (1): client03" for line in lines), lines
    assert any(line.strip().startswith("client03: client service restart FAILED") for line in lines), lines


def test_restart_reboot_uses_the_twins_reboot_and_watches_after_it(make_lab, run_playbook):
    lab = make_lab(**SMALL)
    before = {c: lab.status()["smsrun32"].get(c, []) for c in lab.clients()}
    run = run_playbook(lab, extravars={"sms_client_restart": "reboot"})
    assert run.rc == 0, run.stdout[-3000:]
    results = run.results("sms_client_upgrade")  # the last result: the watch after the reboot
    for client in lab.clients():
        assert results[client]["status"] == "verified", (client, results[client])
        assert results[client]["restart"] == {"how": "reboot", "done": True}
        after = lab.status()["smsrun32"].get(client, [])
        assert len(after) == 1 and not set(after) & set(before[client]), client
    assert "Restart the twin's stand-ins instead of rebooting" in run.stdout


def test_a_reboot_wave_that_would_end_outside_the_window_does_not_start(make_lab, run_playbook):
    lab = make_lab(**SMALL)
    servers = ",".join(["localhost"] + lab.logon_servers())
    assert run_playbook(lab, limit=servers).rc == 0
    before = {c: (lab.snapshot(c), lab.sms_ini(c)) for c in lab.clients()}
    now = time.localtime()
    start, end = now.tm_hour * 60 + now.tm_min, (now.tm_hour * 60 + now.tm_min + 3) % 1440
    window = "%02d:%02d-%02d:%02d" % (start // 60, start % 60, end // 60, end % 60)  # open now, closes in 3 min
    run = run_playbook(
        lab, "playbooks/clients.yml", extravars={"sms_rollout_window": window, "sms_client_restart": "reboot"}
    )
    assert run.rc != 0
    assert "this wave's reboots would not finish inside the maintenance window" in run.stdout, run.stdout[-3000:]
    refused = run.results("sms_client_upgrade")
    assert sorted(refused) == ["client01"], refused  # the canary wave, refused: no later wave started
    assert refused["client01"]["status"] == "refused" and refused["client01"]["changed"] is False
    for client in lab.clients():
        assert (lab.snapshot(client), lab.sms_ini(client)) == before[client], client
    # the same window with a reboot that fits goes on
    fits = run_playbook(
        lab,
        "playbooks/clients.yml",
        extravars={"sms_rollout_window": window, "sms_client_restart": "reboot", "sms_client_reboot_timeout": 30},
    )
    assert fits.rc == 0, fits.stdout[-3000:]
    assert json.dumps(sorted(fits.results("sms_client_upgrade"))) == json.dumps(lab.clients())


def test_a_canary_that_failed_its_watch_is_watched_again_when_the_rollout_is_run_again(
    make_lab, run_playbook, tmp_path
):
    lab = make_lab(**SMALL)
    manifest = not_the_hotfix(tmp_path)
    lab.cmd("ie-setup", "--host", "client01", "--lifetime", "5")
    first = run_playbook(lab, extravars={"sms_hotfix_manifest": manifest})
    assert first.rc != 0
    assert first.results("sms_client_upgrade")["client01"]["status"] == "verify_failed"
    # the operator ends the hang (IE 4.01's per-user setup is over, the hung pair dies) and runs again:
    # the canary's files are already in place, but its watch is still owed
    lab.cmd("ie-setup", "--host", "client01", "--done")
    deadline = time.monotonic() + 20
    while lab.status()["smsrun32"].get("client01") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lab.status()["smsrun32"].get("client01"), "the hung pair outlived its lifetime"
    again = run_playbook(lab, extravars={"sms_hotfix_manifest": manifest})
    assert again.rc == 0, again.stdout[-3000:]
    results = again.results("sms_client_upgrade")
    canary = results["client01"]
    assert canary["status"] == "verified", canary
    assert canary["verify"]["result"] == "healthy" and canary["verify"]["instances"] == 1, canary
    assert canary["verify"]["elapsed"] >= 2.0 and canary["cure_owed"]["cleared"] is True, canary
    assert sorted(results) == lab.clients()  # and the later waves ran after the canary held
    assert all(results[c]["status"] == "upgraded" for c in results if c != "client01"), results
