"""Benchmark of the Q216552 client tier against the lab twin (issue 12).

In one run, at each size given, over the same freshly prepared lab (site
staged, logon servers converged; clients put back to their pristine copy
before every run that needs it), interleaving the scenarios round by round
(A B C D A B C D ...) so the machine's drifting load touches each alike:

  clients.yml     the project's client tier as shipped
  no-op re-run    the same again over upgraded clients (nothing may change)
  ping floor      one ansible.builtin.ping per client, same waves and forks
  ping floor, bytecode
                  the same, ping's zip given bytecode as the client modules' is
  rollout.yml     (only when named) every tier over the prepared site
  naive playbook  builtin modules as an operator would write them (benchmarks/playbooks/)

then the replication-notice latency on a lab with 5 logon servers. Every run
is checked (hashes, dates, SMS.INI byte for byte, task results): a fast wrong
run is no result. Prints a table and writes it as JSON.

    .venv/bin/python benchmarks/bench.py                      # 200 clients (make bench)
    .venv/bin/python benchmarks/bench.py --clients 100 300 --repeat 3
    make bench CLIENTS="100 300 1000"

Standard library only (PyYAML, which ansible-core brings, reads the inventory).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smsbench import measure  # noqa: E402
from smsbench.lab import REPO, BenchError, Lab, prepare, smsrun_pids, tool  # noqa: E402
from smsbench.latency import measure_replication  # noqa: E402
from smsbench.scenarios import (  # noqa: E402
    Context,
    NaivePlaybook,
    ProjectClients,
    default_scenarios,
    optional_scenarios,
)

DEFAULT_WAVES = [1, "10%", "50%", "100%"]
# Other processes keeping more than this much of a core busy make a run's
# wall time suspect (the runs are CPU-bound on 2 cores).
NOISE_CORES = 0.1


def say(text=""):
    print(text, flush=True)


def run_one(argv, env, log, interval=5.0):
    return measure.run([measure.Command(argv=argv, env=env, log=str(log), cwd=str(REPO))], sample_interval=interval)


def tail(path, lines=25):
    try:
        return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Bench:
    """One size: its lab, the lab's state, and the runs recorded so far."""

    def __init__(self, lab, ctx, scenarios, sample_interval):
        self.lab = lab
        self.ctx = ctx
        self.scenarios = scenarios
        self.sample_interval = sample_interval
        self.state = "fresh"
        self.runs = {s.name: [] for s in scenarios}

    def bring_to(self, needs):
        """Put the lab in the state a scenario starts from (not measured)."""
        if needs == "fresh" and self.state != "fresh":
            self.lab.reset()
            self.state = "fresh"
        elif needs == "upgraded" and self.state != "upgraded":
            if self.state != "fresh":
                self.lab.reset()
            self.execute(ProjectClients(), "setup-upgrade")
            self.state = "upgraded"

    def execute(self, scenario, tag):
        """One measured, checked run of a scenario; returns its record."""
        self.lab.clear_module_log()
        commands = scenario.commands(self.ctx, tag)
        usage = measure.run(commands, sample_interval=self.sample_interval)
        if any(rc != 0 for rc in usage.rcs):
            raise BenchError(
                "%s: ansible-playbook exited %s; log %s:\n%s"
                % (scenario.name, usage.rcs, usage.logs[0], tail(usage.logs[0]))
            )
        clients = scenario.clients(self.ctx)
        counts = scenario.counts(self.ctx, tag, len(commands))
        scenario.check(self.ctx, counts, clients)
        modules = self.lab.module_runs()
        tasks = [sum(counts.get(c, {}).get(k, 0) for k in ("ok", "failed", "skipped", "unreachable")) for c in clients]
        module_runs = [sum(modules.get(c, {}).values()) for c in clients]
        by_action, by_module = {}, {}
        for c in clients:
            for key, value in counts.get(c, {}).items():
                if key.startswith("action:"):
                    by_action[key[7:]] = by_action.get(key[7:], 0) + value
            for module, value in modules.get(c, {}).items():
                by_module[module] = by_module.get(module, 0) + value
        other = usage.other_cpu_s / usage.wall_s if usage.other_cpu_s is not None else None
        return {
            "clients": len(clients),
            "wall_s": usage.wall_s,
            "cpu_s": usage.cpu_s,
            "controller_peak_rss_mb": usage.controller_peak_rss_mb,
            "tree_max_rss_mb": usage.tree_max_rss_mb,
            "tree_peak_pss_mb": usage.tree_peak_pss_mb,
            "pss_samples": usage.pss_samples,
            "other_cores": other,
            "sampler_cpu_s": usage.sampler_cpu_s,
            "tasks_per_client": sum(tasks) / len(tasks),
            "tasks_max": max(tasks),
            "module_runs_per_client": sum(module_runs) / len(module_runs),
            "module_runs_max": max(module_runs),
            "module_runs_min": min(module_runs),
            "results_by_action": dict(sorted(by_action.items())),
            "module_runs_by_module": dict(sorted(by_module.items())),
            "clients_changed": sum(1 for c in clients if counts.get(c, {}).get("changed")),
        }

    def round(self, number):
        for scenario in self.scenarios:
            self.bring_to(scenario.needs)
            tag = "r%d-%s" % (number, scenario.name.replace(" ", "-").replace(".", "-"))
            record = self.execute(scenario, tag)
            record["round"] = number
            self.runs[scenario.name].append(record)
            self.state = scenario.leaves or self.state
            say(
                "  round %d  %-15s wall %7.1fs  CPU %7.1fs  tasks/client %.2f  module runs/client %.2f  "
                "other %.2f cores"
                % (
                    number,
                    scenario.name,
                    record["wall_s"],
                    record["cpu_s"],
                    record["tasks_per_client"],
                    record["module_runs_per_client"],
                    record["other_cores"] or 0.0,
                )
            )


