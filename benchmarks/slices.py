# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the client tier as K concurrent AWX job slices.

AWX's job slicing is how the rollout scales past one controller: the
clients job template (job_slice_count K) runs as K jobs at once, each with
every K-th host of the inventory, on as many execution nodes as there are.
This measures what K buys on one machine, so an operator can size
job_slice_count:

1. builds a lab with N clients in a temp dir (no SMSRUN32 processes, none
   hung) and runs plan, site and logon once, so every logon server serves
   the hotfix (not measured); keeps a copy of every client as it was;
2. for each round and each K (interleaved: 1 2 4 1 2 4 ...), puts every
   client back as it was, then launches the "SMS Q216552 clients" job
   template of awx/assets.yml through the AWX rehearsal
   (tests/awx/awx_rehearsal.py: ansible-runner jobs with AWX's variables and
   AWX's slice of the inventory each) with job_slice_count=K, one 100% wave
   per slice by default;
3. records the wall time from launch to the last slice's end, the CPU
   seconds of all slice processes, the cores the rest of the machine kept
   busy meanwhile (noise: other work shares the cores), and, sampled every
   0.2 s, the peak of
   the summed PSS of every process of every slice (controllers, their forks
   and the module processes: the controller's memory on one machine) and
   the peak RSS of the largest single ansible-playbook controller;
4. checks every client's files against the manifest afterwards (a fast
   wrong run is no result) and prints a table; --save appends it as JSON to
   benchmarks/results/<UTC date>-slices.json.

    .venv/bin/python benchmarks/slices.py [--clients 1000] [--slices 1,2,4] [--rounds 1] [--keep] [--save]
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tests", "awx"), os.path.join(REPO, "tests"), os.path.join(REPO, "lab")]

from awx_rehearsal import Awx  # noqa: E402

LAB_TOOL = os.path.join(REPO, "lab", "sms-lab")
MANIFEST = os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")
TEMPLATE = "SMS Q216552 clients"


class TreeSampler:
    """Samples the process trees of running jobs: summed PSS (kB) of all of
    them, the largest ansible-playbook RSS, and the process count."""

    def __init__(self, interval=0.2):
        self.interval = interval
        self.peak_pss_kb = 0
        self.peak_controller_rss_kb = 0
        self.peak_processes = 0
        self._roots = []
        self._stop = threading.Event()
        self._thread = None

    def started(self, processes):
        self._roots = [p.pid for p in processes]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stopped(self):
        self._stop.set()
        if self._thread:
            self._thread.join()

    @staticmethod
    def _table():
        children = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry, "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        return children

    @staticmethod
    def _field(path, name):
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    if line.startswith(name):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def _sample(self):
        children = self._table()
        pss = count = 0
        controller = 0
        todo = list(self._roots)
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            count += 1
            pss += self._field("/proc/%d/smaps_rollup" % pid, b"Pss:")
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"ansible-playbook") for arg in argv[:2]):
                controller = max(controller, self._field("/proc/%d/status" % pid, b"VmRSS:"))
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_controller_rss_kb = max(self.peak_controller_rss_kb, controller)
        self.peak_processes = max(self.peak_processes, count)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)


def busy_seconds():
    """CPU seconds the whole machine has been busy (all processes)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / float(os.sysconf("SC_CLK_TCK"))


def reap(work):
    """Stop what an interrupted run left: every process whose command line
    names this run's folder (slices run in sessions of their own)."""
    import signal

    mine = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if work.encode() in handle.read():
                        mine.append(int(entry))
            except OSError:
                continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        time.sleep(3)


def lab(*args):
    subprocess.run([sys.executable, LAB_TOOL] + list(args), check=True, capture_output=True, text=True, timeout=1800)


def prepare_site(work, root, clients, env):
    """plan, site and logon once, so every logon server serves the hotfix."""
    log = os.path.join(work, "prepare.log")
    with open(log, "w") as handle:
        result = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                "-i",
                os.path.join(root, "inventory.yml"),
                "playbooks/plan.yml",
                "playbooks/site.yml",
                "playbooks/logon.yml",
            ],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    if result.returncode != 0:
        raise SystemExit("preparing the lab failed, see %s" % log)


def expected_hashes():
    with open(MANIFEST, encoding="utf-8") as handle:
        manifest = json.load(handle)
    return dict(
        (platform_name, dict((f["name"].lower(), f["sha256"]) for f in spec["files"]))
        for platform_name, spec in manifest["platforms"].items()
    )


def client_platforms(root):
    """client -> platform, from the lab's own spec (the benchmark is the world's side)."""
    with open(os.path.join(root, "lab.json"), encoding="utf-8") as handle:
        spec = json.load(handle)
    return dict((entry["name"], entry["platform"]) for entry in spec["clients"])


