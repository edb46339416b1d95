"""SMSRUN32 stand-in processes: real processes named SMSRUN32 whose command
line carries --image=<root>/hosts/<client>/MS/SMS/BIN/<smsrun32 file>.

Healthy: one idle instance (sleep loop). Hung (Q216552): two instances burning
CPU with a duty cycle. All exit at the end of their lifetime, soon after
<root>/run disappears, and on SIGTERM (unless --stubborn)."""

import os
import signal
import subprocess
import sys
import time

from . import common, procs

HEALTHY_LIFETIME = 900.0
HUNG_LIFETIME = 180.0
HUNG_CPU = 0.6
PERIOD = 0.1


class SmsrunError(Exception):
    pass


def image_path(root, client):
    """The client's SMSRUN32 image (its on-disk name, found case-insensitively)."""
    bin_dir = os.path.join(common.host_dir(root, client), "MS", "SMS", "BIN")
    if not os.path.isdir(bin_dir):
        raise SmsrunError("%s is not a client of the lab at %s (no %s)" % (client, root, bin_dir))
    name = common.find_ci(bin_dir, "Smsrun32.exe")
    if name is None:
        raise SmsrunError("cannot start SMSRUN32 on %s: no Smsrun32.exe in %s" % (client, bin_dir))
    return os.path.join(bin_dir, name)


def spawn(root, client, hung=False, stubborn=False, lifetime=None, cpu=HUNG_CPU, wait=2.0):
    """Start SMSRUN32 for `client` detached (two instances if hung). Returns
    the pids; waits (up to `wait` s) until each shows comm SMSRUN32."""
    image = image_path(root, client)
    rdir = common.run_dir(root)
    if not os.path.isdir(rdir):
        raise SmsrunError("the lab at %s is not built (no %s)" % (root, rdir))
    if lifetime is None:
        lifetime = HUNG_LIFETIME if hung else HEALTHY_LIFETIME
    argv = [sys.executable, common.TOOL, "_smsrun32", "--root", root, "--host", client,
            "--image=" + image, "--mode", "hung" if hung else "idle",
            "--lifetime", repr(float(lifetime))]
    if hung:
        argv += ["--cpu", repr(float(cpu))]
    if stubborn:
        argv.append("--stubborn")
    started = []
    log_path = os.path.join(rdir, "smsrun.log")
    for _instance in range(2 if hung else 1):
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True, cwd="/")
        started.append(proc.pid)
        try:
            with open(os.path.join(rdir, "smsrun.%s.%d.pid" % (client, proc.pid)), "w") as fh:
                fh.write("%d\n" % proc.pid)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if all(procs.comm(p) == "SMSRUN32" or not procs.alive(p) for p in started):
            break
        time.sleep(0.02)
    return started


def run(root, client, image, mode, lifetime, cpu, stubborn):
    """Body of one SMSRUN32 process (the hidden `_smsrun32` command)."""
    procs.set_comm("SMSRUN32")
    rdir = common.run_dir(root)
    pid_file = os.path.join(rdir, "smsrun.%s.%d.pid" % (client, os.getpid()))
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end = time.monotonic() + lifetime
    busy = max(0.0, min(1.0, cpu)) * PERIOD
    next_check = 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_check:
                if not os.path.isdir(rdir):
                    break
                next_check = now + 0.5
            if mode == "hung":
                stop_spin = now + busy
                x = 0
                while time.monotonic() < stop_spin:
                    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                time.sleep(max(0.0, PERIOD - busy))
            else:
                time.sleep(min(0.5, max(0.01, end - now)))
    finally:
        try:
            os.unlink(pid_file)
        except OSError:
            pass
    return 0
