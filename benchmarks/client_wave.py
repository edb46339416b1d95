#!/usr/bin/env python3
"""Benchmark: one client wave of the Q216552 rollout against the lab twin.

The client tier claims that one module run per client does the whole upgrade,
so a wave costs about what one `ansible.builtin.ping` over the same hosts
costs. This script measures that claim and checks the outcome:

1. builds a lab with N clients in a temp dir (no SMSRUN32 processes, none
   hung: processes are not what is measured) and runs the plan, site and logon
   tiers so every logon server serves the hotfix;
2. times the client tier alone (`playbooks/clients.yml`, one 100% wave), counts
   the task results per client, takes the peak RSS (the largest single process
   of the run: controller, fork or module), and verifies every client's BIN
   against the manifest (SHA-256);
3. times the second, idempotent run the same way (changed=0 required);
4. times the floor: `ansible clients -m ansible.builtin.ping` on the same hosts;
5. prints a table; with --save writes it as JSON to
   benchmarks/results/<date>-client_wave.json; tears the lab down unless --keep.

Any wrong outcome (a failed, skipped or unreachable client, a hash that is not
the manifest's, a change on the re-run) makes the benchmark fail with exit
code 1: a fast wrong run is no result.

Run from the checkout with its virtualenv:
    .venv/bin/python benchmarks/client_wave.py [--clients 200] [--forks 25] [--keep] [--save]
Standard library only (PyYAML, which ansible-core brings, reads the inventory).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_TOOL = REPO / "lab" / "sms-lab"
MANIFEST = REPO / "hotfixes" / "Q216552" / "manifest.json"
CLIENT_BIN = ("MS", "SMS", "BIN")

# Above this much CPU (in cores, averaged over a run) burnt by other processes,
# a run's wall time is flagged as noisy.
NOISE_CORES = 0.1

# Actions that run inside the controller's worker and ship no module to the
# host. Each still costs a task per host (a fork, templating, a result), so
# they count in "tasks/client" but not in "module runs/client".
CONTROLLER_ACTIONS = {
    name
    for short in ("validate_argument_spec", "set_fact", "debug", "assert", "fail", "meta",
                  "include_role", "include_tasks", "include_vars", "add_host", "group_by")
    for name in (short, "ansible.builtin." + short, "ansible.legacy." + short)
}

# A notification callback written into the temp dir and enabled beside the
# rollout's own: it counts every task result per host (ok/changed/failed, and
# per action; skips and unreachables apart) and writes the counts as JSON when
# the playbook ends.
COUNT_CALLBACK = '''
import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = defaultdict(lambda: defaultdict(int))

    def _add(self, result, key):
        counts = self._hosts[result._host.get_name()]
        counts[key] += 1
        if key in ("ok", "failed"):
            counts["action:" + result._task.action] += 1
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
        path = os.environ["BENCH_COUNT_FILE"]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({host: dict(c) for host, c in self._hosts.items()}, handle)
'''


class BenchError(Exception):
    """The benchmark cannot give a result (wrong outcome or a failed step)."""


def tool(name):
    """An Ansible command from this interpreter's virtualenv (else PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found beside {sys.executable} nor on PATH: run with the checkout's .venv/bin/python")
    return found


def busy_cpu_seconds():
    """CPU time the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is in user)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def run_measured(argv, env, log_path):
    """Run argv from the checkout; return (rc, wall s, peak RSS MB, CPU s, other CPU s).

    wait4() gives this command's own resource usage, descendants included:
    ru_maxrss is the largest resident set of any one process of its tree (the
    controller, its forks, the module processes), ru_utime + ru_stime the CPU
    time of all of them. "Other CPU s" is what the rest of the machine burnt
    meanwhile (busy time from /proc/stat minus ours): the run is CPU-bound,
    so anything else running inflates its wall time.
    """
    with open(log_path, "wb") as log:
        busy_before = busy_cpu_seconds()
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        busy_after = busy_cpu_seconds()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    other = None if busy_before is None or busy_after is None else max(0.0, busy_after - busy_before - cpu)
    return proc.returncode, wall, usage.ru_maxrss / 1024.0, cpu, other


def tail(path, lines=30):
    text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def base_env(work):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        SMS_REPORT_DIR=str(work / "reports"),
    )
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return env


def lab_clients(inventory_path):
    """{client: platform} from the lab's inventory (group var sms_client_platform)."""
    import yaml  # ansible-core's dependency, present in the virtualenv

    data = yaml.safe_load(Path(inventory_path).read_text(encoding="utf-8"))
    clients = {}

    def walk(group, platform_name):
        group = group or {}
        platform_name = (group.get("vars") or {}).get("sms_client_platform", platform_name)
        for host in group.get("hosts") or {}:
            clients[host] = platform_name
        for child in (group.get("children") or {}).values():
            walk(child, platform_name)

    walk(data["all"]["children"]["clients"], None)
    missing = sorted(h for h, p in clients.items() if not p)
    if missing:
        raise BenchError(f"{inventory_path}: no sms_client_platform for {', '.join(missing[:5])}")
    return clients