def paired_ratio(runs, base_runs, key):
    """Median over rounds of (per-client cost ÷ the base's per-client cost in the same round)."""
    base = {r["round"]: r for r in base_runs}
    ratios = [
        (r[key] / r["clients"]) / (base[r["round"]][key] / base[r["round"]]["clients"])
        for r in runs
        if r["round"] in base and base[r["round"]][key] > 0
    ]
    return statistics.median(ratios) if ratios else None


def summarize(runs, all_runs, floor, naive, floor_bytecode=None):
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    clients = runs[0]["clients"]
    summary = {
        "clients": clients,
        "runs": len(runs),
        "wall_min_s": min(walls),
        "wall_median_s": statistics.median(walls),
        "cpu_median_s": statistics.median(cpus),
        "cpu_min_s": min(cpus),
        "s_per_client": statistics.median(walls) / clients,
        "cpu_s_per_client": statistics.median(cpus) / clients,
        "tasks_per_client": max(r["tasks_per_client"] for r in runs),
        "module_runs_per_client": max(r["module_runs_per_client"] for r in runs),
        "module_runs_max": max(r["module_runs_max"] for r in runs),
        "controller_peak_rss_mb": max(r["controller_peak_rss_mb"] for r in runs),
        "tree_max_rss_mb": max(r["tree_max_rss_mb"] for r in runs),
        "tree_peak_pss_mb": max(r["tree_peak_pss_mb"] for r in runs),
        "other_cores_max": max((r["other_cores"] or 0.0) for r in runs),
    }
    for label, base in (("floor", floor), ("naive", naive), ("floor_bytecode", floor_bytecode)):
        if base and all_runs.get(base):
            summary["cpu_ratio_to_" + label] = paired_ratio(runs, all_runs[base], "cpu_s")
            summary["wall_ratio_to_" + label] = paired_ratio(runs, all_runs[base], "wall_s")
    return summary


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(size):
    cols = [
        ("scenario", "<", lambda n, s: n),
        ("clients", ">", lambda n, s: str(s["clients"])),
        ("runs", ">", lambda n, s: str(s["runs"])),
        ("wall min s", ">", lambda n, s: fmt(s["wall_min_s"], ".1f")),
        ("wall med s", ">", lambda n, s: fmt(s["wall_median_s"], ".1f")),
        ("CPU s", ">", lambda n, s: fmt(s["cpu_median_s"], ".1f")),
        ("s/client", ">", lambda n, s: fmt(s["s_per_client"], ".3f")),
        ("CPU ×floor", ">", lambda n, s: fmt(s.get("cpu_ratio_to_floor"), ".2f")),
        ("wall ×floor", ">", lambda n, s: fmt(s.get("wall_ratio_to_floor"), ".2f")),
        ("CPU ×floor bc", ">", lambda n, s: fmt(s.get("cpu_ratio_to_floor_bytecode"), ".2f")),
        ("CPU ×naive", ">", lambda n, s: fmt(s.get("cpu_ratio_to_naive"), ".2f")),
        ("tasks/client", ">", lambda n, s: fmt(s["tasks_per_client"], ".2f")),
        ("modules/client", ">", lambda n, s: fmt(s["module_runs_per_client"], ".2f")),
        ("ctrl RSS MB", ">", lambda n, s: fmt(s["controller_peak_rss_mb"], ".0f")),
        ("tree PSS MB", ">", lambda n, s: fmt(s["tree_peak_pss_mb"], ".0f")),
        ("other cores", ">", lambda n, s: fmt(s["other_cores_max"], ".2f")),
    ]
    rows = [[get(name, summary) for _head, _align, get in cols] for name, summary in size["summary"].items()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _align, _get) in enumerate(cols)]
    out = [
        " | ".join(format(h, a + str(w)) for (h, a, _get), w in zip(cols, widths)),
        "-+-".join("-" * w for w in widths),
    ]
    out += [" | ".join(format(v, a + str(w)) for v, (_head, a, _get), w in zip(r, cols, widths)) for r in rows]
    return "\n".join(out)


