"""Benchmark: one client wave of the Q216552 rollout over SSH, on the fleet.

The SSH variant of client_wave.py (docs/FLEET.md): every client is a host of
its own (network, mount and PID namespace, its own sshd), reached by SSH like
a real one. Root only. It measures, in the same run and over the same hosts:

1. builds a fleet with N clients in a temp dir (no SMSRUN32 stand-ins:
   processes are not what is measured) and runs the plan, site and logon
   tiers so every logon server serves the hotfix (not measured);
2. times the client tier (`playbooks/clients.yml`, one 100 % wave), counts per
   client the task results that ship a module (a counting callback) and the
   SSH connections and sessions each client's sshd accepted (its own log),
   and verifies every client's BIN on the client's own disk (SHA-256);
3. times the idempotent re-run the same way (changed=0 required);
4. times the floor: `ansible clients -m ansible.builtin.ping`, same counts;
5. prints the table; --save appends it to benchmarks/results/<date>-ssh_wave.json.

Each measured run gets a control-path folder of its own, so every SSH
connection it needs is a new one and shows in the hosts' logs. Any wrong
outcome exits with 1 (a fast wrong run is no result).

    .venv/bin/python benchmarks/ssh_wave.py [--clients 24] [--forks 25] [--keep] [--save]
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fleet"))

from smsfleet import fleet as fleetmod  # noqa: E402

MANIFEST = REPO / "hotfixes" / "Q216552" / "manifest.json"
CONTROLLER_ACTIONS = {
    "validate_argument_spec",
    "set_fact",
    "debug",
    "assert",
    "fail",
    "meta",
    "include_role",
    "include_tasks",
    "import_tasks",
    "include_vars",
}

# Counts every task result per host and action; written when the run ends.
COUNT_CALLBACK = '''
import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ssh_bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = defaultdict(lambda: defaultdict(int))

    def _add(self, result, key):
        counts = self._hosts[result._host.get_name()]
        counts[key] += 1
        if key in ("ok", "failed"):
            counts["action:" + result._task.action.split(".")[-1]] += 1
            if result._result.get("changed"):
                counts["changed"] += 1

    def v2_runner_on_ok(self, result):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["SSH_BENCH_COUNT_FILE"], "w", encoding="utf-8") as handle:
            json.dump({host: dict(c) for host, c in self._hosts.items()}, handle)
'''


class BenchError(Exception):
    pass


def tool(name):
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found beside {sys.executable} nor on PATH: use the checkout's .venv/bin/python")
    return found


def sshd_counts(fleet, host):
    """(connections accepted, sessions started) in the host's own sshd log."""
    with open(fleet.in_host(host, fleetmod.IN_HOST_SSHD_LOG), errors="replace") as handle:
        text = handle.read()
    return text.count("Accepted publickey for root"), text.count("Starting session:")


def measured(name, argv, env, work, fleet, clients):
    """Run argv; return wall and CPU seconds and per-client SSH counts."""
    env = dict(env, ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / ("cp-" + name)))
    before = {c: sshd_counts(fleet, c) for c in clients}
    log = work / f"{name}.log"
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    rc = os.waitstatus_to_exitcode(status)
    after = {c: sshd_counts(fleet, c) for c in clients}
    connections = [after[c][0] - before[c][0] for c in clients]
    sessions = [after[c][1] - before[c][1] for c in clients]
    return {
        "rc": rc,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "log": str(log),
        "ssh_connections_per_client": sum(connections) / len(clients),
        "ssh_connections_max": max(connections),
        "ssh_sessions_per_client": sum(sessions) / len(clients),
        "ssh_sessions_max": max(sessions),
    }