def verify_clients(lab_root, clients, manifest):
    """Every client's BIN holds each manifest file (any case) with its SHA-256."""
    wrong = []
    for host, plat in sorted(clients.items()):
        bin_dir = Path(lab_root, "hosts", host, *CLIENT_BIN)
        on_disk = {p.name.lower(): p for p in bin_dir.iterdir() if p.is_file()}
        for entry in manifest["platforms"][plat]["files"]:
            path = on_disk.get(entry["name"].lower())
            if path is None:
                wrong.append(f"{host}: {entry['name']} missing from {bin_dir}")
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != entry["sha256"]:
                wrong.append(f"{host}: {path} has SHA-256 {digest[:12]}…, manifest {entry['sha256'][:12]}…")
    if wrong:
        more = f" (and {len(wrong) - 10} more)" if len(wrong) > 10 else ""
        raise BenchError("clients do not match the manifest: " + "; ".join(wrong[:10]) + more)


def client_runs(count_file, clients, name, expect_changed):
    """Check the per-host counts of a client-tier run; return per-client module runs."""
    counts = json.loads(Path(count_file).read_text(encoding="utf-8"))
    bad = []
    tasks = []
    runs = []
    actions = {}
    changed_hosts = 0
    for host in sorted(clients):
        c = counts.get(host)
        if not c:
            bad.append(f"{host}: no task result")
            continue
        if c.get("failed") or c.get("unreachable"):
            bad.append(f"{host}: failed={c.get('failed', 0)} unreachable={c.get('unreachable', 0)}")
        tasks.append(c.get("ok", 0) + c.get("failed", 0))
        host_actions = {k[len("action:"):]: n for k, n in c.items() if k.startswith("action:")}
        runs.append(sum(n for a, n in host_actions.items() if a not in CONTROLLER_ACTIONS))
        for action, n in host_actions.items():
            actions[action] = actions.get(action, 0) + n
        changed_hosts += 1 if c.get("changed") else 0
        if not expect_changed and c.get("changed"):
            bad.append(f"{host}: changed on the idempotent run")
        if expect_changed and not c.get("changed"):
            bad.append(f"{host}: not changed by the upgrade (skipped={c.get('skipped', 0)})")
    if bad:
        raise BenchError(f"{name}: " + "; ".join(bad[:10]) + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""))
    return {
        "tasks_per_client": sum(tasks) / len(tasks),
        "module_runs_per_client": sum(runs) / len(runs),
        "module_runs_max": max(runs),
        "results_by_action": dict(sorted(actions.items())),
        "changed_clients": changed_hosts,
    }


def measure_client_tier(name, work, env, inventory, clients, manifest, forks, expect_changed):
    count_file = work / f"{name}.counts.json"
    env = dict(env)
    env.update(
        BENCH_COUNT_FILE=str(count_file),
        ANSIBLE_CALLBACK_PLUGINS=f"{work / 'callbacks'}{os.pathsep}{REPO / 'plugins' / 'callback'}",
        ANSIBLE_CALLBACKS_ENABLED="sms_rollout_report,bench_count",
    )
    argv = [
        tool("ansible-playbook"), "-i", str(inventory), "playbooks/clients.yml",
        "--forks", str(forks), "-e", json.dumps({"sms_rollout_waves": ["100%"]}),
    ]
    log = work / f"{name}.log"
    rc, wall, rss, cpu, other = run_measured(argv, env, log)
    if rc != 0:
        raise BenchError(f"{name}: ansible-playbook exited {rc}; log {log}:\n{tail(log)}")
    result = client_runs(count_file, clients, name, expect_changed)
    verify_clients(inventory.parent, clients, manifest)
    result.update(wall_s=wall, peak_rss_mb=rss, cpu_s=cpu, other_cpu_s=other, log=str(log))
    return result


