# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the client tier over SMB beside the local connection and the ping floor (issue 14).

Root only (Samba in a network namespace). One small lab site is built with
the SMB tests' own helper (tests/smb/smbsite.py: the lab twin's folders served
by one smbd, an address and the real share names per host) and prepared once
over SMB (plan, site and logon tiers: site staged, logon servers converged;
not measured). Then, in rounds interleaved A B C A B C, over the same client
folders:

A. `playbooks/clients.yml` over SMB (`sms_access: smb`, the modules run on
   the controller and reach each client's C$ and its logon server's SMS_SHR);
B. the same playbook over the local connection (the lab's own inventory);
C. the floor: `benchmarks/playbooks/ping_floor.yml`, one ping per client.

Before A and B every client is put back to its pristine bytes and dates. After
B every client holds the manifest's files (SHA-256, date) and SMS.INI says
installed. After A every client is as the product promises over SMB, where no
process table can be read: deferred to Client Setup (SetupPhase=verify_files,
every other SMS.INI line and every BIN file as before). Any other outcome ends
the benchmark with BENCHMARK FAILED and exit code 1.

Per run: wall time; CPU seconds of the command's process tree (os.wait4) and
of smbd (its processes' own and reaped children's CPU, read from /proc); task
results and module runs per client; SMB sessions and TCP connections per
client, from Samba's authentication audit lines (one per session, naming the
server address the session was made to and the controller's port).

    .venv/bin/python benchmarks/smb_wave.py [--clients 12] [--rounds 2] [--forks 25] [--keep]
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
for _path in (BENCH, REPO / "tests", REPO / "tests" / "smb"):
    sys.path.insert(0, str(_path))

import samba as sambamod  # noqa: E402
import smbsite  # noqa: E402
from ansible.release import __version__ as ansible_core  # noqa: E402
from smsbench.lab import CLIENT_BIN, BenchError, Lab, ini_value, sha256, tool  # noqa: E402
from smsbench.measure import Command, run as measure  # noqa: E402

# Not the SMB tests' network and account: `make test` may run them at the same
# time, and a second veth on their subnet, or their teardown deleting a shared
# user, would break both.
BENCH_NET = "10.213.207"
BENCH_USER = "smsrollbench"
PROJECT_CALLBACK = "sms.hotfix.sms_rollout_report"
SCENARIOS = ("clients.yml over SMB", "clients.yml local", "ping floor")
# One line per SMB session set up (Samba's auth_audit at level 3): the
# controller's port tells TCP connections apart, the local address the host.
AUTH_LINE = re.compile(
    r"^Auth: \[SMB2.*status \[NT_STATUS_OK\].*remote host \[ipv4:[0-9.]+:(\d+)\]"
    r".*local host \[ipv4:([0-9.]+):445\]",
    re.M,
)


def isolate():
    """Point the SMB helper at the benchmark's own subnet and account (module globals it reads at start)."""
    sambamod.NET = BENCH_NET
    sambamod.USER = smbsite.USER = BENCH_USER


def audit_sessions(samba):
    """Make every new smbd child log its session setups: the config is re-read on each connection."""
    conf = Path(samba.workdir, "smb.conf")
    text = conf.read_text()
    if "auth_audit:3" not in text:
        fd, tmp = tempfile.mkstemp(prefix=".smb.conf.", dir=samba.workdir)
        with os.fdopen(fd, "w") as handle:
            handle.write(text.replace("[global]\n", "[global]\n  log level = 1 auth_audit:3\n", 1))
        os.replace(tmp, conf)


def proc_cpu(pid, reaped=False):
    """utime + stime of a process (and of its waited-for children) in seconds, from /proc."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def smbd_pids(samba):
    done = sambamod.run("ip", "netns", "pids", samba.ns, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def smbd_cpu(samba, idle, settle=5.0):
    """CPU of every smbd, once the per-connection children of the last run have exited (at most `settle` s).

    `idle` is how many smbd processes run with no client (the daemon and its helpers)."""
    deadline = time.monotonic() + settle
    while len(smbd_pids(samba)) > idle and time.monotonic() < deadline:
        time.sleep(0.1)
    main = samba.proc.pid
    return sum(proc_cpu(pid, reaped=pid == main) for pid in smbd_pids(samba))


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.site = None
        self.lab = None
        self.addresses = {}
        self.idle_smbd = 0

    # -- setup (not measured) ------------------------------------------------------------------
    def build(self):
        alpha = max(1, self.args.clients // 10) if self.args.clients > 1 else 0
        self.site = smbsite.SmbSite(self.work / "site", clients=self.args.clients, alpha=alpha)
        self.site.start()
        audit_sessions(self.site.samba)
        self.idle_smbd = len(smbd_pids(self.site.samba))
        self.addresses = self.site.samba.addresses
        self.lab = Lab(self.site.lab.root, self.work)
        self.lab.clients = self.lab.read_clients()
        if len(self.lab.clients) != self.args.clients:
            raise BenchError(
                "%s: %d clients, expected %d" % (self.lab.inventory, len(self.lab.clients), self.args.clients)
            )
        self.lab.write_interpreters()
        return alpha

    def prepare(self):
        argv = [
            tool("ansible-playbook"),
            "-i",
            self.site.inventory,
            "playbooks/plan.yml",
            "playbooks/site.yml",
            "playbooks/logon.yml",
        ]
        usage = measure([Command(argv, self.env(), str(self.work / "prepare.log"), str(REPO))])
        if usage.rcs != [0]:
            raise BenchError("preparing the site over SMB failed (rc=%s); log %s" % (usage.rcs, usage.logs[0]))
        self.lab.snapshot()
        return usage.wall_s

    def env(self, **extra):
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            SMS_REPORT_DIR=str(self.work / "reports"),
            **self.lab.interpreter_env(),
            **extra,
        )
        env.pop("ANSIBLE_STDOUT_CALLBACK", None)
        return env

    # -- one measured run -------------------------------------------------------------------------
    def run(self, scenario, tag):
        if scenario != "ping floor":
            self.lab.reset()
        inventory = self.site.inventory if scenario != "clients.yml local" else str(self.lab.inventory)
        playbook = "benchmarks/playbooks/ping_floor.yml" if scenario == "ping floor" else "playbooks/clients.yml"
        callbacks = "bench_count" if scenario == "ping floor" else PROJECT_CALLBACK + ",bench_count"
        counts_file = self.work / (tag + ".counts.json")
        extravars = dict(self.lab.interpreter_vars(), sms_rollout_waves=self.args.waves)
        argv = [
            tool("ansible-playbook"),
            "-i",
            inventory,
            playbook,
            "--forks",
            str(self.args.forks),
            "-e",
            json.dumps(extravars),
        ]
        env = self.env(
            BENCH_COUNT_FILE=str(counts_file),
            ANSIBLE_CALLBACKS_ENABLED=callbacks,
            ANSIBLE_CALLBACK_PLUGINS="%s%s%s" % (BENCH / "callbacks", os.pathsep, REPO / "plugins" / "callback"),
        )
        self.lab.clear_module_log()
        samba = self.site.samba
        log_path = Path(samba.workdir, "smbd.stdout")
        log_from = log_path.stat().st_size
        smbd_before = smbd_cpu(samba, self.idle_smbd)
        usage = measure(
            [Command(argv, env, str(self.work / (tag + ".log")), str(REPO))], sample_interval=self.args.sample_interval
        )
        smbd_s = smbd_cpu(samba, self.idle_smbd) - smbd_before
        with open(log_path, "rb") as handle:
            handle.seek(log_from)
            audit = handle.read().decode("utf-8", "replace")
        if usage.rcs != [0]:
            raise BenchError("%s: ansible-playbook exited %s; log %s" % (tag, usage.rcs, usage.logs[0]))
        counts = json.loads(counts_file.read_text())
        self.check(scenario, tag, counts)
        clients = list(self.lab.clients)
        runs = self.lab.module_runs()
        sessions = {}
        for port, address in AUTH_LINE.findall(audit):
            sessions.setdefault(address, []).append(port)
        own = [self.addresses[c] for c in clients]
        n = len(clients)
        return {
            "scenario": scenario,
            "tag": tag,
            "wall_s": usage.wall_s,
            "cpu_s": usage.cpu_s,
            "smbd_cpu_s": smbd_s,
            "other_cores": (usage.other_cpu_s / usage.wall_s) if usage.other_cpu_s is not None else None,
            "controller_peak_rss_mb": usage.controller_peak_rss_mb,
            "tree_peak_pss_mb": usage.tree_peak_pss_mb,
            "tasks_per_client": sum(
                sum(counts.get(c, {}).get(k, 0) for k in ("ok", "failed", "skipped", "unreachable")) for c in clients
            )
            / n,
            "module_runs_per_client": sum(sum(runs.get(c, {}).values()) for c in clients) / n,
            "module_runs": runs,
            "smb_sessions_per_client": sum(len(sessions.get(a, [])) for a in own) / n,
            "smb_connections_per_client": sum(len(set(sessions.get(a, []))) for a in own) / n,
            "smb_sessions_max": max(len(sessions.get(a, [])) for a in own),
            "smb_sessions_to_servers": sum(len(v) for a, v in sessions.items() if a not in own),
            "smb_sessions_by_address": {a: len(v) for a, v in sorted(sessions.items())},
            "log": usage.logs[0],
        }

    # -- outcome checks ------------------------------------------------------------------------------
    def check(self, scenario, tag, counts):
        bad = []
        for host in self.lab.clients:
            c = counts.get(host, {})
            if not c or c.get("failed") or c.get("unreachable"):
                bad.append("%s: %s" % (host, c or "no result"))
            elif scenario == "ping floor" and c.get("ok") != 1:
                bad.append("%s: %d ping results" % (host, c.get("ok", 0)))
            elif scenario != "ping floor" and not c.get("changed"):
                bad.append("%s: not changed (skipped=%d)" % (host, c.get("skipped", 0)))
        if bad:
            raise BenchError("%s: %s" % (tag, "; ".join(bad[:10])))
        if scenario == "clients.yml local":
            self.lab.check_upgraded(list(self.lab.clients))
        elif scenario == "clients.yml over SMB":
            self.check_deferred(list(self.lab.clients))

    def check_deferred(self, clients):
        """Over SMB: SetupPhase=verify_files, every other SMS.INI byte and every BIN file (bytes, date) as before."""
        wrong = []
        for name in clients:
            before = (self.lab.pristine / name / "SMS.INI").read_bytes()
            after = self.lab.host(name, "SMS.INI").read_bytes()
            if ini_value(after, "Local", "SetupPhase") != "verify_files":
                wrong.append("%s: SetupPhase %s" % (name, ini_value(after, "Local", "SetupPhase")))
            old, new = before.split(b"\r\n"), after.split(b"\r\n")
            if len(old) != len(new) or any(
                a != b and not a.lower().startswith(b"setupphase=") for a, b in zip(old, new)
            ):
                wrong.append("%s: SMS.INI changed beyond SetupPhase" % name)
            pristine_bin = self.lab.pristine.joinpath(name, *CLIENT_BIN)
            now_bin = self.lab.host(name, *CLIENT_BIN)
            names = sorted(os.listdir(now_bin))
            if names != sorted(os.listdir(pristine_bin)):
                wrong.append("%s: BIN holds %s" % (name, ", ".join(names)))
                continue
            for file in names:
                a, b = pristine_bin / file, now_bin / file
                if sha256(a) != sha256(b) or int(a.stat().st_mtime) != int(b.stat().st_mtime):
                    wrong.append("%s: BIN %s changed" % (name, file))
        if wrong:
            more = " (and %d more)" % (len(wrong) - 10) if len(wrong) > 10 else ""
            raise BenchError(
                "clients not deferred to Client Setup as promised over SMB: " + "; ".join(wrong[:10]) + more
            )

    def stop(self):
        return self.site.stop() if self.site is not None else []


def summarize(runs, clients):
    """Medians per scenario; the ×floor ratios are per round, against that round's floor."""
    rows = []
    floors = {r["round"]: r for r in runs if r["scenario"] == "ping floor"}
    locals_ = {r["round"]: r for r in runs if r["scenario"] == "clients.yml local"}
    for scenario in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        if not mine:
            continue

        def med(key, rs=mine):
            return statistics.median(r[key] for r in rs)

        def ratio(key, base, rs=mine):
            pairs = [(r, base.get(r["round"])) for r in rs]
            return (
                statistics.median(r[key] / b[key] for r, b in pairs if b and b[key])
                if all(b and b[key] for _r, b in pairs)
                else None
            )

        total = [r["cpu_s"] + r["smbd_cpu_s"] for r in mine]
        rows.append(
            {
                "scenario": scenario,
                "runs": len(mine),
                "wall_min_s": min(r["wall_s"] for r in mine),
                "wall_med_s": med("wall_s"),
                "cpu_s": med("cpu_s"),
                "smbd_cpu_s": med("smbd_cpu_s"),
                "cpu_total_s": statistics.median(total),
                "s_per_client": med("wall_s") / clients,
                "cpu_ms_per_client": 1000.0 * statistics.median(total) / clients,
                "cpu_x_floor": ratio("cpu_s", floors),
                "wall_x_floor": ratio("wall_s", floors),
                "cpu_x_local": ratio("cpu_s", locals_),
                "wall_x_local": ratio("wall_s", locals_),
                "tasks_per_client": med("tasks_per_client"),
                "module_runs_per_client": med("module_runs_per_client"),
                "smb_sessions_per_client": med("smb_sessions_per_client"),
                "smb_connections_per_client": med("smb_connections_per_client"),
                "smb_sessions_to_servers": med("smb_sessions_to_servers"),
                "controller_peak_rss_mb": max(r["controller_peak_rss_mb"] for r in mine),
                "other_cores_max": max((r["other_cores"] or 0.0) for r in mine),
            }
        )
    return rows


def markdown(rows):
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    head = [
        "scenario",
        "runs",
        "wall min s",
        "wall med s",
        "CPU s (tree)",
        "smbd CPU s",
        "s/client",
        "CPU ms/client (tree+smbd)",
        "CPU ×floor",
        "wall ×floor",
        "CPU ×local",
        "wall ×local",
        "tasks/client",
        "module runs/client",
        "SMB sessions/client",
        "SMB conn/client",
        "SMB sessions to logon servers",
        "ctrl RSS MB",
        "other cores",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["scenario"],
            str(r["runs"]),
            num(r["wall_min_s"], ".1f"),
            num(r["wall_med_s"], ".1f"),
            num(r["cpu_s"], ".1f"),
            num(r["smbd_cpu_s"], ".2f"),
            num(r["s_per_client"], ".3f"),
            num(r["cpu_ms_per_client"], ".0f"),
            num(r["cpu_x_floor"], ".2f"),
            num(r["wall_x_floor"], ".2f"),
            num(r["cpu_x_local"], ".2f"),
            num(r["wall_x_local"], ".2f"),
            num(r["tasks_per_client"], ".2f"),
            num(r["module_runs_per_client"], ".2f"),
            num(r["smb_sessions_per_client"], ".2f"),
            num(r["smb_connections_per_client"], ".2f"),
            num(r["smb_sessions_to_servers"], "g"),
            num(r["controller_peak_rss_mb"], ".0f"),
            num(r["other_cores_max"], ".2f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=str(path.parent))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def git_describe():
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], check=False, capture_output=True, text=True
    )
    return done.stdout.strip() or None


def terminate(signum, _frame):
    # SIGTERM must reach the finally below, which stops Samba and the lab.
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", type=int, default=12, help="lab clients, 10%% Alpha (default 12)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds A B C (default 2)")
    parser.add_argument("--forks", type=int, default=25, help="forks of every run (default 25)")
    parser.add_argument(
        "--waves",
        type=json.loads,
        default=["100%"],
        help='serial waves of every run as JSON (default ["100%%"], as ssh_wave.py)',
    )
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds between RSS/PSS samples")
    parser.add_argument("--json", type=Path, help="result file (default benchmarks/results/<UTC time>-smb_wave.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, counts, Samba's log)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or args.rounds < 1 or args.forks < 1:
        parser.error("--clients must be 1..200, --rounds and --forks at least 1")
    if os.geteuid() != 0:
        print("smb_wave: Samba runs in a network namespace, which needs root; nothing measured", file=sys.stderr)
        return 2
    ok, why = sambamod.available()
    if not ok:
        print("smb_wave: %s; nothing measured" % why, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    isolate()
    started = datetime.datetime.now(datetime.timezone.utc)
    out = args.json or BENCH / "results" / ("%s-smb_wave.json" % started.strftime("%Y%m%dT%H%M%SZ"))
    work = Path(tempfile.mkdtemp(prefix="sms-smb-bench-"))
    bench = Bench(args, work)
    failed = True
    try:
        print("building an SMB site with %d clients in %s" % (args.clients, work), flush=True)
        alpha = bench.build()
        print(
            "  Samba up: %d addresses; preparing over SMB (plan, site, logon; not measured)" % len(bench.addresses),
            flush=True,
        )
        prep_s = bench.prepare()
        print("  prepared in %.1fs" % prep_s, flush=True)
        runs = []
        for index in range(1, args.rounds + 1):
            for scenario in SCENARIOS:
                tag = "r%d-%s" % (index, re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-"))
                result = dict(bench.run(scenario, tag), round=index)
                runs.append(result)
                print(
                    "  round %d %-22s wall %6.1fs  CPU %6.1fs  smbd %5.2fs  SMB sessions/client %.2f  checked"
                    % (
                        index,
                        scenario,
                        result["wall_s"],
                        result["cpu_s"],
                        result["smbd_cpu_s"],
                        result["smb_sessions_per_client"],
                    ),
                    flush=True,
                )
        rows = summarize(runs, args.clients)
        data = {
            "benchmark": "smb_wave",
            "time": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpus": os.cpu_count(),
                "kernel": os.uname().release,
                "python": sys.version.split()[0],
                "ansible_core": ansible_core,
                "git": git_describe(),
                "load_avg_1m_start": os.getloadavg()[0],
            },
            "settings": {
                "clients": args.clients,
                "alpha": alpha,
                "rounds": args.rounds,
                "forks": args.forks,
                "waves": args.waves,
            },
            "prepare_s": prep_s,
            "runs": runs,
            "summary": rows,
        }
        write_json(out, data)
        print()
        print(markdown(rows))
        print()
        print("load average (1 min) at the end: %.1f on %d CPUs; JSON: %s" % (os.getloadavg()[0], os.cpu_count(), out))
        if any(r["other_cores_max"] > 0.1 for r in rows):
            print("WARNING: the machine was busy (other cores > 0.1): read the ratios, not the seconds")
        failed = False
        return 0
    except (BenchError, RuntimeError, OSError, ValueError) as exc:
        print("BENCHMARK FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        leftovers = bench.stop()
        if leftovers:
            print("Samba left behind: %s" % leftovers, file=sys.stderr)
        if args.keep or failed or leftovers:
            print("work folder kept: %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