def tail(path, lines=30):
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def client_tier(name, work, env, fleet, clients, manifest, forks, expect_changed):
    count_file = work / f"{name}.counts.json"
    env = dict(
        env,
        SSH_BENCH_COUNT_FILE=str(count_file),
        ANSIBLE_CALLBACK_PLUGINS=f"{work / 'callbacks'}{os.pathsep}{REPO / 'plugins' / 'callback'}",
        ANSIBLE_CALLBACKS_ENABLED="sms.hotfix.sms_rollout_report,ssh_bench_count",
    )
    argv = [
        tool("ansible-playbook"),
        "-i",
        fleet.inventory,
        "playbooks/clients.yml",
        "--forks",
        str(forks),
        "-e",
        json.dumps({"sms_rollout_waves": ["100%"]}),
    ]
    result = measured(name, argv, env, work, fleet, clients)
    if result["rc"] != 0:
        raise BenchError(f"{name}: ansible-playbook exited {result['rc']}; log {result['log']}:\n{tail(result['log'])}")
    counts = json.loads(count_file.read_text())
    bad, runs = [], []
    for host in clients:
        c = counts.get(host, {})
        if c.get("failed") or c.get("unreachable") or not c:
            bad.append(f"{host}: {c or 'no result'}")
        runs.append(sum(n for k, n in c.items() if k.startswith("action:") and k[7:] not in CONTROLLER_ACTIONS))
        if bool(c.get("changed")) != expect_changed:
            bad.append(f"{host}: changed={c.get('changed', 0)}, expected {'a change' if expect_changed else 'none'}")
    if bad:
        raise BenchError(f"{name}: " + "; ".join(bad[:10]))
    verify(fleet, clients, manifest)
    result.update(module_runs_per_client=sum(runs) / len(runs), module_runs_max=max(runs))
    return result


def verify(fleet, clients, manifest):
    """Every client's BIN, read on the client's own disk, matches the manifest."""
    wrong = []
    for host in clients:
        bin_dir = Path(fleet.drive(host), "MS", "SMS", "BIN")
        on_disk = {p.name.lower(): p for p in bin_dir.iterdir() if p.is_file()}
        for entry in manifest["platforms"][fleet.host(host)["platform"]]["files"]:
            path = on_disk.get(entry["name"].lower())
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
            if digest != entry["sha256"]:
                wrong.append(f"{host}: {entry['name']} is {digest or 'missing'}")
    if wrong:
        raise BenchError("clients do not match the manifest: " + "; ".join(wrong[:10]))


