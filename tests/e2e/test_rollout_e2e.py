"""The three tiers end to end on the lab twin, through ansible-runner.

Each test builds a fresh lab (a site server, two logon servers, twelve
clients, a Maintenance Manager twin, real SMSRUN32 processes) and asserts on
its files and processes: hashes, SMS.INI bytes, copy-list versions.
"""

import json
import os
import time

import pytest

from sms_e2e import load_manifest_json
from sms_testlib import sha

pytestmark = pytest.mark.slow

HOTFIX = load_manifest_json()
WANT = {
    platform: {f["name"].lower(): f["sha256"] for f in spec["files"]} for platform, spec in HOTFIX["platforms"].items()
}
DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}
CLIENT_SRC = ("SMS", "Site.srv", "Maincfg.box", "Client.src")


def lab_platform(lab, client):
    with open(lab.inventory) as handle:
        text = handle.read()
    alpha_part = text.split("clients_alpha:", 1)[1]
    return "alpha" if "%s:" % client in alpha_part else "x86"


def server_of(lab, client):
    for line in lab.sms_ini(client).decode("latin-1").split("\r\n"):
        if line.lower().startswith("current_logon_server="):
            return line.split("\\")[2].lower()
    raise AssertionError("no logon server in %s's SMS.INI" % client)


def has_hotfix(files, platform):
    return all(files.get(name) == sha for name, sha in WANT[platform].items())


def ini_lines(data):
    return data.decode("latin-1").split("\r\n")


def assert_ini_changed_only(before, after, keys=("copylistversion", "setupphase")):
    """SMS.INI: same lines, byte for byte, except the values of `keys`."""
    old, new = ini_lines(before), ini_lines(after)
    assert len(old) == len(new), (before, after)
    for a, b in zip(old, new):
        if a != b:
            assert a.split("=", 1)[0].lower() in keys and a.split("=", 1)[0] == b.split("=", 1)[0], (a, b)