def markdown_table(result):
    """The README's table: one row per size and scenario."""
    head = (
        "| clients | scenario | runs | wall min s | wall median s | CPU s | s/client | CPU ×floor | wall ×floor "
        "| CPU ×floor, bytecode | CPU ×naive | tasks/client | module runs/client | controller peak RSS MB | tree peak PSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for size in result["sizes"]:
        for name, s in size["summary"].items():
            lines.append(
                "| %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                % (
                    size["clients"],
                    name if s["clients"] == size["clients"] else "%s (%d clients)" % (name, s["clients"]),
                    s["runs"],
                    fmt(s["wall_min_s"], ".1f"),
                    fmt(s["wall_median_s"], ".1f"),
                    fmt(s["cpu_median_s"], ".1f"),
                    fmt(s["s_per_client"], ".3f"),
                    fmt(s.get("cpu_ratio_to_floor"), ".2f"),
                    fmt(s.get("wall_ratio_to_floor"), ".2f"),
                    fmt(s.get("cpu_ratio_to_floor_bytecode"), ".2f"),
                    fmt(s.get("cpu_ratio_to_naive"), ".2f"),
                    fmt(s["tasks_per_client"], ".2f"),
                    fmt(s["module_runs_per_client"], ".2f"),
                    fmt(s["controller_peak_rss_mb"], ".0f"),
                    fmt(s["tree_peak_pss_mb"], ".0f"),
                )
            )
    return "\n".join(lines)


