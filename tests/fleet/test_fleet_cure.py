"""The cure of Q216552 over SSH on the fleet (issue 27): each client's own
process table and service stand-in. With the hotfix every client's service is
restarted and it verifies healthy (the canary in IE 4.01's per-user setup);
a client whose service fails to start is failed and named; a canary left with
the pre-hotfix SMSRUN32 hangs again, fails verification and stops the rollout.
"""

import os
import shutil
import subprocess
import sys

import pytest

from sms_fleet import REPO, fleet_snapshot, fleetmod

pytestmark = pytest.mark.slow

HOST_TOOL = fleetmod.IN_HOST_TOOLS + "/sms-fleet-host"


def host_cmd(fleet, host, *args, check=True):
    return fleet.nsenter(host, [fleetmod.HOST_PYTHON, HOST_TOOL, *args], check=check)


def not_the_hotfix(tmp_path):
    top = str(tmp_path / "not-the-hotfix")
    shutil.copytree(os.path.join(REPO, "hotfixes", "Q216552"), top)
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


def test_over_ssh_every_client_restarts_and_verifies_and_a_failed_service_is_named(fresh, play):
    fleet = fresh
    canary, broken = fleet.clients[0], fleet.clients[-1]
    host_cmd(fleet, canary, "ie-setup", "--lifetime", "5")
    host_cmd(fleet, broken, "service-fault")
    run = play(extravars={"sms_rollout_max_fail_percentage": 100})
    assert run.rc != 0  # the broken client fails the run, named
    results = run.results("sms_client_upgrade")
    assert sorted(results) == sorted(fleet.clients)
    bad = results[broken]
    assert bad["status"] == "restart_failed" and bad["msg"].startswith(broken + ": "), bad
    assert "failed to start" in bad["restart"]["error"]
    for client in fleet.clients:
        if client == broken:
            continue
        result = results[client]
        assert result["status"] == "upgraded" and result["restart"]["done"] is True, (client, result)
        assert result["verify"]["result"] == "healthy" and result["verify"]["instances"] == 1, (client, result)
        assert result["verify"]["service"] == "running"
        assert len(fleet.smsrun_pids(client)) == 1, client
        assert host_cmd(fleet, client, "service", "status", check=False).returncode == 0, client
    assert results[canary]["verify"]["seconds"] == 2.0
    out = run.stdout
    assert "failed (1): %s" % broken in out
    assert "%s: client service restart FAILED" % broken in out


def test_over_ssh_a_canary_with_the_old_binary_fails_verification_and_stops_the_rollout(fresh, play, tmp_path):
    fleet = fresh
    canary = fleet.clients[0]
    host_cmd(fleet, canary, "ie-setup", "--lifetime", "5")
    before = fleet_snapshot(fleet)
    run = play(extravars={"sms_hotfix_manifest": not_the_hotfix(tmp_path)})
    assert run.rc != 0
    results = run.results("sms_client_upgrade")
    assert sorted(results) == [canary], "a wave after the canary started"
    result = results[canary]
    assert result["status"] == "verify_failed" and result["verify"]["result"] == "hung", result
    assert result["verify"]["instances"] == 2 and len(fleet.smsrun_pids(canary)) == 2
    after = fleet_snapshot(fleet)
    for client in fleet.clients[1:]:
        assert after[client] == before[client], "%s was touched after the canary failed" % client
    assert "verification %s: FAILED: 2 instances of SMSRUN32" % canary in run.stdout
