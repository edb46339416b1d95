"""Faults a real fleet has, injected into the SSH fleet (issue 10). Each test
asserts what the run says, what is on each host's own disk, and that a
re-run converges."""

import json
import os
import re
import time

import pytest

from sms_fleet import (
    drive_path,
    fleet_snapshot,
    has_hotfix,
    run_and_kill,
    server_has_hotfix,
    snapshot,
    summary,
    temp_files,
    copy_list_version,
)
from smsfleet.netem import NetemUnavailable

pytestmark = pytest.mark.slow

ALL_AT_ONCE = {"sms_rollout_waves": ["100%"]}


def lock_path(fleet):
    return drive_path(fleet, "smssite", "SMS", "Hotfix", "rollout.lock")


def converged(fleet):
    """Every tier has the hotfix, the lock is released, no temp file anywhere."""
    for server in fleet.logon_servers:
        assert server_has_hotfix(fleet, server), server
        assert copy_list_version(fleet, server) > 41, server
    for client in fleet.clients:
        assert has_hotfix(fleet, client), client
    assert not os.path.exists(lock_path(fleet)), "the rollout lock is still held"
    assert temp_files(fleet) == []


def changed_clients(run):
    return sorted(c for c, r in run.results("sms_client_upgrade").items() if r.get("changed"))


def test_a_client_unreachable_in_a_wave_counts_toward_the_gate_and_stops_the_later_waves(fresh, play):
    """Needs the wave gate of issue 9 (failed + unreachable clients count)."""
    before = fleet_snapshot(fresh)
    stopped = []

    def stop_client03_once_the_waves_start(event):
        if (
            not stopped
            and event.get("event") == "playbook_on_play_start"
            and event.get("event_data", {}).get("play", "").startswith("Clients")
        ):
            fresh.stop_sshd("client03")  # client03 is in wave 2; wave 1 is running
            stopped.append(True)
        return True

    # waves client01 | client02 client03 | client04-06; one of two unreachable is 50 % > 20 %
    run = play(
        extravars={"sms_rollout_waves": [1, 2, 3], "sms_rollout_max_fail_percentage": 20},
        event_handler=stop_client03_once_the_waves_start,
    )
    assert stopped and run.rc != 0, run.stdout[-3000:]
    assert "client03" in (run.stats.get("dark") or {}), run.stats
    for client in ("client01", "client02"):
        assert has_hotfix(fresh, client), client
    for client in ("client03", "client04", "client05", "client06"):
        assert snapshot(fresh, client) == before[client], "%s was touched" % client
    text = summary(run)
    assert "unreachable" in text and "client03" in text, text
    for client in ("client04", "client05", "client06"):
        assert client in text, (client, text)

    fresh.start_sshd("client03")
    rerun = play(extravars=ALL_AT_ONCE)
    assert rerun.rc == 0, rerun.stdout[-3000:]
    assert changed_clients(rerun) == ["client03", "client04", "client05", "client06"]
    converged(fresh)


def test_a_logon_server_cut_off_during_the_wait_is_named_and_its_clients_are_untouched(fresh, play):
    before = fleet_snapshot(fresh)
    cut = []

    def cut_logon02_when_the_wait_begins(event):
        if (
            not cut
            and event.get("event") == "playbook_on_task_start"
            and "Ask the Maintenance Manager for a pass now" in event.get("event_data", {}).get("task", "")
        ):
            fresh.link("logon02", up=False)
            cut.append(True)
        return True

    run = play(event_handler=cut_logon02_when_the_wait_begins)
    assert cut and run.rc != 0, run.stdout[-3000:]
    assert "logon02" in (run.stats.get("dark") or {}), run.stats
    assert re.search(r"logon server\(s\) [^\n]*logon02[^\n]* did not converge", run.stdout), run.stdout[-3000:]
    for client in fresh.clients:
        assert snapshot(fresh, client) == before[client], "%s was touched" % client
    for server in ("smssite", "logon01"):
        assert server_has_hotfix(fresh, server), server

    fresh.link("logon02", up=True)
    rerun = play(extravars=ALL_AT_ONCE)
    assert rerun.rc == 0, rerun.stdout[-3000:]
    converged(fresh)


