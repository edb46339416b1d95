"""The rollout over SSH on the fleet, asserting on each host's own files and
processes (issue 10): --check --diff changes nothing on any host; the
rollout stages, replicates and upgrades, with one SSH connection and one
module run per client and the payload sent by sftp to the site server only;
the hung pair, a stubborn pair and a Windows-style SMSRUN32 are ended inside
the clients' own process tables and a healthy one restarted there; a re-run
changes nothing; compliance is green; rollback is byte for byte; push mode.

One story (module fixture) runs the playbooks once; the tests read it.
"""

import os

import pytest

from sms_fleet import (
    BIN,
    CLIENT_SRC,
    DIRS,
    WANT,
    Player,
    copy_list_version,
    drive_path,
    files,
    fleet_snapshot,
    has_hotfix,
    ini_value,
    module_runs,
    server_has_hotfix,
    smsrun32,
    snapshot,
    sshd_log,
    temp_files,
)

pytestmark = pytest.mark.slow

ALL_AT_ONCE = {"sms_rollout_waves": ["100%"]}


def accepted(fleet, host):
    return sshd_log(fleet, host).count("Accepted publickey for root")


def sftp_sessions(fleet, host):
    return sshd_log(fleet, host).count("Starting session: subsystem 'sftp'")


@pytest.fixture(scope="module")
def story(fleet, tmp_path_factory):
    fleet.reset()
    tmp = tmp_path_factory.mktemp("story")
    play = Player(fleet, tmp)
    # client04: a hung pair that also ignores SIGTERM (ended with SIGKILL)
    fleetmod_kill(fleet, fleet.smsrun_pids("client04"))
    fleet.start_smsrun("client04", hung=True, stubborn=True)
    told = {"procs": {c: smsrun32(fleet, c) for c in fleet.clients}, "disk": fleet_snapshot(fleet)}
    told["map_mtime"] = os.stat(drive_path(fleet, "smssite", "SMS", "System.map")).st_mtime_ns

    # Waves matter in the real run only: the others take all clients at once.
    told["check"] = play(check=True, diff=True, extravars=ALL_AT_ONCE)
    told["disk_after_check"] = fleet_snapshot(fleet)
    told["procs_after_check"] = {c: smsrun32(fleet, c) for c in fleet.clients}

    told["accepted_before"] = {h: accepted(fleet, h) for h in fleet.hosts}
    told["sftp_before"] = {h: sftp_sessions(fleet, h) for h in fleet.hosts}
    # a control path folder of its own: every connection of this run is new
    told["run"] = play(control_path_dir=str(tmp / "cp-rollout"))
    told["accepted_after"] = {h: accepted(fleet, h) for h in fleet.hosts}
    told["sftp_after"] = {h: sftp_sessions(fleet, h) for h in fleet.hosts}
    told["procs_after"] = {c: smsrun32(fleet, c) for c in fleet.clients}
    told["disk_after"] = fleet_snapshot(fleet)

    told["again"] = play(extravars=ALL_AT_ONCE)
    told["disk_after_again"] = fleet_snapshot(fleet)
    told["compliance"] = play("playbooks/compliance.yml", extravars={"sms_compliance_fail": True})
    told["play"] = play
    return told


def fleetmod_kill(fleet, pids):
    from sms_fleet import fleetmod

    assert not fleetmod.kill_and_wait(pids)


def test_check_diff_changes_nothing_on_any_host(story, fleet):
    check = story["check"]
    assert check.rc == 0, check.stdout[-3000:]
    stage = check.results("sms_hotfix_stage")["smssite"]
    assert stage["changed"] is True and sum(f["changed"] for f in stage["files"]) == 4
    previews = check.results("sms_client_upgrade")
    assert sorted(previews) == fleet.clients
    for client, result in previews.items():
        assert result["changed"] is True and result.get("projected") is True, (client, result)
    assert story["disk_after_check"] == story["disk"], "check mode changed a host's files"
    assert story["procs_after_check"] == story["procs"], "check mode ended or started a process"


def test_rollout_over_ssh_stages_replicates_and_upgrades_every_host(story, fleet):
    run = story["run"]
    assert run.rc == 0, run.stdout[-3000:]
    for platform, folder in DIRS.items():
        got = files(fleet, "smssite", *CLIENT_SRC, folder)
        assert all(got.get(n) == d for n, d in WANT[platform].items()), platform
    assert "SMSRUN32.EXE" in os.listdir(drive_path(fleet, "smssite", *CLIENT_SRC, "X86.bin"))
    assert os.stat(drive_path(fleet, "smssite", "SMS", "System.map")).st_mtime_ns > story["map_mtime"]
    for server in fleet.logon_servers:
        assert server_has_hotfix(fleet, server), server
        assert copy_list_version(fleet, server) > 41, server
    for client in fleet.clients:
        assert has_hotfix(fleet, client), client
        server = fleet.host(client)["logon_server"]
        assert ini_value(fleet, client, "SMS.INI", "CopyListVersion") == str(copy_list_version(fleet, server))
        assert ini_value(fleet, client, "SMS.INI", "SetupPhase") == "installed"
    assert not os.path.exists(drive_path(fleet, "smssite", "SMS", "Hotfix", "rollout.lock"))
    assert temp_files(fleet) == []