def machine():
    model = ""
    mem = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    ansible_version = subprocess.run(
        [tool("ansible"), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": ansible_version[0] if ansible_version else "unknown",
        "checkout": git or "unknown",
        "load_before": os.getloadavg(),
    }


def check_naive_on_lab(work, forks, waves):
    """The naive playbook must be right before it is timed: a 12-client lab with
    running SMSRUN32 (one client hung), the full check, and every client left
    with exactly one SMSRUN32 running."""
    lab = Lab.build(work / "naive-lab", work / "naive", clients=12, alpha=2, smsrun=True, hung=1)
    try:
        prepare(lab, work / "naive-prepare.log", run_one)
        lab.snapshot()
        hung = [c for c in lab.clients if len(smsrun_pids(lab, c)) > 1]
        if not hung:
            raise BenchError("naive check: the lab has no hung client to cure")
        ctx = Context(lab, work / "naive", forks, waves, naive_clients=None)
        bench = Bench(lab, ctx, [NaivePlaybook()], sample_interval=5)
        record = bench.execute(NaivePlaybook(), "naive-check")
        deadline = time.monotonic() + 10
        while True:
            wrong = {c: len(smsrun_pids(lab, c)) for c in lab.clients}
            wrong = {c: n for c, n in wrong.items() if n != 1}
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if wrong:
            raise BenchError("naive check: SMSRUN32 instances per client after the run: %s" % wrong)
        return {
            "clients": 12,
            "hung_before": hung,
            "tasks_per_client": record["tasks_per_client"],
            "module_runs_per_client": record["module_runs_per_client"],
            "wall_s": record["wall_s"],
        }
    finally:
        lab.down()


def write_json(result, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name, dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    os.replace(tmp, path)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--clients",
        type=int,
        nargs="*",
        default=[200],
        metavar="N",
        help="lab sizes to measure, one lab each (default 200; none: the replication latency only)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (default 3)")
    parser.add_argument("--forks", type=int, default=25, help="forks of every run (default 25)")
    parser.add_argument(
        "--waves",
        type=json.loads,
        default=DEFAULT_WAVES,
        help='serial waves as JSON (default \'[1, "10%%", "50%%", "100%%"]\')',
    )
    parser.add_argument(
        "--naive-clients",
        type=int,
        default=100,
        help="the naive playbook runs on the first M clients only (default 100; 0: all)",
    )
    parser.add_argument(
        "--scenario", action="append", default=None, help="run only these scenarios (repeatable; default all)"
    )
    parser.add_argument(
        "--latency-passes",
        type=int,
        default=20,
        help="Maintenance Manager passes for the replication latency (default 20; 0 skips it)",
    )
    parser.add_argument(
        "--skip-naive-check",
        action="store_true",
        help="do not check the naive playbook on a small lab first (it is still checked after every run)",
    )
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds between PSS samples (default 1)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the result (default benchmarks/results/<UTC time>-bench.json)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, counts, labs torn down)")
    args = parser.parse_args(argv)
    if min(args.clients, default=2) < 2 or args.repeat < 1 or args.forks < 1:
        parser.error("--clients must be at least 2, --repeat and --forks at least 1")
    return args


class Stopped(Exception):
    """SIGTERM or SIGINT: stop, but tear the labs down on the way out."""


def stop(signum, _frame):
    raise Stopped("stopped by signal %d" % signum)