def measure_ping(work, env, inventory, clients, forks):
    argv = [tool("ansible"), "-i", str(inventory), "clients", "-m", "ansible.builtin.ping", "--forks", str(forks), "-o"]
    log = work / "ping.log"
    rc, wall, rss, cpu, other = run_measured(argv, env, log)
    pinged = set(re.findall(r"^(\S+) \| SUCCESS", Path(log).read_text(encoding="utf-8", errors="replace"), re.M))
    if rc != 0 or pinged != set(clients):
        missing = sorted(set(clients) - pinged)
        raise BenchError(f"ping: rc={rc}, {len(missing)} clients without SUCCESS ({', '.join(missing[:5])}); log {log}:\n{tail(log)}")
    return {"wall_s": wall, "peak_rss_mb": rss, "cpu_s": cpu, "other_cpu_s": other, "log": str(log)}


def machine():
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ansible_version = subprocess.run(
            [tool("ansible"), "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (BenchError, IndexError, OSError):
        ansible_version = "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "ansible": ansible_version,
        "kernel": platform.release(),
    }


def table(r):
    cols = [
        ("clients", f"{r['clients']}"),
        ("forks", f"{r['forks']}"),
        ("upgrade wall s", f"{r['upgrade']['wall_s']:.1f}"),
        ("s/client", f"{r['upgrade']['wall_s'] / r['clients']:.3f}"),
        ("tasks/client", f"{r['upgrade']['tasks_per_client']:g}"),
        ("module runs/client", f"{r['upgrade']['module_runs_per_client']:g}"),
        ("no-op re-run s", f"{r['rerun']['wall_s']:.1f}"),
        ("ping floor s", f"{r['ping']['wall_s']:.1f}"),
        ("upgrade/ping", f"{r['upgrade']['wall_s'] / r['ping']['wall_s']:.2f}"),
        ("CPU upgrade/ping", f"{r['upgrade']['cpu_s'] / r['ping']['cpu_s']:.2f}"),
        ("peak RSS MB", f"{r['peak_rss_mb']:.0f}"),
    ]
    widths = [max(len(h), len(v)) for h, v in cols]
    head = " | ".join(h.rjust(w) for (h, _), w in zip(cols, widths))
    rule = "-+-".join("-" * w for w in widths)
    row = " | ".join(v.rjust(w) for (_, v), w in zip(cols, widths))
    return "\n".join((head, rule, row))


def save(result, results_dir):
    """Append this run to <results_dir>/<date>-client_wave.json (atomic rewrite)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result['date']}-client_wave.json"
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []
    runs.append(result)
    fd, tmp = tempfile.mkstemp(prefix=".client_wave.", dir=results_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"benchmark": "client_wave", "runs": runs}, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="lab clients (default 200)")
    parser.add_argument("--alpha", type=int, default=None, help="how many of them are Alpha (default: 1 in 10)")
    parser.add_argument("--forks", type=int, default=25, help="Ansible forks for every measured run (default 25)")
    parser.add_argument("--keep", action="store_true", help="leave the lab (and logs) up; print where")
    parser.add_argument("--save", action="store_true", help="write the result to benchmarks/results/<date>-client_wave.json")
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.forks < 1:
        parser.error("--clients and --forks must be at least 1")
    alpha = (max(1, args.clients // 10) if args.clients > 1 else 0) if args.alpha is None else args.alpha
    if not 0 <= alpha <= args.clients:
        parser.error("--alpha must be between 0 and --clients")

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    lab_root = work / "lab"
    inventory = lab_root / "inventory.yml"
    (work / "callbacks").mkdir()
    (work / "callbacks" / "bench_count.py").write_text(COUNT_CALLBACK, encoding="utf-8")
    env = base_env(work)
    ok = False
    try:
        print(f"building a lab with {args.clients} clients ({alpha} Alpha) in {lab_root}", flush=True)
        build = [sys.executable, str(LAB_TOOL), "build", "--root", str(lab_root), "--clients", str(args.clients),
                 "--alpha", str(alpha), "--no-smsrun", "--hung", "0", "--cycle", "5"]
        subprocess.run(build, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        clients = lab_clients(inventory)
        if len(clients) != args.clients:
            raise BenchError(f"{inventory}: {len(clients)} clients, expected {args.clients}")

        # Not measured: the site server stages the hotfix and every logon
        # server serves it, so the client tier has something to upgrade from.
        print("preparing: plan, site and logon tiers (not measured)", flush=True)
        log = work / "prepare.log"
        rc, wall, _, _, _ = run_measured(
            [tool("ansible-playbook"), "-i", str(inventory), "playbooks/plan.yml", "playbooks/site.yml", "playbooks/logon.yml"],
            env, log)
        if rc != 0:
            raise BenchError(f"preparation failed (rc={rc}); log {log}:\n{tail(log)}")
        print(f"  done in {wall:.1f}s", flush=True)

        print(f"measuring: client tier, {args.clients} clients, forks {args.forks}", flush=True)
        upgrade = measure_client_tier("upgrade", work, env, inventory, clients, manifest, args.forks, True)
        print(f"  {upgrade['wall_s']:.1f}s, every client matches the manifest", flush=True)
        print("measuring: the same, again (idempotent, changed=0)", flush=True)
        rerun = measure_client_tier("rerun", work, env, inventory, clients, manifest, args.forks, False)
        print(f"  {rerun['wall_s']:.1f}s, nothing changed", flush=True)
        print("measuring: floor, ansible.builtin.ping on the same clients", flush=True)
        ping = measure_ping(work, env, inventory, clients, args.forks)
        print(f"  {ping['wall_s']:.1f}s", flush=True)

        now = datetime.datetime.now(datetime.timezone.utc)
        result = {
            "benchmark": "client_wave",
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(),
            "clients": args.clients,
            "alpha": alpha,
            "forks": args.forks,
            "upgrade": upgrade,
            "rerun": rerun,
            "ping": ping,
            "seconds_per_client": upgrade["wall_s"] / args.clients,
            "ratio_upgrade_to_ping": upgrade["wall_s"] / ping["wall_s"],
            "cpu_ratio_upgrade_to_ping": upgrade["cpu_s"] / ping["cpu_s"],
            "peak_rss_mb": max(upgrade["peak_rss_mb"], rerun["peak_rss_mb"]),
            # The brief's figure: this process's children as a whole (the lab
            # build and the unmeasured preparation included).
            "rusage_children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        }
        for part in ("upgrade", "rerun", "ping"):
            if not args.keep:
                result[part].pop("log")
        print()
        print(table(result))
        print(f"CPU s (all processes): upgrade {upgrade['cpu_s']:.1f}, re-run {rerun['cpu_s']:.1f}, ping {ping['cpu_s']:.1f}")
        # The benchmark is CPU-bound: other work on the machine inflates the
        # wall times, so say how much there was (in cores, over each run).
        other = {part: result[part]["other_cpu_s"] for part in ("upgrade", "rerun", "ping")}
        if None not in other.values():
            cores = {part: other[part] / result[part]["wall_s"] for part in other}
            print("other processes meanwhile (cores busy): " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()))
            result["noisy"] = max(cores.values()) > NOISE_CORES
            if result["noisy"]:
                print(f"WARNING: other processes kept more than {NOISE_CORES} of a core busy during a run: "
                      "the wall times are not a clean result; compare CPU s, or run again on a quiet machine")
        if args.save:
            print(f"saved: {save(result, args.results_dir)}")
        ok = True
        return 0
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: lab {lab_root} (inventory {inventory}), logs and reports in {work}; "
                  f"tear down with: lab/sms-lab down --root {lab_root} && rm -rf {work}")
        else:
            subprocess.run([sys.executable, str(LAB_TOOL), "down", "--root", str(lab_root)], cwd=REPO,
                           stdout=subprocess.DEVNULL, check=False)
            if ok:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"logs left in {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
