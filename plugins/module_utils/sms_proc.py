# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and stopping SMSRUN32 processes from the real process table.

A process is an SMSRUN32 when its name (Linux `comm`, or the base name of its
image) is SMSRUN32, ignoring case and a `.exe` suffix. It belongs to a client
when one of its command-line arguments (or the part after `=` in one) is a
path inside that client's drive root; on a host that is one client, the drive
root is `/` and every SMSRUN32 belongs to it. Zombies are dead and ignored.
"""

from __future__ import annotations

import os
import signal
import time

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _stat_fields(pid):
    raw = _read("/proc/%d/stat" % pid).decode("latin-1")
    # the name may hold spaces and parentheses: split after the last ')'
    tail = raw[raw.rindex(")") + 2:].split()
    return tail  # tail[0] is the state, tail[11]/[12] utime/stime


def _normalise_name(name):
    name = os.path.basename(name.strip()).lower()
    return name[:-4] if name.endswith(".exe") else name


def _belongs(args, scope):
    if scope is None:
        return True
    scope = os.path.realpath(scope).rstrip("/") or "/"
    if scope == "/":
        return True
    for arg in args:
        for candidate in (arg, arg.split("=", 1)[1] if "=" in arg else None):
            if candidate and candidate.startswith("/"):
                real = os.path.realpath(candidate)
                if real == scope or real.startswith(scope + "/"):
                    return True
    return False


def list_processes(name="SMSRUN32", scope=None):
    """Live processes called `name` that belong to `scope`, by pid."""
    wanted = _normalise_name(name)
    found = []
    for entry in os.listdir("/proc"):
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
        if not _belongs(args, scope):
            continue
        found.append({"pid": pid, "state": fields[0], "cmdline": args,
                      "cpu_ticks": int(fields[11]) + int(fields[12])})
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
    usage = {}
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
