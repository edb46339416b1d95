"""The part of the SSH fleet that runs inside one host (docs/FLEET.md).

`sms-fleet up` copies this file into the fleet's tools folder; every host sees
that folder read-only at /run/sms-fleet/tools, so nothing of the controller's
checkout is needed (or visible) inside a host. Standard library only, run by
the host's own /usr/bin/python3.

Commands:
  init --config FILE   PID 1 of a host: lays out its mounts (drive, shares,
                       private /root, /tmp and /run, the controller's folders
                       hidden), then reaps orphans until told to stop.
  smsrun [--hung] [--stubborn] [--lifetime S]
                       starts SMSRUN32 stand-ins on this client, detached with
                       their output closed, and returns (the inventory's
                       sms_client_smsrun_argv).
  ie-setup [--lifetime S] [--cpu C] [--done]
                       IE 4.01's per-user setup runs on this client: a
                       pre-hotfix SMSRUN32 started while it runs hangs (two
                       instances burning CPU, Q216552); the hotfix's does not.
  service start|stop|status
                       the SMS client service stand-in (a process named
                       SMSSRV32); status exits 0 while it runs, 3 when not.
  service-fault [--clear]
                       the service's next starts fail (exit 1).
  reboot               the twin's reboot: every SMSRUN32 and the service end,
                       then the service and one SMSRUN32 start (a test hook:
                       the host's kernel is the machine's own).
  small-drive --free BYTES
                       puts this host's drive on a small tmpfs with only BYTES
                       free (a full disk), the files kept.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HOST_DIR = "/run/sms-fleet"
CONFIG = HOST_DIR + "/host.json"
TOOLS = HOST_DIR + "/tools"
LAB_TOOL = TOOLS + "/sms-lab"
# The SMSRUN32 stand-ins' own lab root: only run/ lives there (the lab's
# stand-ins end soon after their run/ folder disappears).
CLIENT_LAB = HOST_DIR + "/lab"
# On the site server: the whole lab tree, the Maintenance Manager twin's view
# of the site (it reaches every logon server's Logon.srv, as SMS does over
# the network).
MM_ROOT = HOST_DIR + "/mm"
SSH_DIR = HOST_DIR + "/ssh"
DRIVE = "/mnt/c"
SHARES = "/mnt/sms"
WINDOWS_BIN = "C:\\MS\\SMS\\BIN\\"


class HostError(Exception):
    pass


def mount(*args):
    # util-linux mount, argv only; a failure here leaves a broken host, so stop.
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HostError("mount %s failed: %s" % (" ".join(args), (proc.stderr or proc.stdout).strip()))


def tmpfs(path, mode, size, readonly=False):
    os.makedirs(path, exist_ok=True)
    opts = "mode=%s,size=%s" % (mode, size) + (",ro" if readonly else "")
    mount("-t", "tmpfs", "-o", opts, "sms-fleet", path)


def bind(src, dst, readonly=False):
    os.makedirs(dst, exist_ok=True)
    mount("--bind", src, dst)
    if readonly:
        mount("-o", "remount,bind,ro", dst)


def copy_private(src, dst, mode):
    with open(src, "rb") as handle:
        data = handle.read()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(dst, mode)


def lay_out(cfg):
    """Mounts of one host, in its own (private) mount namespace."""
    # /run first: the host's own tools, state and sshd's privilege separation
    # folder live there, and the machine's /run (other services) is hidden.
    tmpfs("/run", "0755", "32m")
    os.makedirs("/run/sshd", mode=0o755)
    os.makedirs(SSH_DIR, mode=0o700)
    for name in ("sshd_config", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
        copy_private(os.path.join(cfg["config_dir"], name), os.path.join(SSH_DIR, name), 0o600)
    with open(CONFIG, "w") as handle:
        json.dump(cfg, handle, indent=2)
    bind(cfg["tools"], TOOLS, readonly=True)

    # The drive: the host's lab folder at one fixed path, as C:\ would be.
    tmpfs("/mnt", "0755", "1m")
    bind(cfg["drive"], DRIVE)
    for server, share in sorted(cfg.get("shares", {}).items()):
        bind(share, os.path.join(SHARES, server), readonly=True)
    if cfg["role"] == "site":
        bind(cfg["lab_root"], MM_ROOT)
    if cfg["role"] == "client":
        os.makedirs(os.path.join(CLIENT_LAB, "run"))

    # root's home holds only the controller's public key.
    tmpfs("/root", "0700", "64m")
    os.makedirs("/root/.ssh", mode=0o700)
    with open("/root/.ssh/authorized_keys", "w") as handle:
        handle.write(cfg["authorized_key"].strip() + "\n")
    os.chmod("/root/.ssh/authorized_keys", 0o600)

    # Last, after every bind mount: the controller's checkout, the fleet's
    # folder (keys, other hosts' drives) and the controller's temp folders
    # are not visible inside a host.
    for path in cfg.get("hide", []):
        if os.path.isdir(path):
            tmpfs(path, "0555", "4k", readonly=True)
    for path in ("/tmp", "/var/tmp"):
        tmpfs(path, "1777", "64m")


def cmd_init(args):
    with open(args.config) as handle:
        cfg = json.load(handle)
    try:
        lay_out(cfg)
    except (HostError, OSError) as exc:
        print("sms-fleet-host init %s: %s" % (cfg.get("name"), exc), flush=True)
        return 1
    stopping = []

    def stop(_signum, _frame):
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    os.chdir("/")
    print("ready %s" % cfg["name"], flush=True)
    # PID 1 of the host: reap every orphan (detached stand-ins, the twin,
    # sshd's children) so none lingers as a zombie in the host's table.
    while not stopping:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            time.sleep(0.2)
    # Everything else in this PID namespace ends with us; say so explicitly.
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    return 0


def load_config():
    try:
        with open(CONFIG) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise HostError("not inside a fleet host (%s: %s)" % (CONFIG, exc))


def find_ci(folder, name):
    try:
        matches = sorted(e for e in os.listdir(folder) if e.lower() == name.lower())
    except OSError:
        return None
    return matches[0] if matches else None


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return None


def cmd_smsrun(args):
    cfg = load_config()
    if cfg["role"] != "client":
        raise HostError("%s is not a client: no SMSRUN32 here" % cfg["name"])
    bin_dir = os.path.join(DRIVE, "MS", "SMS", "BIN")
    name = find_ci(bin_dir, "Smsrun32.exe")
    if name is None:
        raise HostError("cannot start SMSRUN32 on %s: no Smsrun32.exe in %s" % (cfg["name"], bin_dir))
    os.makedirs(os.path.join(CLIENT_LAB, "run"), exist_ok=True)
    if cfg.get("smsrun_style") == "windows":
        # What a real client's process table shows: the Windows image path,
        # nothing under the drive's mount point.
        image = WINDOWS_BIN + name.upper()
        argv0 = image
    else:
        image = os.path.join(bin_dir, name)
        argv0 = sys.executable or "/usr/bin/python3"
    ie = read_json(IE_MARKER)
    if ie and not args.hung and not is_hotfix(os.path.join(bin_dir, name)):
        # Q216552: installed while IE 4.01 setup does its per-user configuration
        args.hung, args.cpu, args.lifetime = True, ie.get("cpu", 0.95), ie.get("lifetime", 60.0)
    lifetime = args.lifetime if args.lifetime is not None else (180.0 if args.hung else 900.0)
    argv = [argv0, LAB_TOOL, "_smsrun32", "--root", CLIENT_LAB, "--host", cfg["name"],
            "--image=" + image, "--mode", "hung" if args.hung else "idle", "--lifetime", repr(lifetime)]
    if args.hung:
        argv += ["--cpu", repr(args.cpu)]
    if args.stubborn:
        argv.append("--stubborn")
    started = []
    for _instance in range(2 if args.hung else 1):
        # Detached, output closed: the module that runs this returns at once.
        proc = subprocess.Popen(argv, executable="/usr/bin/python3", stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True, cwd="/")
        started.append(proc.pid)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not all(comm(p) == "SMSRUN32" for p in started):
        time.sleep(0.02)
    print("SMSRUN32 started on %s: pid %s" % (cfg["name"], ", ".join(map(str, started))))
    return 0


IE_MARKER = CLIENT_LAB + "/run/ie401.json"
FAULT_MARKER = CLIENT_LAB + "/run/svcfail"
HOTFIX_HEADER = b"Q216552 stand-in payload "  # how the hotfix's stand-in binaries begin (lab/smslab/content.py)
SERVICE_COMM = "SMSSRV32"


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def is_hotfix(image):
    try:
        with open(image, "rb") as handle:
            return handle.read(len(HOTFIX_HEADER)) == HOTFIX_HEADER
    except OSError:
        return False


def pids_named(name):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm(int(entry)) == name:
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                found.append(int(entry))
    return sorted(found)


def end(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(p in pids_named(SERVICE_COMM) + pids_named("SMSRUN32") for p in pids):
        time.sleep(0.05)


def client_only():
    cfg = load_config()
    if cfg["role"] != "client":
        raise HostError("%s is not a client" % cfg["name"])
    os.makedirs(os.path.join(CLIENT_LAB, "run"), exist_ok=True)
    return cfg


def cmd_ie_setup(args):
    cfg = client_only()
    if args.done:
        if os.path.exists(IE_MARKER):
            os.unlink(IE_MARKER)
        print("IE 4.01 per-user setup on %s: finished" % cfg["name"])
        return 0
    with open(IE_MARKER, "w", encoding="utf-8") as handle:
        json.dump({"cpu": args.cpu, "lifetime": args.lifetime}, handle)
    print("IE 4.01 per-user setup running on %s" % cfg["name"])
    return 0


def service_action(cfg, action):
    running = pids_named(SERVICE_COMM)
    if action == "status":
        print("SMS client service on %s: %s" % (cfg["name"], "running" if running else "stopped"))
        return 0 if running else 3
    if action == "stop":
        end(running)
        print("SMS client service on %s: stopped" % cfg["name"])
        return 0
    if os.path.exists(FAULT_MARKER):
        print("SMS client service on %s failed to start (fleet fault: service-fault)" % cfg["name"], file=sys.stderr)
        return 1
    if running:
        print("SMS client service on %s: already running" % cfg["name"])
        return 0
    image = os.path.join(DRIVE, "MS", "SMS", "BIN", find_ci(os.path.join(DRIVE, "MS", "SMS", "BIN"), "Smssrv32.exe")
                         or "Smssrv32.exe")
    argv = ["/usr/bin/python3", LAB_TOOL, "_smsrun32", "--root", CLIENT_LAB, "--host", cfg["name"],
            "--image=" + image, "--mode", "idle", "--lifetime", "3600.0", "--comm", SERVICE_COMM]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, cwd="/")
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and comm(proc.pid) != SERVICE_COMM:
        time.sleep(0.02)
    print("SMS client service on %s: started (pid %d)" % (cfg["name"], proc.pid))
    return 0


def cmd_service(args):
    return service_action(client_only(), args.action)


def cmd_service_fault(args):
    cfg = client_only()
    if args.clear:
        if os.path.exists(FAULT_MARKER):
            os.unlink(FAULT_MARKER)
    else:
        with open(FAULT_MARKER, "w", encoding="ascii") as handle:
            handle.write("fail\n")
    print("SMS client service on %s: %s" % (cfg["name"], "starts normally" if args.clear else "its next starts fail"))
    return 0


def cmd_reboot(args):
    cfg = client_only()
    end(pids_named("SMSRUN32") + pids_named(SERVICE_COMM))
    if os.path.exists(IE_MARKER):
        os.unlink(IE_MARKER)  # a reboot ends IE's per-user setup too
    print("%s rebooted (fleet stand-in: its processes restarted)" % cfg["name"])
    if service_action(cfg, "start") != 0:
        return 1
    args.hung, args.stubborn, args.lifetime, args.cpu = False, False, None, 0.6
    return cmd_smsrun(args)


def tree_bytes(top):
    total = 0
    for folder, _dirs, files in os.walk(top):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def cmd_small_drive(args):
    """A full disk: the drive's files on a tmpfs with only --free bytes left."""
    cfg = load_config()
    copy = os.path.join(HOST_DIR, "drive-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(DRIVE, copy, symlinks=True)
    dir_times = {}
    for folder, _dirs, _files in os.walk(DRIVE):
        st = os.stat(folder)
        dir_times[os.path.relpath(folder, DRIVE)] = (st.st_atime_ns, st.st_mtime_ns)
    size = tree_bytes(copy) + args.free + 1024 * 1024
    tmpfs(DRIVE, "0755", str(size))
    shutil.copytree(copy, DRIVE, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(copy)
    # A Windows drive fills up with its page file; leave exactly --free bytes.
    filler = os.path.join(DRIVE, "pagefile.sys")
    with open(filler, "wb") as handle:
        while True:
            st = os.statvfs(DRIVE)
            room = st.f_bavail * st.f_frsize - args.free
            if room <= 0:
                break
            handle.write(b"\0" * min(room, 1024 * 1024))
            handle.flush()
    for rel, times in sorted(dir_times.items(), key=lambda item: -item[0].count("/")):
        os.utime(os.path.join(DRIVE, rel), ns=times)
    st = os.statvfs(DRIVE)
    print(json.dumps({"host": cfg["name"], "free": st.f_bavail * st.f_frsize, "size": size}))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sms-fleet-host", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("smsrun")
    p.add_argument("--hung", action="store_true")
    p.add_argument("--stubborn", action="store_true")
    p.add_argument("--lifetime", type=float)
    p.add_argument("--cpu", type=float, default=0.6, help="share of a core each hung instance burns")
    p.set_defaults(func=cmd_smsrun)
    p = sub.add_parser("ie-setup")
    p.add_argument("--lifetime", type=float, default=60.0)
    p.add_argument("--cpu", type=float, default=0.95)
    p.add_argument("--done", action="store_true")
    p.set_defaults(func=cmd_ie_setup)
    p = sub.add_parser("service")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.set_defaults(func=cmd_service)
    p = sub.add_parser("service-fault")
    p.add_argument("--clear", action="store_true")
    p.set_defaults(func=cmd_service_fault)
    p = sub.add_parser("reboot")
    p.set_defaults(func=cmd_reboot)
    p = sub.add_parser("small-drive")
    p.add_argument("--free", type=int, required=True)
    p.set_defaults(func=cmd_small_drive)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HostError as exc:
        print("sms-fleet-host: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
