# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and stopping SMSRUN32 processes from the real process table.

A process is an SMSRUN32 when its name (Linux `comm`, or the base name of its
image, written with `/` or `\\` as on Windows: `C:\\MS\\SMS\\BIN\\SMSRUN32.EXE`)
is SMSRUN32, ignoring case and a `.exe` suffix. Zombies are dead and ignored.

Which processes belong to the client is the *scope*:
- `host`: the whole process table (a host that is one client);
- `drive`: only processes with a command-line argument (or the part after
  `=` in one) that is a path inside the client's drive root, for a
  management host that serves many drives (the lab twin).
Where the process table cannot be read (no /proc), ProcessTableUnavailable is
raised: the caller reports "unknown", never "not running".
"""

from __future__ import annotations

import os
import signal
import time
from typing import Dict, Optional

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _stat_fields(pid):
    raw = _read("/proc/%d/stat" % pid).decode("latin-1")
    # the name may hold spaces and parentheses: split after the last ')'
    tail = raw[raw.rindex(")") + 2 :].split()
    return tail  # tail[0] is the state, tail[11]/[12] utime/stime


class ProcessTableUnavailable(Exception):
    """This host's process table cannot be read: process state is unknown."""


SCOPES = ("host", "drive")


def _normalise_name(name):
    name = name.strip().strip('"').replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def _belongs(args, drive_root):
    if drive_root is None:
        return True
    scope = os.path.realpath(drive_root).rstrip("/") or "/"
    if scope == "/":
        return True
    for arg in args:
        for candidate in (arg, arg.split("=", 1)[1] if "=" in arg else None):
            if candidate and candidate.startswith("/"):
                real = os.path.realpath(candidate)
                if real == scope or real.startswith(scope + "/"):
                    return True
    return False


def list_processes(name="SMSRUN32", scope="host", drive_root=None):
    """Live processes called `name` in `scope` (`host`, or `drive` under `drive_root`), by pid."""
    if scope not in SCOPES:
        raise ValueError("process scope %r is not one of %s" % (scope, ", ".join(SCOPES)))
    wanted = _normalise_name(name)
    found = []
    try:
        listing = os.listdir("/proc")
        if not os.path.exists("/proc/self/stat"):
            raise OSError("no /proc/self/stat")
    except OSError as exc:
        raise ProcessTableUnavailable(
            "the process table cannot be read here (/proc: %s)" % (getattr(exc, "strerror", None) or exc)
        )
    limit = drive_root if scope == "drive" else None
    for entry in listing:
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            comm = _read("/proc/%d/comm" % pid).decode("latin-1").strip()
            args = [a.decode("latin-1") for a in _read("/proc/%d/cmdline" % pid).split(b"\0") if a]
            fields = _stat_fields(pid)
        except (OSError, ValueError):
            continue  # gone while we looked
        names = {_normalise_name(comm)}
        if args:
            names.add(_normalise_name(args[0]))
        if wanted not in names or fields[0] in ("Z", "X"):
            continue
        if not _belongs(args, limit):
            continue
        found.append({"pid": pid, "state": fields[0], "cmdline": args, "cpu_ticks": int(fields[11]) + int(fields[12])})
    return sorted(found, key=lambda p: p["pid"])


def cpu_ticks(pid):
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[11]) + int(fields[12])


def sample_cpu(pids, window):
    """CPU use of each pid over `window` seconds, in percent of one core."""
    start = {pid: cpu_ticks(pid) for pid in pids}
    began = time.monotonic()
    time.sleep(window)
    elapsed = max(time.monotonic() - began, 1e-6)
    usage: Dict[int, Optional[float]] = {}
    for pid in pids:
        end = cpu_ticks(pid)
        if start[pid] is None or end is None:
            usage[pid] = None
        else:
            usage[pid] = round(100.0 * (end - start[pid]) / _CLK_TCK / elapsed, 1)
    return usage


def alive(pid):
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except (OSError, ValueError):
        return False


def stop(pids, signals, timeout):
    """Send each signal in turn, waiting up to `timeout` s after each.

    Returns the pids still alive after the last signal, and what was sent.
    """
    remaining = [pid for pid in pids if alive(pid)]
    sent = []
    for name in signals:
        if not remaining:
            break
        signum = getattr(signal, "SIG" + name.upper())
        for pid in remaining:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        sent.append(name.upper())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            remaining = [pid for pid in remaining if alive(pid)]
            if not remaining:
                break
            time.sleep(0.05)
    return [pid for pid in remaining if alive(pid)], sent


def watch(name, scope, drive_root, seconds, interval, threshold, expect_running=True):
    """Watch the client's `name` processes for `seconds`: the Q216552 cure holds.

    Healthy means exactly one instance at every look, none above `threshold`
    percent of one core over any `interval`. Each look lists the processes and
    samples their CPU over `interval` seconds (the window is spent sampling,
    not sleeping). The watch ends early at the first unhealthy look: a hang
    seen once is a failure, and a hung pair burning CPU needs no more proof.
    With `expect_running` false (nothing was meant to start it), zero
    instances make the watch `unverified`, not failed.

    Returns a dict: result (healthy, hung, not_running, unverified), reason,
    seconds (asked), elapsed, looks, instances (the most seen at one look),
    highest_cpu (percent, the highest one instance used over one interval).
    """
    began = time.monotonic()
    deadline = began + max(0.0, float(seconds))
    interval = max(0.05, float(interval))
    looks, most, highest, reason, result = 0, 0, 0.0, None, "healthy"
    seen_any = False
    while True:
        found = list_processes(name, scope, drive_root)
        pids = [entry["pid"] for entry in found]
        most = max(most, len(pids))
        left = max(0.05, min(interval, deadline - time.monotonic()))
        if pids:
            seen_any = True
            usage = sample_cpu(pids, left)
            cpus = [cpu for cpu in usage.values() if cpu is not None]
            if cpus:
                highest = max(highest, *cpus)
        else:
            time.sleep(left)
            cpus = []
        looks += 1
        if len(pids) > 1:
            result, reason = "hung", "%d instances of %s at once (Q216552: two instances, one hung)" % (len(pids), name)
        elif cpus and max(cpus) > threshold:
            result, reason = (
                "hung",
                "%s at %.1f %% CPU over %.2gs, above the hung threshold of %g %%" % (name, max(cpus), left, threshold),
            )
        if reason:
            break
        if time.monotonic() >= deadline:
            # A start may take a moment: only the last look must see it running.
            if not pids and expect_running:
                result, reason = (
                    "not_running",
                    "%s is not running at the end of the watch (exactly one instance is expected)" % name,
                )
            break
    if result == "healthy" and not seen_any:
        result, reason = "unverified", "%s did not run during the watch and nothing was meant to start it" % name
    return {
        "result": result,
        "reason": reason,
        "seconds": float(seconds),
        "elapsed": round(time.monotonic() - began, 2),
        "looks": looks,
        "instances": most,
        "highest_cpu": round(highest, 1),
        "threshold": float(threshold),
    }