def table(r):
    up, ping = r["upgrade"], r["ping"]
    cols = [
        ("clients", f"{r['clients']}"),
        ("forks", f"{r['forks']}"),
        ("upgrade wall s", f"{up['wall_s']:.1f}"),
        ("s/client", f"{up['wall_s'] / r['clients']:.3f}"),
        ("module runs/client", f"{up['module_runs_per_client']:g}"),
        ("SSH conn/client", f"{up['ssh_connections_per_client']:g}"),
        ("SSH sessions/client", f"{up['ssh_sessions_per_client']:g}"),
        ("no-op re-run s", f"{r['rerun']['wall_s']:.1f}"),
        ("ping s", f"{ping['wall_s']:.1f}"),
        ("ping conn/client", f"{ping['ssh_connections_per_client']:g}"),
        ("upgrade/ping", f"{up['wall_s'] / ping['wall_s']:.2f}"),
        ("CPU upgrade/ping", f"{up['cpu_s'] / ping['cpu_s']:.2f}"),
    ]
    widths = [max(len(h), len(v)) for h, v in cols]
    return "\n".join(
        (
            " | ".join(h.rjust(w) for (h, _value), w in zip(cols, widths)),
            "-+-".join("-" * w for w in widths),
            " | ".join(v.rjust(w) for (_head, v), w in zip(cols, widths)),
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", type=int, default=24, help="fleet clients (default 24)")
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="leave the fleet and logs up; print where")
    parser.add_argument("--save", action="store_true", help="append to benchmarks/results/<date>-ssh_wave.json")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or args.forks < 1:
        parser.error("--clients must be 1..200 and --forks at least 1")
    if os.geteuid() != 0:
        print("ssh_wave: the fleet needs root (namespaces, sshd); nothing measured", file=sys.stderr)
        return 2
    alpha = max(1, args.clients // 10) if args.clients > 1 else 0
    manifest = json.loads(MANIFEST.read_text())
    work = Path(tempfile.mkdtemp(prefix="sms-ssh-bench-"))
    (work / "callbacks").mkdir()
    (work / "callbacks" / "ssh_bench_count.py").write_text(COUNT_CALLBACK)
    fleet = fleetmod.Fleet(str(work / "fleet"))
    env = dict(
        os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", SMS_REPORT_DIR=str(work / "reports")
    )
    ok = False
    try:
        print(f"building a fleet with {args.clients} clients ({alpha} Alpha) in {fleet.root}", flush=True)
        started = time.monotonic()
        fleet.up(clients=args.clients, alpha=alpha, smsrun=False)
        print(f"  up in {time.monotonic() - started:.1f}s", flush=True)
        clients = fleet.clients
        prep = measured(
            "prepare",
            [
                tool("ansible-playbook"),
                "-i",
                fleet.inventory,
                "playbooks/plan.yml",
                "playbooks/site.yml",
                "playbooks/logon.yml",
            ],
            env,
            work,
            fleet,
            clients,
        )
        if prep["rc"] != 0:
            raise BenchError(f"preparation failed; log {prep['log']}:\n{tail(prep['log'])}")
        print(f"prepared (plan, site, logon; not measured) in {prep['wall_s']:.1f}s", flush=True)
        upgrade = client_tier("upgrade", work, env, fleet, clients, manifest, args.forks, True)
        print(f"upgrade: {upgrade['wall_s']:.1f}s, every client matches the manifest", flush=True)
        rerun = client_tier("rerun", work, env, fleet, clients, manifest, args.forks, False)
        print(f"re-run: {rerun['wall_s']:.1f}s, nothing changed", flush=True)
        ping = measured(
            "ping",
            [
                tool("ansible"),
                "-i",
                fleet.inventory,
                "clients",
                "-m",
                "ansible.builtin.ping",
                "--forks",
                str(args.forks),
                "-o",
            ],
            env,
            work,
            fleet,
            clients,
        )
        answered = set(re.findall(r"^(\S+) \| SUCCESS", Path(ping["log"]).read_text(errors="replace"), re.M))
        if ping["rc"] != 0 or answered != set(clients):
            raise BenchError(f"ping: rc {ping['rc']}, answered {len(answered)}/{len(clients)}; log {ping['log']}")
        print(f"ping: {ping['wall_s']:.1f}s", flush=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        result = {
            "benchmark": "ssh_wave",
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "clients": args.clients,
            "alpha": alpha,
            "forks": args.forks,
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "upgrade": upgrade,
            "rerun": rerun,
            "ping": ping,
        }
        print()
        print(table(result))
        print(f"load average (1 min) at the end: {result['load_avg_1m']:.1f} on {os.cpu_count()} CPUs")
        if args.save:
            results = REPO / "benchmarks" / "results"
            results.mkdir(parents=True, exist_ok=True)
            path = results / f"{result['date']}-ssh_wave.json"
            runs = json.loads(path.read_text())["runs"] if path.exists() else []
            fd, tmp = tempfile.mkstemp(prefix=".ssh_wave.", dir=results)
            with os.fdopen(fd, "w") as handle:
                json.dump({"benchmark": "ssh_wave", "runs": runs + [result]}, handle, indent=2)
            os.replace(tmp, path)
            print(f"saved: {path}")
        ok = True
        return 0
    except (BenchError, fleetmod.FleetError) as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(
                f"kept: fleet {fleet.root} (inventory {fleet.inventory}), logs in {work}; "
                f"tear down with: fleet/sms-fleet --root {fleet.root} down && rm -rf {work}"
            )
        else:
            try:
                fleet.down()
            except fleetmod.FleetError as exc:
                print(f"fleet down: {exc}", file=sys.stderr)
                ok = False
            if ok:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"logs left in {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
