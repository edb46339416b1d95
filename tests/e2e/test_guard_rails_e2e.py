"""Guard rails against an operator's ordinary habits (issue 22), end to end on the lab.

- `--limit`: the controller's checks run whatever the limit keeps; a limit
  that leaves out the site server (the lock, the site tier) is refused with
  the command that keeps it, and that command upgrades just the clients named.
- One holder, two live runs: the second is refused, naming the first; a dead
  run's lock is taken over by the re-run.
- A misspelt sms_* variable in the inventory is refused, naming the group.
- Run from another folder without the rollout's ansible.cfg: refused, saying how.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from sms_e2e import REPO, failures, full_listing

pytestmark = pytest.mark.slow


def _lab(make_lab):
    return make_lab(clients=3, alpha=1, hung=0, cycle=2, no_smsrun=True)


def _text(run):
    return " ".join(msg for _host, _task, msg in failures(run))


def test_a_limit_without_the_site_server_is_refused_then_the_command_it_gives_upgrades_just_those(
    make_lab, run_playbook
):
    lab = _lab(make_lab)
    before = full_listing(os.path.join(lab.root, "hosts"))
    run = run_playbook(lab, "rollout.yml", limit="client02")
    assert run.rc != 0
    text = _text(run)
    assert "--limit client02 leaves out the site server (smssite)" in text, text
    assert "--limit site_server,client02" in text, text
    assert full_listing(os.path.join(lab.root, "hosts")) == before, "a refused run changed a host"
    assert not run.results("sms_client_upgrade")
    # the closing line goes on with the limit that keeps the site server, not the refused one
    go_on = [line for line in run.stdout.splitlines() if line.startswith("go on")]
    assert go_on and "--limit site_server,client02" in go_on[-1], go_on

    # what the refusal said to run: the site server and client02, every check on the controller
    old = {c: lab.files(c, "MS", "SMS", "BIN") for c in lab.clients()}
    run = run_playbook(lab, "rollout.yml", limit="site_server,client02")
    assert run.rc == 0, run.stdout[-3000:]
    assert run.results("sms_rollout_check"), "the controller's checks did not run under --limit"
    upgraded = {c for c in lab.clients() if lab.files(c, "MS", "SMS", "BIN") != old[c]}
    assert upgraded == {"client02"}
    assert lab.ini_value("client02", "SetupPhase") is not None
    assert not os.path.exists(lab.host("smssite", "SMS", "Hotfix", "rollout.lock")), "the lock was not released"


def test_a_limited_client_run_still_checks_its_inputs(make_lab, run_playbook):
    # clients.yml --limit (an AWX canary node, a relaunch on failed hosts): the checks run on the controller
    lab = _lab(make_lab)
    before = full_listing(os.path.join(lab.root, "hosts"))
    run = run_playbook(lab, "playbooks/clients.yml", limit="client02", extravars={"sms_rollout_max_fail_percent": 5})
    assert run.rc != 0
    assert "Did you mean sms_rollout_max_fail_percentage?" in _text(run)
    assert full_listing(os.path.join(lab.root, "hosts")) == before
    assert not run.results("sms_client_upgrade")


def _write_lock(lab, run):
    folder = lab.host("smssite", "SMS", "Hotfix")
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    with open(os.path.join(folder, "rollout.lock"), "w") as handle:
        json.dump(
            {
                "holder": "tester@lab",
                "purpose": "rollout",
                "epoch": now,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "run": run,
            },
            handle,
        )


def _proc_start(pid):
    # the action plugin's own reading of /proc
    from ansible_collections.sms.hotfix.plugins.action.sms_rollout_lock import process_started

    return process_started(pid)


def test_a_second_live_run_of_the_same_holder_is_refused_and_a_dead_ones_lock_is_taken_over(make_lab, run_playbook):
    lab = _lab(make_lab)
    holder = {"sms_rollout_holder": "tester@lab"}
    first = subprocess.Popen(["sleep", "300"])  # stands in for the first run's ansible-playbook
    try:
        _write_lock(
            lab,
            {
                "controller": socket.gethostname(),
                "pid": first.pid,
                "pid_started": _proc_start(first.pid),
                "started": "2026-12-07T22:00:00Z",
            },
        )
        old = {c: lab.files(c, "MS", "SMS", "BIN") for c in lab.clients()}
        before = full_listing(os.path.join(lab.root, "hosts"))
        run = run_playbook(lab, "rollout.yml", extravars=holder)
        assert run.rc != 0
        text = _text(run)
        assert "another run that is still going on this controller: pid %d" % first.pid in text, text
        assert full_listing(os.path.join(lab.root, "hosts")) == before, "the second run changed a host"
    finally:
        first.kill()
        first.wait()
    # the same run, now dead (its pid gone): the re-run goes on where it stopped
    run = run_playbook(lab, "rollout.yml", extravars=holder)
    assert run.rc == 0, run.stdout[-3000:]
    assert all(lab.files(c, "MS", "SMS", "BIN") != old[c] for c in lab.clients())
    assert not os.path.exists(lab.host("smssite", "SMS", "Hotfix", "rollout.lock"))


def test_a_misspelt_group_variable_is_refused_naming_the_group(make_lab, run_playbook, tmp_path):
    lab = _lab(make_lab)
    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    group = inventory["all"]["children"]["clients"]["children"]["clients_x86"]
    group.setdefault("vars", {})["sms_client_stop_timout"] = 5
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    lab.inventory = str(path)
    before = full_listing(os.path.join(lab.root, "hosts"))
    run = run_playbook(lab, "rollout.yml")
    assert run.rc != 0
    text = _text(run)
    assert (
        "sms_client_stop_timout is not a variable the rollout knows (set in the inventory for group clients_x86)"
    ) in text, text
    assert "Did you mean sms_client_stop_timeout?" in text
    assert full_listing(os.path.join(lab.root, "hosts")) == before


def test_a_run_from_another_folder_without_the_settings_is_refused_saying_how(make_lab, tmp_path):
    lab = _lab(make_lab)
    before = full_listing(os.path.join(lab.root, "hosts"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["SMS_REPORT_DIR"] = str(tmp_path / "reports")
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            lab.inventory,
            os.path.join(REPO, "rollout.yml"),
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "the rollout's report callback (sms.hotfix.sms_rollout_report) is not enabled" in out, out[-3000:]
    assert "ANSIBLE_CONFIG=%s" % os.path.join(os.path.realpath(REPO), "ansible.cfg") in out
    assert full_listing(os.path.join(lab.root, "hosts")) == before