def smsrun_pids(lab, client):
    """SMSRUN32 processes of a client, read from /proc like the product does."""
    pids = []
    marker = ("--image=" + lab.host(client, "MS", "SMS", "BIN")).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry, "rb") as handle:
                comm = handle.read().strip()
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read()
            with open("/proc/%s/stat" % entry, "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if comm == b"SMSRUN32" and marker in cmdline and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def tier_snapshot(lab):
    """What the rollout may change, per tier: bytes and dates."""
    state = {"site": lab.snapshot("smssite", *CLIENT_SRC)}
    for server in lab.logon_servers():
        for platform_dir in DIRS.values():
            state["%s/%s" % (server, platform_dir)] = lab.snapshot(server, "SMS", "Logon.srv", platform_dir)
    for client in lab.clients():
        state[client] = {"bin": lab.snapshot(client, "MS", "SMS", "BIN"), "ini": lab.sms_ini(client)}
    return state


# --- the whole rollout: check → change → no change → check ---------------------


def test_rollout_rhythm_cures_hung_clients_and_changes_nothing_twice(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=1)
    clients = lab.clients()
    hung_client = "client01"
    assert len(smsrun_pids(lab, hung_client)) == 2, "the lab should show the hung state on client01"
    everything = lab.snapshot()
    ini_before = {c: lab.sms_ini(c) for c in clients}
    system_map = lab.host("smssite", "SMS", "System.map")
    map_bytes, map_mtime = open(system_map, "rb").read(), os.stat(system_map).st_mtime

    # 1. check mode: every tier reports what it would change, nothing changes
    check = run_playbook(lab, check=True, diff=True)
    assert check.rc == 0, check.stdout[-3000:]
    stage = check.results("sms_hotfix_stage")["smssite"]
    assert stage["changed"] is True and sum(f["changed"] for f in stage["files"]) == 4
    previews = check.results("sms_client_upgrade")
    assert sorted(previews) == clients
    for client, result in previews.items():
        assert result["changed"] is True and result.get("projected") is True, (client, result)
        assert {f["name"].lower() for f in result["files"] if f["changed"]} == set(WANT[lab_platform(lab, client)])
    assert "SMSRUN32 pid" in check.stdout and "CopyListVersion" in check.stdout
    assert lab.snapshot() == everything, "check mode changed the lab"
    assert len(smsrun_pids(lab, hung_client)) == 2, "check mode ended a process"

    # 2. the real run
    run = run_playbook(lab)
    assert run.rc == 0, run.stdout[-3000:]
    assert "payload: verified" in run.stdout and "waves: 1, 1, 6, 4" in run.stdout
    # site server: Client.src holds the hotfix, names kept (SMSRUN32.EXE stays upper case)
    for platform, folder in DIRS.items():
        assert has_hotfix(lab.files("smssite", *CLIENT_SRC, folder), platform)
    assert "SMSRUN32.EXE" in os.listdir(lab.host("smssite", *CLIENT_SRC, "X86.bin"))
    assert open(system_map, "rb").read() == map_bytes and os.stat(system_map).st_mtime > map_mtime
    # backups of the originals, byte for byte, in the journal's folder
    journal = json.load(open(lab.host("smssite", "SMS", "Hotfix", "Q216552", "journal.json")))
    assert len(journal["entries"]) == 4
    for entry in journal["entries"].values():
        backup = lab.host("smssite", "SMS", "Hotfix", "Q216552", entry["backup"])
        key = os.path.join(*CLIENT_SRC, entry["backup"].split("/")[1], entry["name"])
        assert everything[os.path.join("smssite", key)][0] == entry["sha256"]
        with open(backup, "rb") as handle:
            assert sha(handle.read()) == entry["sha256"]
    # logon servers: the files and a newer copy list
    for server in lab.logon_servers():
        for platform, folder in DIRS.items():
            assert has_hotfix(lab.files(server, "SMS", "Logon.srv", folder), platform), server
        assert lab.copy_list_version(server) > 41
    # clients: every file equals the server's copy; SMS.INI changed in the two keys only
    for client in clients:
        platform = lab_platform(lab, client)
        server_files = lab.files(server_of(lab, client), "SMS", "Logon.srv", DIRS[platform])
        assert lab.files(client, "MS", "SMS", "BIN") == server_files, client
        assert lab.ini_value(client, "CopyListVersion") == str(lab.copy_list_version(server_of(lab, client)))
        assert lab.ini_value(client, "SetupPhase") == "installed"
        assert_ini_changed_only(ini_before[client], lab.sms_ini(client))
    # the hung client is cured: one SMSRUN32 again, a fresh one
    results = run.results("sms_client_upgrade")
    assert results[hung_client]["smsrun32"]["hung"] is True
    old = set(results[hung_client]["smsrun32"]["stopped"])
    now = smsrun_pids(lab, hung_client)
    assert len(old) == 2 and len(now) == 1 and not old & set(now)
    # Smssrv32.exe (the client service) changed: the lab's policy restarts it, and every client is watched
    for client, r in results.items():
        assert r["restart"]["how"] == "service" and r["restart"]["done"] is True, (client, r["restart"])
        assert r["reboot_required"] is False and r["verify"]["result"] == "healthy", (client, r["verify"])

    # 3. a second run changes nothing
    again = run_playbook(lab)
    assert again.rc == 0, again.stdout[-3000:]
    assert again.changed() == 0, again.stats.get("changed")
    after = lab.snapshot()
    # 4. check mode again: nothing to change
    final = run_playbook(lab, check=True, diff=True)
    assert final.rc == 0 and final.changed() == 0, final.stats.get("changed")
    assert lab.snapshot() == after


# --- rollback: every tier back to its original bytes ---------------------------


def test_rollback_returns_every_tier_to_the_original_bytes(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    before = tier_snapshot(lab)
    assert run_playbook(lab).rc == 0
    assert tier_snapshot(lab) != before

    rollback = run_playbook(lab, "playbooks/rollback.yml")
    assert rollback.rc == 0, rollback.stdout[-3000:]
    after = tier_snapshot(lab)
    assert after["site"] == before["site"], "Client.src is not byte-for-byte (and date) the original"
    for key in before:
        if "/" in key:  # logon servers get the originals back from the maintenance cycle
            assert {k: v[0] for k, v in after[key].items()} == {k: v[0] for k, v in before[key].items()}, key
    for client in lab.clients():
        assert after[client] == before[client], client
    # and a second rollback changes nothing
    again = run_playbook(lab, "playbooks/rollback.yml")
    assert again.rc == 0 and again.changed() == 0, again.stats.get("changed")
    # a new rollout after the rollback works again
    assert run_playbook(lab).rc == 0
    assert all(has_hotfix(lab.files(c, "MS", "SMS", "BIN"), lab_platform(lab, c)) for c in lab.clients())


# --- the logon tier ---------------------------------------------------------------


def test_replication_is_observed_through_the_twins_real_cycle(make_lab, run_playbook):
    lab = make_lab(cycle=3, hung=0)
    passes = lab.status()["passes"] if "passes" in lab.status() else None
    # no "pass now": the files must arrive by the twin's own work cycle
    run = run_playbook(lab, extravars={"sms_replication_trigger_argv": []})
    assert run.rc == 0, run.stdout[-3000:]
    waits = run.results("sms_logon_wait")
    for server in lab.logon_servers():
        result = waits[server]
        assert result["converged"] is True and result["copy_list"]["ok"] is True
        # one module run on the server, however long the cycle took to come
        assert result["slices"] == 1 and result["polls"] >= 1, result
        assert lab.copy_list_version(server) > 41
    # nobody asked for a pass: the twin's own work cycle carried the files
    assert [r["_event"] for r in run.results("command").values()] == ["runner_on_skipped"]
    if passes is not None:
        assert lab.status()["passes"] > passes


def test_a_server_that_never_replicates_stops_the_rollout_and_none_of_its_clients_is_touched(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0, skip=["logon02"])
    lagging_clients = [c for c in lab.clients() if server_of(lab, c) == "logon02"]
    assert lagging_clients
    clients_before = {c: (lab.snapshot(c), lab.sms_ini(c)) for c in lab.clients()}

    run = run_playbook(lab, extravars={"sms_replication_timeout": 8, "sms_replication_progress_interval": 2})
    assert run.rc != 0
    failed = run.results("sms_logon_wait")["logon02"]
    assert failed["_event"] == "runner_on_failed"
    assert "logon02" in failed["msg"] and "Smsrun32.exe" in failed["msg"] and "push" in failed["msg"]
    assert "logon02 waiting" in run.stdout  # progress while waiting
    assert "did not converge" in run.stdout and "logon02" in run.stdout.split("did not converge")[0][-200:]
    # by default the rollout stops: no client was touched at all
    for client in lab.clients():
        assert (lab.snapshot(client), lab.sms_ini(client)) == clients_before[client], client
    assert not run.results("sms_client_upgrade")

    # told to go on, the rest of the fleet is upgraded; logon02's clients are
    # skipped. The run still ends non-zero: a logon server did not converge.
    go_on = run_playbook(lab, extravars={"sms_replication_timeout": 4, "sms_replication_continue_on_lagging": True})
    assert go_on.rc != 0 and go_on.failed_hosts() == ["logon02"], go_on.stdout[-3000:]
    results = go_on.results("sms_client_upgrade")
    reported = {entry["host"]: entry for entry in go_on.report()["clients"]}
    for client in lab.clients():
        if client in lagging_clients:
            # ansible-runner's events drop a skipped task's result; the report keeps it
            assert results[client]["_event"] == "runner_on_skipped", results[client]
            entry = reported[client]
            assert entry["status"] == "skipped" and "LOGON02" in entry["msg"], entry
            assert (lab.snapshot(client), lab.sms_ini(client)) == clients_before[client], client
        else:
            assert has_hotfix(lab.files(client, "MS", "SMS", "BIN"), lab_platform(lab, client)), client


def test_push_mode_converges_a_server_the_twin_skips(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0, skip=["logon02"])
    originals = lab.snapshot("logon02", "SMS", "Logon.srv")
    run = run_playbook(lab, extravars={"sms_replication_mode": "push", "sms_replication_timeout": 10})
    assert run.rc == 0, run.stdout[-3000:]
    for platform, folder in DIRS.items():
        assert has_hotfix(lab.files("logon02", "SMS", "Logon.srv", folder), platform)
    # the pushed-over originals are kept on the server
    push_dir = lab.host("logon02", "SMS", "Hotfix", "Q216552", "push")
    assert os.path.isdir(push_dir) and os.listdir(push_dir)
    assert lab.copy_list_version("logon02") == 41, "a push does not edit the copy lists by hand"
    for client in lab.clients():
        assert has_hotfix(lab.files(client, "MS", "SMS", "BIN"), lab_platform(lab, client)), client
    assert originals  # sanity: the server had files before


def test_an_already_converged_site_returns_at_once(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    assert run_playbook(lab).rc == 0
    again = run_playbook(lab, "playbooks/logon.yml")
    assert again.rc == 0 and again.changed() == 0
    for server, result in again.results("sms_logon_wait").items():
        # converged at the first look: no second poll, no second module run
        assert result["converged"] is True and result["polls"] == 1 and result["slices"] == 1, (server, result)


# --- the client tier: waves -----------------------------------------------------


def test_a_wave_over_its_failure_threshold_stops_the_rollout_and_the_next_run_finishes_it(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    clients = lab.clients()  # waves 1, 10 %, 50 %, 100 % of 12: client01 | client02 | client03-08 | client09-12
    broken = ["client04", "client05"]  # 2 of wave 3's 6 clients: 33 % > 20 %
    for client in broken:
        os.rename(lab.host(client, "SMS.INI"), lab.host(client, "SMS.INI.away"))
    later_wave = clients[8:]
    untouched = {c: (lab.snapshot(c), lab.sms_ini(c)) for c in later_wave}

    run = run_playbook(lab)
    assert run.rc != 0
    results = run.results("sms_client_upgrade")
    for client in broken:
        assert results[client]["_event"] == "runner_on_failed"
        assert "SMS.INI" in results[client]["msg"]
    for client in clients[:8]:
        if client not in broken:
            assert results[client]["status"] == "upgraded", (client, results[client])
    for client in later_wave:
        assert client not in results, "%s ran although its wave should not have started" % client
        assert (lab.snapshot(client), lab.sms_ini(client)) == untouched[client]
    # the broken clients are untouched too
    for client in broken:
        assert not has_hotfix(lab.files(client, "MS", "SMS", "BIN"), "x86")

    for client in broken:
        os.rename(lab.host(client, "SMS.INI.away"), lab.host(client, "SMS.INI"))
    rerun = run_playbook(lab)
    assert rerun.rc == 0, rerun.stdout[-3000:]
    results = rerun.results("sms_client_upgrade")
    changed = sorted(c for c, r in results.items() if r.get("changed"))
    assert changed == sorted(broken + later_wave), "a re-run must pick up exactly the clients not done"
    for client in clients:
        assert has_hotfix(lab.files(client, "MS", "SMS", "BIN"), lab_platform(lab, client)), client


# --- the site tier: a live lock refuses the run and changes nothing -------------


def test_a_live_lock_of_another_holder_refuses_the_rollout(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    lock = lab.host("smssite", "SMS", "Hotfix", "rollout.lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(lock, "w") as handle:
        json.dump(
            {"holder": "awx job template 7", "purpose": "rollout", "started": stamp, "epoch": time.time()}, handle
        )
    before = lab.snapshot()
    run = run_playbook(lab)
    assert run.rc != 0
    failure = [r for r in run.results("sms_rollout_lock").values() if r["_event"] == "runner_on_failed"]
    assert failure and "awx job template 7" in failure[0]["msg"] and "unlock" in failure[0]["msg"]
    assert lab.snapshot() == before, "a refused run changed the lab"


def test_the_client_waves_stop_outside_the_maintenance_window(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    # site and logon tiers only (no client matches the limit)
    servers = ",".join(["localhost"] + lab.logon_servers())
    assert run_playbook(lab, limit=servers).rc == 0
    clients_before = {c: (lab.snapshot(c), lab.sms_ini(c)) for c in lab.clients()}
    hour = (time.localtime().tm_hour + 2) % 24
    closed = "%02d:00-%02d:30" % (hour, hour)

    refused = run_playbook(lab, "playbooks/clients.yml", extravars={"sms_rollout_window": closed})
    assert refused.rc != 0
    assert "outside the maintenance" in refused.stdout and closed in refused.stdout
    assert not refused.results("sms_client_upgrade"), "a client ran outside the window"
    for client in lab.clients():
        assert (lab.snapshot(client), lab.sms_ini(client)) == clients_before[client], client

    forced = run_playbook(
        lab, "playbooks/clients.yml", extravars={"sms_rollout_window": closed, "sms_rollout_force": True}
    )
    assert forced.rc == 0, forced.stdout[-3000:]
    for client in lab.clients():
        assert has_hotfix(lab.files(client, "MS", "SMS", "BIN"), lab_platform(lab, client)), client


def test_rolling_back_a_site_that_was_never_staged_changes_nothing_and_does_not_wait(make_lab, run_playbook):
    lab = make_lab(cycle=2, hung=0)
    before = lab.snapshot()
    rollback = run_playbook(lab, "playbooks/rollback.yml", extravars={"sms_replication_timeout": 600})
    assert rollback.rc == 0, rollback.stdout[-3000:]
    assert rollback.changed() == 0
    assert all(r["_event"] == "runner_on_skipped" for r in rollback.results("sms_logon_wait").values())
    assert lab.snapshot() == before


# --- sms_rollout_on_failure=rollback: a bad wave undoes the rollout -------------------


def _unreachable(lab, client, path):
    """The lab's inventory with `client` reached over SSH on a closed port."""
    import yaml

    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    for group in inventory["all"]["children"]["clients"]["children"].values():
        if client in (group.get("hosts") or {}):
            group["hosts"][client] = {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": 1,
                "ansible_user": "nobody",
                "ansible_python_interpreter": "/usr/bin/python3",
            }
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    lab.inventory = path


@pytest.mark.parametrize(
    "bad,wave,size,fault",
    [(0, 1, 1, "fails"), (2, 2, 2, "fails"), (2, 2, 2, "unreachable")],
    ids=["the-canary-fails", "wave-2-crosses", "wave-2-crosses-unreachable"],
)
def test_a_wave_over_the_threshold_rolls_every_tier_back_when_asked(
    bad, wave, size, fault, make_lab, run_playbook, tmp_path
):
    lab = make_lab(clients=6, alpha=1, cycle=2, hung=0, no_smsrun=True)
    clients = lab.clients()
    before = tier_snapshot(lab)
    inventory = lab.inventory
    # waves client01 | client02-03 | client04-06; a client whose SMS.INI lacks [SMS] fails. A canary
    # that fails is a wave whose every client failed: Ansible itself would end the whole run there,
    # before any rollback could run.
    with open(lab.host(clients[bad], "SMS.INI"), "rb") as handle:
        good = handle.read()
    broken = good.replace(b"[SMS]", b"[NotSMS]")
    if fault == "fails":
        with open(lab.host(clients[bad], "SMS.INI"), "wb") as handle:
            handle.write(broken)
        before[clients[bad]]["ini"] = broken
    else:
        _unreachable(lab, clients[bad], str(tmp_path / "inventory.yml"))
    reached = clients[:1] if wave == 1 else clients[:3]

    run = run_playbook(
        lab,
        extravars={
            "sms_rollout_waves": [1, 2, 3],
            "sms_rollout_max_fail_percentage": 20,
            "sms_rollout_on_failure": "rollback",
        },
    )
    assert run.rc != 0
    upgrades = run.results("sms_client_upgrade")
    # no later wave started; the waves that ran were upgraded (or failed), then restored
    assert set(upgrades) == set(reached), upgrades
    after = tier_snapshot(lab)
    assert after["site"] == before["site"], "Client.src is not byte-for-byte (and date) the original"
    for key in before:
        if "/" in key:
            assert {k: v[0] for k, v in after[key].items()} == {k: v[0] for k, v in before[key].items()}, key
    for client in clients:
        assert after[client] == before[client], client
    # the run says why, and that it rolled back
    failed = [
        str((e["event_data"].get("res") or {}).get("msg", ""))
        for e in run.events
        if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")
    ]
    said = " ".join(failed)
    assert "wave %d of 3 had 1 of %d client(s) failed or unreachable (%s)" % (wave, size, clients[bad]) in said, failed
    assert "The site server and the logon servers were rolled back" in said, failed
    if fault == "unreachable":
        assert "Not reached, so not rolled back (unreachable): %s." % clients[bad] in said, failed
    else:
        assert "the clients that had been reached hold their files as before the rollout" in said, failed
    # the lock is released, and a run after the cause is fixed converges
    assert not os.path.exists(lab.host("smssite", "SMS", "Hotfix", "rollout.lock"))
    with open(lab.host(clients[bad], "SMS.INI"), "wb") as handle:
        handle.write(good)
    lab.inventory = inventory
    again = run_playbook(lab, extravars={"sms_rollout_on_failure": "rollback"})
    assert again.rc == 0, again.stdout[-3000:]
    assert all(has_hotfix(lab.files(c, "MS", "SMS", "BIN"), lab_platform(lab, c)) for c in clients)


def test_with_rollback_asked_a_client_failed_within_the_threshold_fails_the_run_by_name(make_lab, run_playbook):
    lab = make_lab(clients=6, alpha=1, cycle=2, hung=0, no_smsrun=True)
    clients = lab.clients()
    with open(lab.host(clients[3], "SMS.INI"), "rb") as handle:
        broken = handle.read().replace(b"[SMS]", b"[NotSMS]")
    with open(lab.host(clients[3], "SMS.INI"), "wb") as handle:
        handle.write(broken)
    # waves client01 | client02-06: 1 of 5 failed = 20 %, not above the threshold
    run = run_playbook(
        lab,
        extravars={
            "sms_rollout_waves": [1, 5],
            "sms_rollout_max_fail_percentage": 20,
            "sms_rollout_on_failure": "rollback",
        },
    )
    assert run.rc != 0
    others = [c for c in clients if c != clients[3]]
    assert all(has_hotfix(lab.files(c, "MS", "SMS", "BIN"), lab_platform(lab, c)) for c in others)
    assert lab.sms_ini(clients[3]) == broken
    failed = [
        str((e["event_data"].get("res") or {}).get("msg", ""))
        for e in run.events
        if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")
    ]
    assert any(
        "1 client(s) failed or were unreachable in waves that stayed within" in m and clients[3] in m for m in failed
    ), failed
    assert not any("rolled back" in m for m in failed), failed
    assert not os.path.exists(lab.host("smssite", "SMS", "Hotfix", "rollout.lock"))
