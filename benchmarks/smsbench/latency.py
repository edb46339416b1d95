"""Replication notice: from the end of a Maintenance Manager pass to the
controller knowing that a logon server has converged.

Its own small lab (5 logon servers: the site server and four more). Each
round: the benchmark gives System.map a new timestamp, runs
playbooks/replication_round.yml (baselines forgotten and recorded again, then
the project's wait on every server at once), and, once the wait task has
started, asks the twin for a pass at a random moment so passes land at every
phase of the waiters' polling. The pass's end is the twin's own record
(run/mm.state.json `last_pass_finished`); the controller knowing is the time
the bench_count callback sees each server's result. A sample counts only when
that server had polled before the pass landed (polls >= 2); others are
reported as early. The pass comes 1-2 s after the last waiter's module
process started (the counting interpreter's log), so it lands at any phase
of the 1 s polling whatever the machine's load.

The waiters' CPU is read in the two long rounds, while every server waits and
nothing lands: CPU ticks of every process of the tree (controller, workers,
waiters) and of the waiters' module processes, twice, 8 s apart.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from pathlib import Path

from . import measure
from .lab import PLATFORM_DIRS, REPO, BenchError, Lab, lab_cmd, prepare, tool
from .scenarios import CALLBACKS, PROJECT_CALLBACK

ROUND_PLAYBOOK = REPO / "benchmarks" / "playbooks" / "replication_round.yml"
WAIT_ACTION = "sms_logon_wait"


def percentile(values, fraction):
    """Nearest-rank percentile (p95 of 100 samples is the 95th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def read_timeline(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mm_state(lab):
    path = lab.root / "run" / "mm.state.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


class Driver(threading.Thread):
    """Drives one round from outside: once the wait task has started and every
    waiter's module process has started (the counting interpreter's log), it
    waits `delay` seconds and asks the twin for a pass. In long rounds it
    first reads the CPU ticks of the whole tree and of the waiters twice,
    which gives what waiting costs while nothing else happens."""

    def __init__(self, lab, timeline, delay, waiters, deadline, sample_cpu):
        super().__init__(daemon=True)
        self.lab, self.timeline, self.delay, self.waiters = lab, timeline, delay, waiters
        self.deadline, self.sample_cpu = deadline, sample_cpu
        self.root = None
        self.wait_started = None
        self.waiters_started = None
        self.requested = None
        self.cpu = None
        self.error = None
        self.cancel = threading.Event()

    def runs_of(self):
        runs = self.lab.module_runs()
        return sum(per_host.get(WAIT_ACTION, 0) for per_host in runs.values())

    def run(self):
        before = None
        while not self.cancel.is_set() and time.monotonic() < self.deadline:
            if self.wait_started is None:
                for record in read_timeline(self.timeline):
                    if record.get("event") == "task_start" and "wait" in record.get("task", "").lower():
                        self.wait_started = record["time"]
                        # Module runs of earlier tasks have all started (their results are in).
                        before = self.runs_of()
            elif self.runs_of() >= before + self.waiters:
                self.waiters_started = time.time()
                break
            time.sleep(0.02)
        if self.waiters_started is None:
            if not self.cancel.is_set():
                self.error = "the waiters never started (wait task seen: %s)" % (self.wait_started is not None)
            return
        if self.sample_cpu and self.root:
            self.cpu = self.sample(1.5, self.delay - 0.5)
        pause = self.waiters_started + self.delay - time.time()
        if pause > 0 and self.cancel.wait(pause):
            return
        self.requested = time.time()
        done = lab_cmd("pass-now", "--root", self.lab.root, "--no-wait", check=False)
        if done.returncode != 0:
            self.error = "pass-now failed: %s" % done.stderr.strip()

    def sample(self, first, last):
        def ticks():
            pids = measure.tree(self.root)
            waiting = [p for p in pids if "AnsiballZ_%s" % WAIT_ACTION in measure.cmdline(p)]
            return (
                sum(measure.cpu_ticks(p) for p in pids),
                sum(measure.cpu_ticks(p) for p in waiting),
                len(waiting),
                time.monotonic(),
            )

        if self.cancel.wait(max(0.0, self.waiters_started + first - time.time())):
            return None
        a = ticks()
        if self.cancel.wait(max(0.0, self.waiters_started + last - time.time())):
            return None
        b = ticks()
        hz = os.sysconf("SC_CLK_TCK")
        span = b[3] - a[3]
        return {
            "seconds": span,
            "tree_cores": (b[0] - a[0]) / hz / span,
            "waiter_cores": (b[1] - a[1]) / hz / span,
            "waiter_processes": min(a[2], b[2]),
        }


def run_one(argv, env, log):
    return measure.run([measure.Command(argv=argv, env=env, log=str(log), cwd=str(REPO))], sample_interval=5)


def hotfix_files_on_servers(lab, servers):
    """The manifest's files as each logon server holds them now: {path: (bytes, mtime_ns)}."""
    held = {}
    for server in servers:
        for platform, spec in lab.manifest["platforms"].items():
            folder = lab.host(server, "SMS", "Logon.srv", PLATFORM_DIRS[platform])
            on_disk = {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}
            for entry in spec["files"]:
                path = on_disk.get(entry["name"].lower())
                if path is not None:
                    held[path] = (path.read_bytes(), path.stat().st_mtime_ns)
    return held


def put_back(held):
    """Make every logon server stale again: its pre-hotfix files back (atomic, dates kept)."""
    for path, (data, mtime_ns) in held.items():
        tmp = path.with_name("." + path.name + ".bench")
        tmp.write_bytes(data)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)


def run_round(lab, work, index, delay, forks, servers, originals, sample_cpu=False):
    timeline = work / ("round%02d.timeline.jsonl" % index)
    # Each round is a real replication: the servers lack the hotfix files and
    # the copy-list bump until the pass lands (a server whose files are already
    # current at its baseline waits for nothing).
    put_back(originals)
    before = mm_state(lab)
    system_map = lab.host("smssite", "SMS", "System.map")
    now_ns = time.time_ns()
    os.utime(system_map, ns=(now_ns, now_ns))
    env = dict(os.environ)
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="%s,bench_count" % PROJECT_CALLBACK,
        BENCH_TIMELINE_FILE=str(timeline),
        BENCH_TIMELINE_ACTIONS=WAIT_ACTION,
        BENCH_COUNT_FILE=str(work / ("round%02d.counts.json" % index)),
        SMS_REPORT_DIR=str(work / "reports"),
    )
    env.update(lab.interpreter_env())
    argv = [
        tool("ansible-playbook"),
        "-i",
        str(lab.inventory),
        str(ROUND_PLAYBOOK),
        "--forks",
        str(forks),
        # A lagging server fails after this; no round should come near it.
        "-e",
        json.dumps(
            dict(lab.interpreter_vars(), sms_replication_timeout=120, sms_hotfix_manifest=str(lab.manifest_path))
        ),
    ]
    lab.clear_module_log()
    trigger = Driver(lab, timeline, delay, len(servers), time.monotonic() + 120, sample_cpu)

    def started(pids):
        trigger.root = pids[0]
        trigger.start()

    log = work / ("round%02d.log" % index)
    usage = measure.run(
        [measure.Command(argv=argv, env=env, log=str(log), cwd=str(REPO))], sample_interval=5, on_start=started
    )
    trigger.cancel.set()
    trigger.join()
    if usage.rcs != [0]:
        raise BenchError("replication round %d: ansible-playbook exited %s; log %s" % (index, usage.rcs, log))
    if trigger.error:
        raise BenchError("replication round %d: %s; log %s" % (index, trigger.error, log))
    after = mm_state(lab)
    if after.get("passes", 0) != before.get("passes", 0) + 1:
        raise BenchError(
            "replication round %d: %s passes of the twin, expected exactly 1"
            % (index, after.get("passes", 0) - before.get("passes", 0))
        )
    if after.get("copy_list_version") != (before.get("copy_list_version") or 0) + 1:
        raise BenchError("replication round %d: the pass did not bump CopyListVersion" % index)
    landed = after["last_pass_finished"]
    results = [r for r in read_timeline(timeline) if r.get("event") == "result" and "wait" in r.get("task", "").lower()]
    by_host = {r["host"]: r for r in results}
    if sorted(by_host) != sorted(servers):
        raise BenchError("replication round %d: results for %s, expected %s" % (index, sorted(by_host), servers))
    samples, early = [], 0
    for host, result in sorted(by_host.items()):
        if result["status"] != "ok" or not result.get("converged"):
            raise BenchError("replication round %d: %s did not converge (%s)" % (index, host, result))
        version = lab.server_version(host)
        if version is None or int(version) != after["copy_list_version"]:
            raise BenchError(
                "replication round %d: %s has CopyListVersion %s, the twin %s"
                % (index, host, version, after["copy_list_version"])
            )
        if (result.get("polls") or 0) < 2 and (result.get("slices") or 1) < 2:
            early += 1
            continue
        samples.append(
            {"round": index, "server": host, "latency_s": result["time"] - landed, "polls": result.get("polls")}
        )
    return {
        "round": index,
        "delay_s": delay,
        "wall_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "pass_landed_after_waiters_started_s": landed - trigger.waiters_started,
        "samples": samples,
        "early": early,
        "waiting_cpu": trigger.cpu,
    }