def verify(root, platforms, want):
    wrong = []
    for client, platform_name in platforms.items():
        folder = os.path.join(root, "hosts", client, "MS", "SMS", "BIN")
        found = {}
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as handle:
                found[name.lower()] = hashlib.sha256(handle.read()).hexdigest()
        if any(found.get(name) != digest for name, digest in want[platform_name].items()):
            wrong.append(client)
    return wrong


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--alpha", type=int, default=None, help="Alpha clients (default N/10)")
    parser.add_argument("--slices", default="1,2,4", help="job_slice_count values, comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--waves", default="100%", help="sms_rollout_waves per slice (survey form)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.slices.split(",")]
    alpha = args.alpha if args.alpha is not None else max(1, args.clients // 10)

    work = tempfile.mkdtemp(prefix="sms-slices-")
    root = os.path.join(work, "lab")
    lab(
        "build",
        "--root",
        root,
        "--clients",
        str(args.clients),
        "--alpha",
        str(alpha),
        "--hung",
        "0",
        "--no-smsrun",
        "--cycle",
        "2",
        "--idle-timeout",
        "7200",
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        SMS_REPORT_DIR=os.path.join(work, "r0"),
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    rows = []
    try:
        t0 = time.monotonic()
        prepare_site(work, root, args.clients, env)
        print("lab of %d clients staged and replicated in %.0fs" % (args.clients, time.monotonic() - t0))
        pristine = os.path.join(work, "pristine")
        platforms = client_platforms(root)
        for client in platforms:
            shutil.copytree(os.path.join(root, "hosts", client), os.path.join(pristine, client), symlinks=True)
        awx = Awx(
            os.path.join(work, "awx"),
            [os.path.join(root, "inventory.yml")],
            os.path.join(work, "reports"),
            job_timeout=7200,
        )
        sampler = TreeSampler()
        awx.watchers.append(sampler)
        want = expected_hashes()
        for round_number in range(1, args.rounds + 1):
            for k in counts:
                for client in platforms:
                    shutil.rmtree(os.path.join(root, "hosts", client))
                    shutil.copytree(os.path.join(pristine, client), os.path.join(root, "hosts", client), symlinks=True)
                sampler.peak_pss_kb = sampler.peak_controller_rss_kb = sampler.peak_processes = 0
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                busy = busy_seconds()
                start = time.monotonic()
                job = awx.launch_job_template(TEMPLATE, extra_vars={"sms_rollout_waves": args.waves}, job_slice_count=k)
                wall = time.monotonic() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                busy = busy_seconds() - busy
                jobs = job.jobs if hasattr(job, "jobs") else [job]
                failed = [j for j in jobs if j.status != "successful"]
                wrong = verify(root, platforms, want)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                row = {
                    "round": round_number,
                    "slices": k,
                    "jobs": len(jobs),
                    "wall_s": round(wall, 1),
                    "cpu_s": round(cpu, 1),
                    # cores other processes of the machine kept busy meanwhile: noise
                    "other_cores": round(max(0.0, busy - cpu) / wall, 2),
                    "s_per_client": round(wall / args.clients, 3),
                    "peak_pss_mb": round(sampler.peak_pss_kb / 1024.0, 1),
                    "peak_controller_rss_mb": round(sampler.peak_controller_rss_kb / 1024.0, 1),
                    "peak_processes": sampler.peak_processes,
                    "failed_jobs": len(failed),
                    "wrong_clients": len(wrong),
                }
                rows.append(row)
                print(
                    "K=%(slices)d: %(wall_s).1fs wall, %(cpu_s).1fs CPU, peak PSS %(peak_pss_mb).0f MB, "
                    "largest controller %(peak_controller_rss_mb).0f MB, %(peak_processes)d processes, "
                    "%(other_cores).2f cores busy elsewhere" % row
                )
                if failed or wrong:
                    print("FAILED: jobs %s, clients not upgraded: %s" % (failed, wrong[:20]))
                    return 1
    except BaseException:
        reap(work)
        raise
    finally:
        lab("down", "--root", root)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept %s" % work)

    print()
    header = ("K", "jobs", "wall s", "CPU s", "s/client", "speed-up", "peak PSS MB", "largest ctl MB", "procs", "noise")
    print("%-3s %5s %8s %8s %9s %9s %12s %15s %6s %6s" % header)
    base = dict((row["round"], row["wall_s"]) for row in rows if row["slices"] == counts[0])
    for row in rows:
        print(
            "%-3d %5d %8.1f %8.1f %9.3f %9.2f %12.1f %15.1f %6d %6.2f"
            % (
                row["slices"],
                row["jobs"],
                row["wall_s"],
                row["cpu_s"],
                row["s_per_client"],
                base[row["round"]] / row["wall_s"],
                row["peak_pss_mb"],
                row["peak_controller_rss_mb"],
                row["peak_processes"],
                row["other_cores"],
            )
        )
    result = {
        "benchmark": "slices",
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "clients": args.clients,
        "alpha": alpha,
        "waves": args.waves,
        "rows": rows,
    }
    if args.save:
        folder = os.path.join(REPO, "benchmarks", "results")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "%s-slices.json" % datetime.date.today().isoformat())
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")
        print("saved to %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
