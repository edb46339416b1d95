"""SMSRUN32 stand-in processes: real processes named SMSRUN32 whose command
line carries --image=<root>/hosts/<client>/MS/SMS/BIN/<smsrun32 file>.

Healthy: one idle instance (sleep loop). Hung (Q216552): two instances burning
CPU with a duty cycle. All exit at the end of their lifetime, soon after
<root>/run disappears, and on SIGTERM (unless --stubborn)."""

import json
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


# Q216552's trigger: IE 4.01 setup doing its one-time per-user configuration.
# `sms-lab ie-setup` marks it as running on a client (run/ie401.<client>.json,
# holding the hang's CPU duty cycle and lifetime); while it is marked, an
# SMSRUN32 of the pre-hotfix binary hangs as the KB says (two instances, each
# above 90 % CPU) and the hotfix's binary does not.
IE_CPU = 0.95
IE_LIFETIME = 60.0
# The hotfix's stand-in binaries begin with this header (content.payload_bytes).
HOTFIX_HEADER = b"Q216552 stand-in payload "


def ie_marker(root, client):
    return os.path.join(common.run_dir(root), "ie401.%s.json" % client)


def ie_setup_running(root, client):
    """The IE 4.01 per-user setup of `client` ({cpu, lifetime}), or None."""
    return common.read_json(ie_marker(root, client))


def is_hotfix_binary(image):
    """Whether the SMSRUN32 image is the hotfix's (the stand-in payload's header)."""
    try:
        with open(image, "rb") as fh:
            return fh.read(len(HOTFIX_HEADER)) == HOTFIX_HEADER
    except OSError:
        return False


def ie_setup(root, client, cpu=IE_CPU, lifetime=IE_LIFETIME):
    """Start IE 4.01's per-user setup on `client`. A running pre-hotfix
    SMSRUN32 hangs at once (it is replaced by the hung pair); the hotfix's
    is left alone. Returns (hung pids or [], the image's kind)."""
    image = image_path(root, client)
    rdir = common.run_dir(root)
    if not os.path.isdir(rdir):
        raise SmsrunError("the lab at %s is not built (no %s)" % (root, rdir))
    common.atomic_write(ie_marker(root, client),
                        json.dumps({"cpu": float(cpu), "lifetime": float(lifetime)}).encode("ascii"))
    if is_hotfix_binary(image):
        return [], "hotfix"
    running = procs.smsrun32_processes(root).get(client, [])
    if not running:
        return [], "old"
    procs.stop(running)
    return spawn(root, client), "old"


def ie_setup_done(root, client):
    try:
        os.unlink(ie_marker(root, client))
        return True
    except FileNotFoundError:
        return False


def spawn(root, client, hung=False, stubborn=False, lifetime=None, cpu=HUNG_CPU, wait=2.0):
    """Start SMSRUN32 for `client` detached (two instances if hung). Returns
    the pids; waits (up to `wait` s) until each shows comm SMSRUN32.

    While IE 4.01's per-user setup runs on the client (ie_setup), the
    pre-hotfix binary starts hung whatever `hung` says."""
    image = image_path(root, client)
    rdir = common.run_dir(root)
    if not os.path.isdir(rdir):
        raise SmsrunError("the lab at %s is not built (no %s)" % (root, rdir))
    ie = ie_setup_running(root, client)
    if ie and not hung and not is_hotfix_binary(image):
        hung, cpu, lifetime = True, ie.get("cpu", IE_CPU), ie.get("lifetime", IE_LIFETIME)
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


def run(root, client, image, mode, lifetime, cpu, stubborn, comm="SMSRUN32"):
    """Body of one SMSRUN32 (or client service) process (the hidden `_smsrun32` command)."""
    procs.set_comm(comm)
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


# The SMS client service stand-in (Smssrv32.exe): a detached idle process
# named SMSSRV32 whose command line names the client's Smssrv32.exe.
# `sms-lab service-fault` makes its next starts fail (run/svcfail.<client>).
SERVICE_COMM = "SMSSRV32"


def service_image(root, client):
    bin_dir = os.path.join(common.host_dir(root, client), "MS", "SMS", "BIN")
    name = common.find_ci(bin_dir, "Smssrv32.exe") if os.path.isdir(bin_dir) else None
    if name is None:
        raise SmsrunError("%s has no client service in the lab at %s (no Smssrv32.exe in %s)" % (client, root, bin_dir))
    return os.path.join(bin_dir, name)


def fault_marker(root, client):
    return os.path.join(common.run_dir(root), "svcfail.%s" % client)


def service_pids(root, client):
    marker = "--image=" + os.path.join(common.host_dir(root, client), "MS", "SMS", "BIN") + "/"
    return [pid for pid in procs.pids()
            if procs.comm(pid) == SERVICE_COMM and any(a.startswith(marker) for a in procs.cmdline(pid))
            and procs.alive(pid)]


def service(root, client, action):
    """start / stop / status of the client service stand-in: (exit code, message)."""
    image = service_image(root, client)
    running = service_pids(root, client)
    if action == "status":
        return (0, "SMS client service on %s: running (pid %s)" % (client, ", ".join(map(str, running)))) \
            if running else (3, "SMS client service on %s: stopped" % client)
    if action == "stop":
        left = procs.stop(running)
        if left:
            return 1, "SMS client service on %s did not stop (pid %s)" % (client, ", ".join(map(str, left)))
        return 0, "SMS client service on %s: stopped" % client
    if os.path.exists(fault_marker(root, client)):
        return 1, "SMS client service on %s failed to start (lab fault: sms-lab service-fault)" % client
    if running:
        return 0, "SMS client service on %s: already running (pid %s)" % (client, ", ".join(map(str, running)))
    rdir = common.run_dir(root)
    argv = [sys.executable, common.TOOL, "_smsrun32", "--root", root, "--host", client, "--image=" + image,
            "--mode", "idle", "--lifetime", repr(HEALTHY_LIFETIME), "--comm", SERVICE_COMM]
    with open(os.path.join(rdir, "service.log"), "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and procs.comm(proc.pid) != SERVICE_COMM:
        time.sleep(0.02)
    return 0, "SMS client service on %s: started (pid %d)" % (client, proc.pid)


def reboot(root, client):
    """The twin's stand-in for a reboot: every process of the client ends and
    what a boot starts comes back (the client service, then one SMSRUN32).
    Nothing else of a reboot is modelled. Returns the messages."""
    left = procs.stop(procs.smsrun32_processes(root).get(client, []) + service_pids(root, client))
    if left:
        raise SmsrunError("%s: processes did not end for the reboot: %s" % (client, left))
    ie_setup_done(root, client)  # a reboot ends IE's per-user setup too (it runs again at the next logon)
    code, msg = service(root, client, "start")
    lines = ["%s rebooted (lab stand-in: its processes restarted)" % client, msg]
    if code != 0:
        raise SmsrunError("; ".join(lines))
    lines.append("SMSRUN32 on %s: pid %s" % (client, ", ".join(str(p) for p in spawn(root, client))))
    return lines