def measure_replication(work, passes=20, forks=25, long_rounds=2, long_delay=10.0, seed=None, say=print):
    """Run the rounds; return the latency figures (all samples included)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lab = Lab.build(work / "lab", work, clients=5, alpha=1, logon_servers=4, idle_timeout=1800)
    try:
        servers = sorted(p.name for p in (lab.root / "hosts").iterdir() if (p / "SMS" / "Logon.srv").is_dir())
        if len(servers) != 5:
            raise BenchError("replication lab has %d logon servers, expected 5" % len(servers))
        originals = hotfix_files_on_servers(lab, servers)
        if len(originals) != 5 * sum(len(spec["files"]) for spec in lab.manifest["platforms"].values()):
            raise BenchError(
                "replication lab: %d pre-hotfix files on the logon servers, expected each "
                "server to hold every manifest file" % len(originals)
            )
        say("  replication: preparing a lab with 5 logon servers (not measured)")
        prepare(lab, work / "prepare.log", run_one)
        # Long rounds first and last so drift in the machine's load touches both ends.
        # A pass 1-2 s after the waiters' processes started: after their first
        # poll, at a uniformly spread phase of their 1 s polling.
        delays = [long_delay] + [rng.uniform(1.0, 2.0) for _pass in range(passes)] + [long_delay] * (long_rounds - 1)
        rounds = []
        for index, delay in enumerate(delays, 1):
            rounds.append(run_round(lab, work, index, delay, forks, servers, originals, sample_cpu=delay == long_delay))
            say(
                "  replication round %d/%d: pass %.2fs after the waiters started, noticed after %s"
                % (
                    index,
                    len(delays),
                    rounds[-1]["pass_landed_after_waiters_started_s"],
                    ", ".join("%.2f" % s["latency_s"] for s in rounds[-1]["samples"]) or "(early)",
                )
            )
        latencies = [s["latency_s"] for r in rounds for s in r["samples"]]
        cpu = [r["waiting_cpu"] for r in rounds if r["waiting_cpu"]]
        return {
            "logon_servers": len(servers),
            "passes": len(rounds),
            "samples": len(latencies),
            "early_samples": sum(r["early"] for r in rounds),
            "p50_s": percentile(latencies, 0.50),
            "p95_s": percentile(latencies, 0.95),
            "max_s": max(latencies) if latencies else None,
            "min_s": min(latencies) if latencies else None,
            "over_0_5_s": sum(1 for x in latencies if x > 0.5),
            # While every server waits and nothing lands: the whole tree (controller,
            # workers, waiters) and the waiters' own module processes, per waiter.
            "wait_cpu_cores": statistics.fmean(c["tree_cores"] for c in cpu) if cpu else None,
            "wait_cpu_cores_per_waiter": (
                statistics.fmean(c["waiter_cores"] for c in cpu) / len(servers) if cpu else None
            ),
            "rounds": rounds,
        }
    finally:
        lab.down()