def main(argv=None):
    args = parse(argv)
    # A background job ignores SIGINT and SIGTERM would skip every `finally`:
    # both become an exception, so the runs are killed and the labs torn down.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scenarios = default_scenarios()
    if args.scenario:
        known = {s.name: s for s in scenarios + optional_scenarios()}
        unknown = [n for n in args.scenario if n not in known]
        if unknown:
            say("unknown scenario(s) %s; known: %s" % (", ".join(unknown), ", ".join(known)))
            return 2
        scenarios = [known[n] for n in args.scenario]
    names = [s.name for s in scenarios]
    floor = "ping floor" if "ping floor" in names else None
    floor_bytecode = "ping floor, bytecode" if "ping floor, bytecode" in names else None
    naive = "naive playbook" if "naive playbook" in names else None
    started = datetime.datetime.now(datetime.timezone.utc)
    out = args.json or REPO / "benchmarks" / "results" / ("%s-bench.json" % started.strftime("%Y%m%dT%H%M%SZ"))
    work = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    result = {
        "benchmark": "sms-bench",
        "issue": 12,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "settings": {
            "repeat": args.repeat,
            "forks": args.forks,
            "waves": args.waves,
            "naive_clients": args.naive_clients,
            "scenarios": names,
        },
        "sizes": [],
    }
    ok = False
    try:
        if naive and args.clients and not args.skip_naive_check:
            say("checking the naive playbook on a 12-client lab with SMSRUN32 running (one hung)")
            result["naive_check"] = check_naive_on_lab(work, args.forks, args.waves)
            say(
                "  correct: files, dates, SMS.INI, one SMSRUN32 per client (%.1f tasks, %.1f module runs per client)"
                % (result["naive_check"]["tasks_per_client"], result["naive_check"]["module_runs_per_client"])
            )
        for clients in args.clients:
            alpha = max(1, clients // 10)
            say(
                "size %d: building the lab (%d Alpha), preparing site and logon servers (not measured)"
                % (clients, alpha)
            )
            lab = Lab.build(work / ("lab%d" % clients), work / ("w%d" % clients), clients=clients, alpha=alpha)
            try:
                took = prepare(lab, work / ("prepare%d.log" % clients), run_one)
                t0 = time.monotonic()
                lab.snapshot()
                say("  prepared in %.1fs, snapshot in %.1fs" % (took, time.monotonic() - t0))
                naive_clients = min(args.naive_clients or clients, clients)
                ctx = Context(lab, work / ("w%d" % clients), args.forks, args.waves, naive_clients)
                bench = Bench(lab, ctx, scenarios, args.sample_interval)
                for number in range(1, args.repeat + 1):
                    bench.round(number)
                summary = {
                    name: summarize(runs, bench.runs, floor, naive, floor_bytecode) for name, runs in bench.runs.items()
                }
                size = {"clients": clients, "alpha": alpha, "summary": summary, "runs": bench.runs}
                result["sizes"].append(size)
                say()
                say(table(size))
                say()
                write_json(result, out)
            finally:
                lab.down()
        if args.latency_passes:
            say("replication notice: %d passes, 5 logon servers" % args.latency_passes)
            rep = measure_replication(work / "replication", passes=args.latency_passes, forks=args.forks, say=say)
            result["replication"] = rep
            say(
                "  p50 %.3fs  p95 %.3fs  max %.3fs over %d samples (%d early, not counted); %d over 0.5s; "
                "waiting costs %.3f cores (%.3f per waiter)"
                % (
                    rep["p50_s"],
                    rep["p95_s"],
                    rep["max_s"],
                    rep["samples"],
                    rep["early_samples"],
                    rep["over_0_5_s"],
                    rep["wait_cpu_cores"] or 0,
                    rep["wait_cpu_cores_per_waiter"] or 0,
                )
            )
        result["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        noisy = [
            (size["clients"], name)
            for size in result["sizes"]
            for name, s in size["summary"].items()
            if s["other_cores_max"] > NOISE_CORES
        ]
        result["noisy"] = bool(noisy)
        if noisy:
            say(
                "WARNING: other processes kept more than %.1f of a core busy during some runs (%s): compare the "
                "CPU columns; wall times are not clean" % (NOISE_CORES, ", ".join("%d %s" % n for n in noisy[:6]))
            )
        write_json(result, out)
        say("markdown:\n" + markdown_table(result))
        say("written: %s" % out)
        ok = True
        return 0
    except (BenchError, Stopped, subprocess.CalledProcessError) as exc:
        say("BENCHMARK FAILED: %s" % exc)
        return 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say("work folder kept: %s" % work)


if __name__ == "__main__":
    sys.exit(main())
