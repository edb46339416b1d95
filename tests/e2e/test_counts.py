"""What an upgrade wave costs, counted (issue 12): exactly one task and one
module run per client. A task per host costs about as much as a module run,
so these counts are what keeps the client tier near one ping per client.

Tasks per host come from ansible-runner's events (every task started on the
host, skipped ones included); module runs from the interpreter the modules
run with, a link per host to a small script that notes the host and the
module file, then execs the real Python. No timing here: speed lives in
benchmarks/bench.py.
"""

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from sms_e2e import REPO, load_manifest_json

pytestmark = pytest.mark.slow

HOTFIX = load_manifest_json()
WANT = {
    platform: {f["name"].lower(): f["sha256"] for f in spec["files"]} for platform, spec in HOTFIX["platforms"].items()
}

COUNTING_INTERPRETER = """#!/bin/sh
printf '%s %s\\n' "${0##*/}" "${1##*/}" >> "$COUNT_MODULE_LOG"
exec "$COUNT_PYTHON" "$@"
"""
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def counting_interpreters(folder, hosts):
    folder.mkdir()
    script = folder / ".count"
    script.write_text(COUNTING_INTERPRETER)
    script.chmod(0o755)
    for host in hosts:
        (folder / host).symlink_to(script.name)
    return str(folder) + "/{{ inventory_hostname }}"


def module_runs(log):
    runs = defaultdict(Counter)
    if os.path.exists(log):
        with open(log) as handle:
            for line in handle:
                host, _sep, module_file = line.strip().partition(" ")
                runs[host][module_file.replace("AnsiballZ_", "").rsplit(".py", 1)[0]] += 1
    return runs


def platform_of(lab, client):
    alpha_part = open(lab.inventory).read().split("clients_alpha:", 1)[1]
    return "alpha" if "%s:" % client in alpha_part else "x86"


def server_of(lab, client):
    for line in lab.sms_ini(client).decode("latin-1").split("\r\n"):
        if line.lower().startswith("current_logon_server="):
            return line.split("\\")[2].lower()
    raise AssertionError("no logon server in %s's SMS.INI" % client)


def test_an_upgrade_wave_costs_one_task_and_one_module_run_per_client(make_lab, run_playbook, tmp_path):
    lab = make_lab(clients=12, hung=1)
    clients = lab.clients()
    for playbook in ("playbooks/site.yml", "playbooks/logon.yml"):
        assert run_playbook(lab, playbook).rc == 0, playbook
    log = str(tmp_path / "modules.log")
    interpreter = counting_interpreters(tmp_path / "interpreters", clients)

    run = run_playbook(
        lab,
        "playbooks/clients.yml",
        extravars={"ansible_python_interpreter": interpreter},
        envvars={"COUNT_MODULE_LOG": log, "COUNT_PYTHON": sys.executable},
    )

    assert run.rc == 0, run.stdout[-3000:]
    started = defaultdict(list)
    finished = defaultdict(list)
    for event in run.events:
        data = event.get("event_data", {})
        if data.get("host") not in clients:
            continue
        if event["event"] == "runner_on_start":
            started[data["host"]].append("%s (%s)" % (data.get("task"), data.get("task_action")))
        elif event["event"] in RESULT_EVENTS:
            changed = (data.get("res") or {}).get("changed")
            finished[data["host"]].append((data.get("task_action"), event["event"], changed))
    # Every client: one task, the module, changed; nothing else started on it
    # (no argument-spec validation per host). The wave gate's tasks are once
    # per wave, on the controller (run_once; the gate before the wave, the
    # settings every client of the wave shares, and the ones after it that act
    # only with sms_rollout_on_failure=rollback):
    # Ansible reports them on the wave's first client, so they are counted per
    # wave, never per client.
    gates = {}
    for client in clients:
        gates[client] = [t for t in started[client] if t.startswith("Wave gate |")]
        started[client] = [t for t in started[client] if not t.startswith("Wave gate |")]
        finished[client] = [
            f for f in finished[client] if f[0].split(".")[-1] not in ("sms_wave_gate", "set_fact", "add_host", "meta")
        ]
    per_wave = [tasks for tasks in gates.values() if tasks]
    assert len(per_wave) == 4, "the gate's tasks on 4 clients (one per wave of 1, 10%%, 50%%, 100%%): %s" % gates
    assert all(tasks == per_wave[0] for tasks in per_wave) and len(set(per_wave[0])) == len(per_wave[0]), gates
    assert len(per_wave[0]) <= 5 and any("(sms.hotfix.sms_wave_gate)" in t for t in per_wave[0]), per_wave[0]
    extra = {c: started[c] for c in clients if len(started[c]) != 1}
    assert extra == {}, "clients with other than exactly one task started on them: %s" % extra
    for client in clients:
        assert [(a.split(".")[-1], e, ch) for a, e, ch in finished[client]] == [
            ("sms_client_upgrade", "runner_on_ok", True)
        ], client
    runs = module_runs(log)
    assert {c: dict(runs.get(c, {})) for c in clients} == {c: {"sms_client_upgrade": 1} for c in clients}

    # The run did the upgrade, so the counts are of a real one.
    for client in clients:
        files = lab.files(client, "MS", "SMS", "BIN")
        assert {n: files.get(n) for n in WANT[platform_of(lab, client)]} == WANT[platform_of(lab, client)], client
        assert lab.ini_value(client, "SetupPhase") == "installed", client
        assert lab.ini_value(client, "CopyListVersion") == str(lab.copy_list_version(server_of(lab, client))), client


