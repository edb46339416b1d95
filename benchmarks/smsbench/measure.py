"""What one run costs: wall time, CPU seconds of the whole process tree,
the controller's peak RSS, the tree's peak PSS, and how busy the rest of the
machine was meanwhile.

A run is one or more commands started together (a variant may run K
ansible-playbook processes at once); it ends when the last one does.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Command:
    argv: list
    env: dict
    log: str
    cwd: str = None


@dataclass
class Usage:
    rcs: list
    wall_s: float
    cpu_s: float
    controller_peak_rss_mb: float
    tree_max_rss_mb: float
    tree_peak_pss_mb: float
    pss_samples: int
    other_cpu_s: float
    sampler_cpu_s: float
    logs: list = field(default_factory=list)


def busy_cpu_seconds():
    """CPU time the machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is in user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """Direct children of pid, through every thread's children list."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid), encoding="ascii") as handle:
                found += [int(x) for x in handle.read().split()]
        except (OSError, ValueError):
            pass
    return found


def tree(root):
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children(pid)
    return seen


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the controllers' high-water RSS and the trees' summed PSS.

    Reading smaps_rollup of a few dozen processes costs some milliseconds, so
    the interval stays near a second; the sampler's own CPU is reported apart
    (it is not in the children's rusage).
    """

    def __init__(self, roots, interval):
        super().__init__(daemon=True)
        self.roots = roots
        self.interval = interval
        self.stop = threading.Event()
        self.hwm_kb = 0
        self.pss_kb = 0
        self.samples = 0
        self.cpu_s = 0.0

    def run(self):
        start = resource.getrusage(resource.RUSAGE_THREAD)
        while not self.stop.wait(self.interval):
            pids = [pid for root in self.roots for pid in tree(root)]
            self.pss_kb = max(self.pss_kb, sum(pss_kb(pid) for pid in pids))
            self.hwm_kb = max([self.hwm_kb] + [hwm_kb(root) for root in self.roots])
            self.samples += 1
        end = resource.getrusage(resource.RUSAGE_THREAD)
        self.cpu_s = (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)


def cpu_ticks(pid):
    """utime + stime of one live process (its own, not its children's), in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def run(commands, sample_interval=1.0, on_start=None):
    """Start every command at once; wait for all; return their Usage.

    on_start(pids) is called once every command has started (a driver thread
    may want to look at the tree while it runs)."""
    busy_before = busy_cpu_seconds()
    start = time.monotonic()
    procs, handles = [], []
    try:
        for command in commands:
            log = open(command.log, "wb")
            handles.append(log)
            procs.append(
                subprocess.Popen(
                    command.argv,
                    cwd=command.cwd,
                    env=command.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        sampler = Sampler([p.pid for p in procs], sample_interval)
        sampler.start()
        if on_start is not None:
            on_start([p.pid for p in procs])
        rcs, cpu, maxrss = [], 0.0, 0
        for proc in procs:
            # wait4 gives the command's own tree: ru_utime + ru_stime of every
            # descendant that was waited for, ru_maxrss of the largest one.
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            rcs.append(proc.returncode)
            cpu += usage.ru_utime + usage.ru_stime
            maxrss = max(maxrss, usage.ru_maxrss)
        wall = time.monotonic() - start
        sampler.stop.set()
        sampler.join()
    finally:
        for proc in procs:
            if proc.returncode is None:
                # Ansible's workers leave the process group (setsid), so the
                # whole tree is found and ended by pid, leaves first.
                for pid in reversed(tree(proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                proc.wait()
        for log in handles:
            log.close()
    busy_after = busy_cpu_seconds()
    other = None
    if busy_before is not None and busy_after is not None:
        other = max(0.0, busy_after - busy_before - cpu - sampler.cpu_s)
    return Usage(
        rcs=rcs,
        wall_s=wall,
        cpu_s=cpu,
        controller_peak_rss_mb=sampler.hwm_kb / 1024.0,
        tree_max_rss_mb=maxrss / 1024.0,
        tree_peak_pss_mb=sampler.pss_kb / 1024.0,
        pss_samples=sampler.samples,
        other_cpu_s=other,
        sampler_cpu_s=sampler.cpu_s,
        logs=[c.log for c in commands],
    )