def test_the_site_server_unreachable_at_the_start_changes_nothing_anywhere(fresh, play):
    fresh.stop_sshd("smssite")
    before = fleet_snapshot(fresh)
    run = play()
    assert run.rc != 0
    assert "smssite" in (run.stats.get("dark") or {}), run.stats
    assert fleet_snapshot(fresh) == before, "a host changed although the site server was unreachable"
    assert not os.path.exists(lock_path(fresh))
    # the plan's read-only preflight could not reach the site server; nothing was staged, no client touched
    assert not run.results("sms_client_upgrade")
    assert all(r.get("unreachable") for r in run.results("sms_hotfix_stage").values()), run.results("sms_hotfix_stage")

    fresh.start_sshd("smssite")
    rerun = play(extravars=ALL_AT_ONCE)
    assert rerun.rc == 0, rerun.stdout[-3000:]
    converged(fresh)


def test_a_full_disk_fails_that_client_cleanly_and_the_others_go_on(fresh, play):
    fresh.small_drive("client05", 64 * 1024)
    before = snapshot(fresh, "client05")
    run = play(extravars={"sms_rollout_waves": [1, "100%"], "sms_rollout_max_fail_percentage": 40})
    assert run.rc != 0
    result = run.results("sms_client_upgrade")["client05"]
    assert result["_event"] == "runner_on_failed", result
    # refused before any change (the free-space check) or, had it fitted, undone: either way it says so
    assert "no space left" in result["msg"] or "not enough free space" in result["msg"], result["msg"]
    assert snapshot(fresh, "client05") == before, "the full client's drive changed"
    for client in fresh.clients:
        if client != "client05":
            assert has_hotfix(fresh, client), client

    os.unlink(drive_path(fresh, "client05", "pagefile.sys"))  # the operator frees space
    rerun = play(extravars=ALL_AT_ONCE)
    assert rerun.rc == 0, rerun.stdout[-3000:]
    assert changed_clients(rerun) == ["client05"]
    converged(fresh)


KILL_POINTS = [
    # (name, banner printed before the point, host whose module must be running, extra vars)
    ("staging", "Main | Stage the hotfix in Client.src", "smssite", {}),
    # no "pass now": the wait lasts until the twin's own work cycle
    ("logon wait", "Main | Wait for the hotfix files", "logon01", {"sms_replication_trigger_argv": []}),
    ("wave 1", "Main | Upgrade the SMS client", "client01", {}),
    ("wave 2", "Main | Upgrade the SMS client", "client02", {}),
    ("wave 4", "Main | Upgrade the SMS client", "client06", {}),
]


def test_the_controller_killed_at_five_points_each_rerun_goes_on_and_the_last_converges(fresh, tmp_path):
    """SIGKILL to ansible-playbook and its workers while a module runs on a
    host: during staging, in the logon wait, in waves 1, 2 and 4 (default
    waves 1, 1, 3, 1). Each run is the re-run of the one killed before it
    and gets past that point; the modules still running on the hosts finish
    on their own (those blocked on the dead controller are killed by PID).
    After every kill no temporary file is on any host; the last run
    converges."""
    record = []
    for name, banner, host, extravars in KILL_POINTS:
        killed = run_and_kill(fresh, tmp_path, name.replace(" ", "-"), banner, host, extravars=extravars)
        assert killed.killed_at is not None, "%s: the run never reached the point (rc %s):\n%s" % (
            name,
            killed.rc,
            killed.stdout[-3000:],
        )
        started = time.monotonic()
        blocked = fresh.settle_modules(timeout=15)
        record.append({"point": name, "settled_s": round(time.monotonic() - started, 1), "killed_by_pid": blocked})
        with open(str(tmp_path / "kills.json"), "w") as handle:
            json.dump(record, handle, indent=2)
        assert temp_files(fresh) == [], name
    final = run_and_kill(fresh, tmp_path, "final", "never printed", "smssite", extravars=ALL_AT_ONCE)
    assert final.killed_at is None and final.rc == 0, final.stdout[-3000:]
    converged(fresh)


def test_slow_links_still_converge(fresh, play):
    try:
        for host in fresh.hosts:
            fresh.netem(host, 100)
    except NetemUnavailable as exc:
        pytest.skip("%s: slow links (netem delay 100 ms) cannot be tested on this kernel" % exc)
    run = play(extravars=ALL_AT_ONCE)
    assert run.rc == 0, run.stdout[-3000:]
    converged(fresh)