def test_a_platform_the_rollout_leaves_out_costs_no_module_run_and_its_clients_stay_untouched(
    make_lab, run_playbook, tmp_path
):
    # sms_rollout_platforms=[x86]: the site stages x86 only, and the Alpha
    # clients are skipped by the client task's condition, before anything
    # about them is templated or run (no module run).
    lab = make_lab(clients=6, alpha=2)
    clients = lab.clients()
    alpha = [c for c in clients if platform_of(lab, c) == "alpha"]
    x86 = [c for c in clients if c not in alpha]
    assert len(alpha) == 2 and len(x86) == 4
    before = {c: lab.snapshot(c) for c in alpha}
    for playbook in ("playbooks/site.yml", "playbooks/logon.yml"):
        assert run_playbook(lab, playbook, extravars={"sms_rollout_platforms": ["x86"]}).rc == 0, playbook
    log = str(tmp_path / "modules.log")
    interpreter = counting_interpreters(tmp_path / "interpreters", clients)

    run = run_playbook(
        lab,
        "playbooks/clients.yml",
        extravars={"sms_rollout_platforms": ["x86"], "ansible_python_interpreter": interpreter},
        envvars={"COUNT_MODULE_LOG": log, "COUNT_PYTHON": sys.executable},
    )

    assert run.rc == 0, run.stdout[-3000:]
    results = run.results("sms_client_upgrade")
    for client in alpha:
        # (ansible-runner's skipped events carry no result: the report below
        # shows the callback read why)
        assert results[client]["_event"] == "runner_on_skipped", (client, results[client])
        assert lab.snapshot(client) == before[client], client
    for client in x86:
        assert results[client]["_event"] == "runner_on_ok" and results[client]["changed"] is True, client
        files = lab.files(client, "MS", "SMS", "BIN")
        assert {n: files.get(n) for n in WANT["x86"]} == WANT["x86"], client
    runs = module_runs(log)
    assert {c: dict(runs.get(c, {})) for c in clients} == dict(
        [(c, {"sms_client_upgrade": 1}) for c in x86] + [(c, {}) for c in alpha]
    )
    entries = dict((e["host"], (e["status"], e["detail"])) for e in run.report()["clients"])
    assert entries == dict([(c, ("done", "upgraded")) for c in x86] + [(c, ("skipped", "platform")) for c in alpha])


NOTING_CALLBACK = """
import json, os
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "note_invocations"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result):
        data = getattr(result, "result", None) or result._result
        if result._task.action.endswith("sms_client_upgrade") and "invocation" in data:
            folder = os.environ["SMS_NOTED_INVOCATIONS"]
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, result._host.name), "w") as handle:
                json.dump(data["invocation"], handle, default=str)

    v2_runner_on_skipped = v2_runner_on_ok  # (a client the module finds it must wait for is reported skipped)
"""


def test_each_client_module_is_handed_the_settings_its_own_host_holds(make_lab, tmp_path):
    # The client task names every setting as "{{ sms_client_<option> }}":
    # each client's module must get the values its own host holds (here as
    # host variables of a second inventory source), the role's defaults
    # otherwise, and its own name. (A fresh lab: the arguments are templated
    # before the module runs, whatever it then finds; the logon servers
    # being stale, it skips.) ansible-core 2.20 and later return a module's
    # arguments only when asked (inject_invocation).
    lab = make_lab(clients=3)
    clients = lab.clients()
    host_vars = tmp_path / "host_vars.yml"
    host_vars.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        clients[1]: {"sms_client_stop_timeout": 7, "sms_client_graceful_signals": ["INT"]},
                        clients[2]: {"sms_client_running_policy": "defer", "sms_client_cpu_window": 0.5},
                    }
                }
            }
        )
    )

    # clients.yml as shipped; each module's result as callbacks get it, noted
    # by a callback of the test's own (a registered result has no invocation
    # on 2.19)
    callbacks = tmp_path / "callbacks"
    callbacks.mkdir()
    (callbacks / "note_invocations.py").write_text(NOTING_CALLBACK)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        SMS_REPORT_DIR=str(tmp_path / "reports"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_INJECT_INVOCATION="1",
        ANSIBLE_CALLBACK_PLUGINS=str(callbacks),
        ANSIBLE_CALLBACKS_ENABLED="sms.hotfix.sms_rollout_report,note_invocations",
        SMS_NOTED_INVOCATIONS=str(tmp_path / "noted"),
    )
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    done = subprocess.run(
        [playbook, "-i", lab.inventory, "-i", str(host_vars), "playbooks/clients.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "noted")) == clients
    handed = {c: json.loads((tmp_path / "noted" / c).read_text())["module_args"] for c in clients}
    wanted = {
        clients[0]: (10, ["TERM"], "restart", 1.0),
        clients[1]: (7, ["INT"], "restart", 1.0),
        clients[2]: (10, ["TERM"], "defer", 0.5),
    }
    assert {
        c: (a["stop_timeout"], a["graceful_signals"], a["running_policy"], a["cpu_window"]) for c, a in handed.items()
    } == wanted
    for client in clients:
        assert handed[client]["client_name"] == client
        assert handed[client]["drive_root"] == lab.host(client), handed[client]
