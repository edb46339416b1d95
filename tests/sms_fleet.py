"""Plumbing of the SSH fleet tests (tests/fleet): playbook runs over SSH,
each host's files read through the host's own mount namespace, its
processes through its own PID namespace, and the controller killed on cue.
Fixtures are in tests/fleet/conftest.py."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import ansible_runner

from sms_e2e import Run, load_manifest_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "fleet"))

from smsfleet import fleet as fleetmod  # noqa: E402

HOTFIX = load_manifest_json()
WANT = {
    platform: {f["name"].lower(): f["sha256"] for f in spec["files"]} for platform, spec in HOTFIX["platforms"].items()
}
DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}
CLIENT_SRC = ("SMS", "Site.srv", "Maincfg.box", "Client.src")
BIN = ("MS", "SMS", "BIN")
# Actions that run in the controller's worker and ship no module to a host.
CONTROLLER_ACTIONS = {
    "validate_argument_spec",
    "set_fact",
    "debug",
    "assert",
    "fail",
    "meta",
    "include_role",
    "sms_wave_gate",
    "sms_rollout_check",
    "include_tasks",
    "import_tasks",
}


def sha(data):
    return hashlib.sha256(data).hexdigest()


# -- a host's own disk ----------------------------------------------------------------


def drive_path(fleet, host, *parts):
    return os.path.join(fleet.drive(host), *parts)


def snapshot(fleet, host, *parts):
    """Every file and folder below a host's drive (as the host sees it):
    relative path -> (sha256, size, mtime_ns); folders -> ("dir", None, None)."""
    top = drive_path(fleet, host, *parts)
    state = {}
    for folder, dirs, names in os.walk(top):
        for name in dirs:
            state[os.path.relpath(os.path.join(folder, name), top)] = ("dir", None, None)
        for name in names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            with open(path, "rb") as handle:
                state[os.path.relpath(path, top)] = (sha(handle.read()), st.st_size, st.st_mtime_ns)
    return state


def fleet_snapshot(fleet):
    return {host: snapshot(fleet, host) for host in fleet.hosts}


def files(fleet, host, *parts):
    """name (lower case) -> sha256 of every file in one folder of a host's drive."""
    folder = drive_path(fleet, host, *parts)
    found = {}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                found[name.lower()] = sha(handle.read())
    return found


def platform_of(fleet, client):
    return fleet.host(client)["platform"]


def has_hotfix(fleet, client):
    got = files(fleet, client, *BIN)
    return all(got.get(name) == digest for name, digest in WANT[platform_of(fleet, client)].items())


def server_has_hotfix(fleet, server):
    return all(
        all(files(fleet, server, "SMS", "Logon.srv", DIRS[p]).get(n) == d for n, d in WANT[p].items()) for p in DIRS
    )


def ini_value(fleet, host, name, key):
    with open(drive_path(fleet, host, name), "rb") as handle:
        for line in handle.read().decode("latin-1").split("\r\n"):
            if line.lower().startswith(key.lower() + "="):
                return line.split("=", 1)[1]
    return None


def copy_list_version(fleet, server):
    return int(ini_value(fleet, server, os.path.join("SMS", "Logon.srv", "Cl_nt.txt"), "CopyListVersion"))


def temp_files(fleet):
    """Temporary files left on any host's drive (the product's and Ansible's
    atomic-write names, the lab twin's)."""
    found = []
    for host in fleet.hosts:
        top = fleet.drive(host)
        for folder, _dirs, names in os.walk(top):
            for name in names:
                if name.endswith(".tmp") or name.startswith(".~") or "ansible_tmp" in name or "ansible-tmp" in name:
                    found.append("%s:%s" % (host, os.path.relpath(os.path.join(folder, name), top)))
    return found


def ns_pid(pid):
    """A root-namespace pid as the host's own process table numbers it."""
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError("no NSpid for %d" % pid)


def smsrun32(fleet, client):
    """SMSRUN32 processes of a client, as the client's own table numbers them."""
    return sorted(ns_pid(p) for p in fleet.smsrun_pids(client))


def sshd_log(fleet, host):
    with open(fleet.in_host(host, fleetmod.IN_HOST_SSHD_LOG), errors="replace") as handle:
        return handle.read()


# -- playbook runs ------------------------------------------------------------------------


def base_env(fleet, reports, control_path_dir=None):
    return {
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "SMS_REPORT_DIR": str(reports),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": control_path_dir or fleet.control_path_dir,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


class Player:
    """Runs playbooks against the fleet through ansible-runner (what AWX uses)."""

    def __init__(self, fleet, tmp_path):
        self.fleet = fleet
        self.tmp = tmp_path
        self.count = 0

    def __call__(
        self, playbook="rollout.yml", extravars=None, check=False, diff=False, control_path_dir=None, event_handler=None
    ):
        self.count += 1
        private = self.tmp / ("runner%d" % self.count)
        reports = self.tmp / ("reports%d" % self.count)
        private.mkdir()
        cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on) or None
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=REPO,
            playbook=os.path.join(REPO, playbook),
            inventory=self.fleet.inventory,
            extravars=extravars or {},
            cmdline=cmdline,
            envvars=base_env(self.fleet, reports, control_path_dir),
            quiet=True,
            timeout=600,
            event_handler=event_handler,
        )
        run = Run(runner, str(reports))
        with open(os.path.join(str(private), "stdout.txt"), "w") as handle:
            handle.write(run.stdout)
        return run


def module_runs(run, host):
    """Task results of `host` whose action ships a module to the host."""
    count = 0
    for event in run.events:
        data = event.get("event_data", {})
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("host") == host:
            if data.get("task_action", "").split(".")[-1] not in CONTROLLER_ACTIONS:
                count += 1
    return count


def summary(run):
    """The rollout's console summary (the report callback's closing lines)."""
    text = run.stdout
    start = text.rfind("SMS rollout ")
    return text[start:] if start >= 0 else ""


# -- the controller killed on cue ------------------------------------------------------------


def descendants(pid):
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = fleetmod.ppid(int(entry))
            kids.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in kids.get(current, []):
            found.append(child)
            todo.append(child)
    return found


class KilledRun:
    def __init__(self, stdout, killed_at, rc):
        self.stdout, self.killed_at, self.rc = stdout, killed_at, rc


def run_and_kill(fleet, tmp_path, name, banner, host, extravars=None, timeout=300):
    """Run rollout.yml with ansible-playbook; once `banner` was printed and a
    module process runs on `host`, SIGKILL ansible-playbook's process group
    and every worker (they call setsid(), so the group alone misses them).
    Returns a KilledRun; fails when the point never came."""
    reports = tmp_path / ("reports-%s" % name)
    env = dict(os.environ)
    env.update(base_env(fleet, reports))
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        "-i",
        fleet.inventory,
        os.path.join(REPO, "rollout.yml"),
        "-e",
        json.dumps(extravars or {}),
    ]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines, seen = [], threading.Event()

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if banner in line:
                seen.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if seen.is_set() and any(fleetmod.comm(p) == "python3" for p in fleet.module_pids(host)):
            tree = descendants(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            killed_at = time.monotonic()
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    thread.join(timeout=10)
    with open(str(tmp_path / ("%s.log" % name)), "w") as handle:
        handle.writelines(lines)
    return KilledRun("".join(lines), killed_at, proc.returncode)
