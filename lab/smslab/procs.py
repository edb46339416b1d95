"""Reading /proc and stopping the lab's processes."""

import ctypes
import os
import signal
import time

PR_SET_NAME = 15


def set_comm(name):
    """Set /proc/self/comm (at most 15 bytes) with prctl(PR_SET_NAME)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode("ascii")[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def pids():
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit())


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid, "rb") as fh:
            return fh.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def ppid(pid):
    f = stat_fields(pid)
    return int(f[1]) if f else 0


def cpu_ticks(pid):
    """utime + stime in clock ticks, or None when the process is gone."""
    f = stat_fields(pid)
    return int(f[11]) + int(f[12]) if f else None


def alive(pid):
    """True while the process exists and is not a zombie (reaps our children)."""
    if pid <= 0:
        return False
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    f = stat_fields(pid)
    return bool(f) and f[0] not in ("Z", "X")


def refers_to(args, root):
    """Does a command line name the lab root (as an argument or inside one)?"""
    prefix = root.rstrip("/") + "/"
    for a in args:
        if a == root or prefix in a or a.endswith("=" + root):
            return True
    return False


def is_lab_tool(args):
    return any(os.path.basename(a) == "sms-lab" for a in args)


def ancestors():
    seen = set()
    pid = os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = ppid(pid)
    return seen


def lab_processes(root):
    """Live processes of the lab at `root`: `sms-lab` processes (the twin,
    SMSRUN32s, other lab commands) whose command line names the root.
    This process and its ancestors are left out."""
    mine = ancestors()
    found = []
    for pid in pids():
        if pid in mine:
            continue
        args = cmdline(pid)
        if args and is_lab_tool(args) and refers_to(args, root) and alive(pid):
            found.append(pid)
    return found


def smsrun32_processes(root):
    """{client: [pid, ...]} for live SMSRUN32 processes of the lab at `root`."""
    marker = "--image=" + root.rstrip("/") + "/hosts/"
    table = {}
    for pid in pids():
        if comm(pid) != "SMSRUN32":
            continue
        for a in cmdline(pid):
            if a.startswith(marker) and alive(pid):
                client = a[len(marker):].split("/", 1)[0]
                table.setdefault(client, []).append(pid)
                break
    return table


def stop(pid_list, term_grace=3.0, kill_grace=5.0):
    """SIGTERM, wait up to term_grace s, SIGKILL the rest, wait. Returns the
    pids still alive afterwards (should be none)."""
    pending = [p for p in pid_list if alive(p)]
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        for p in pending:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
            pending = [p for p in pending if alive(p)]
        if not pending:
            break
    return pending