def test_one_ssh_connection_and_one_module_run_per_client_payload_by_sftp_to_the_site_only(story, fleet):
    run = story["run"]
    for client in fleet.clients:
        assert story["accepted_after"][client] - story["accepted_before"][client] == 1, client
        assert module_runs(run, client) == 1, client
    # the payload goes to the site server by sftp (the manifest and 4 files), nowhere else
    stage = run.results("sms_hotfix_stage")["smssite"]
    assert sorted(t for t in stage["transferred"] if t != "manifest.json") == sorted(
        "payload/%s/%s" % (DIRS[p], n) for p in DIRS for n in ("Smsrun32.exe", "Smssrv32.exe")
    ), stage["transferred"]
    assert story["sftp_after"]["smssite"] - story["sftp_before"]["smssite"] >= 5
    for host in fleet.hosts:
        if host != "smssite":
            assert story["sftp_after"][host] == story["sftp_before"][host], host


def test_hung_and_stubborn_pairs_ended_and_a_healthy_one_restarted_in_the_clients_own_tables(story):
    results = story["run"].results("sms_client_upgrade")
    before, after = story["procs"], story["procs_after"]
    for client in ("client01", "client04"):  # the hung pair; the stubborn hung pair
        found = sorted(p["pid"] for p in results[client]["smsrun32"]["found"])
        assert len(before[client]) == 2 and found == before[client], (client, results[client]["smsrun32"])
        assert results[client]["smsrun32"]["hung"] is True
        assert sorted(results[client]["smsrun32"]["stopped"]) == before[client]
        assert len(after[client]) == 1 and not set(after[client]) & set(before[client]), client
    assert "KILL" in results["client04"]["smsrun32"]["signals"], results["client04"]["smsrun32"]
    healthy = results["client02"]["smsrun32"]
    assert healthy["hung"] is False and healthy["stopped"] == before["client02"] and healthy["restarted"] is True
    assert len(after["client02"]) == 1 and after["client02"] != before["client02"]


def test_a_windows_style_smsrun32_command_line_is_found_and_restarted(story):
    """client03's stand-in reads C:\\MS\\SMS\\BIN\\SMSRUN32.EXE, nothing under
    /mnt/c (needs sms_client_process_scope: host, issue 9 item 6)."""
    result = story["run"].results("sms_client_upgrade")["client03"]["smsrun32"]
    before, after = story["procs"]["client03"], story["procs_after"]["client03"]
    assert sorted(p["pid"] for p in result["found"]) == before, result
    assert result["stopped"] == before and result["restarted"] is True, result
    assert len(after) == 1 and after != before


def test_a_second_run_changes_nothing_and_compliance_is_green(story, fleet):
    again = story["again"]
    assert again.rc == 0 and again.changed() == 0, again.stats.get("changed")
    assert story["disk_after_again"] == story["disk_after"]
    compliance = story["compliance"]
    assert compliance.rc == 0, compliance.stdout[-3000:]
    facts = compliance.results("sms_client_info")
    assert sorted(facts) == fleet.clients
    assert "compliant: 6/6" in compliance.stdout


def test_rollback_returns_every_host_to_its_original_bytes(story, fleet):
    before = story["disk"]
    rollback = story["play"]("playbooks/rollback.yml", extravars=ALL_AT_ONCE)
    assert rollback.rc == 0, rollback.stdout[-3000:]
    site = snapshot(fleet, "smssite", *CLIENT_SRC)
    assert site == {
        k[len(os.path.join(*CLIENT_SRC)) + 1 :]: v
        for k, v in before["smssite"].items()
        if k.startswith(os.path.join(*CLIENT_SRC) + "/")
    }, "Client.src is not the original"
    for server in fleet.logon_servers:
        for folder in DIRS.values():
            now = {k: v[0] for k, v in snapshot(fleet, server, "SMS", "Logon.srv", folder).items()}
            prefix = os.path.join("SMS", "Logon.srv", folder) + "/"
            assert now == {k[len(prefix) :]: v[0] for k, v in before[server].items() if k.startswith(prefix)}, server
    for client in fleet.clients:
        prefix = os.path.join(*BIN) + "/"
        assert snapshot(fleet, client, *BIN) == {
            k[len(prefix) :]: v for k, v in before[client].items() if k.startswith(prefix)
        }, client
        assert snapshot(fleet, client)["SMS.INI"] == before[client]["SMS.INI"], client
    assert temp_files(fleet) == []


def test_push_mode_over_ssh_serves_a_server_the_maintenance_manager_skips(fresh, play):
    from smslab import mm as labmm

    labmm.write_skip(fresh.lab, ["logon02"])
    run = play(extravars={"sms_replication_mode": "push", "sms_replication_timeout": 20, "sms_rollout_waves": ["100%"]})
    assert run.rc == 0, run.stdout[-3000:]
    assert server_has_hotfix(fresh, "logon02")
    assert os.listdir(drive_path(fresh, "logon02", "SMS", "Hotfix", "Q216552", "push"))
    assert copy_list_version(fresh, "logon02") == 41, "a push does not edit the copy lists"
    for client in fresh.clients:
        assert has_hotfix(fresh, client), client
