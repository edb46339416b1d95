"""The SSH fleet: SMS hosts in network, mount and PID namespaces of their own.

Controller side (root only). Every host is a network namespace on a bridge
with an address of its own, and inside it an `unshare` (own mount namespace,
own PID namespace) whose PID 1 is `hostside.py init`, and an `sshd` with its
own config and host key. The lab twin lays out the hosts' folders; see
docs/FLEET.md for the layout and the rules.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from . import inventory as fleet_inventory
from . import netem as fleet_netem

FLEET_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(FLEET_DIR)
LAB_DIR = os.path.join(REPO, "lab")
LAB_TOOL = os.path.join(LAB_DIR, "sms-lab")
HOSTSIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostside.py")

FLEET_JSON = "fleet.json"
LOCK = "/run/sms-fleet.lock"
HOST_PYTHON = "/usr/bin/python3"
SSHD = "/usr/sbin/sshd"
# Inside every host (hostside.py's paths).
IN_HOST_TOOLS = "/run/sms-fleet/tools"
IN_HOST_MM = "/run/sms-fleet/mm"
IN_HOST_SSHD_CONFIG = "/run/sms-fleet/ssh/sshd_config"
IN_HOST_SSHD_LOG = "/run/sms-fleet/sshd.log"

NET_PREFIX = "10.213"
# The shape of the fleet (issue 10): the site server (also a logon server),
# two more logon servers, six clients of which the last two are Alpha.
SPEC = {"logon_servers": 2, "clients": 6, "alpha": 2}
DEFAULT_CYCLE = 4.0
# Stand-ins started at `up` and at every `reset`: client01 shows the hung pair
# of Q216552, client03 a Windows-style command line, the others one healthy
# SMSRUN32 each.
HUNG = ("client01",)
STANDIN_LIFETIME = 3600.0
HUNG_CPU = 0.2
WINDOWS_STYLE = ("client03",)

sys.path.insert(0, LAB_DIR)
from smslab import build as labbuild  # noqa: E402
from smslab import mm as labmm  # noqa: E402
from smslab.spec import Spec  # noqa: E402


class FleetError(Exception):
    pass


# -- small process helpers -------------------------------------------------------

def run(argv, check=True, timeout=60, **kwargs):
    # The caller's check raises a FleetError naming the command and its output.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False, **kwargs)
    if check and proc.returncode != 0:
        raise FleetError("%s failed (rc %d): %s"
                         % (" ".join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc


def pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def read_proc(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as handle:
            return handle.read()
    except OSError:
        return None


def cmdline(pid):
    raw = read_proc(pid, "cmdline")
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a] if raw else []


def comm(pid):
    raw = read_proc(pid, "comm")
    return raw.decode("utf-8", "replace").strip() if raw else None


def ppid(pid):
    raw = read_proc(pid, "stat")
    if not raw:
        return 0
    return int(raw.decode("latin-1").rsplit(")", 1)[1].split()[1])


def alive(pid):
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    raw = read_proc(pid, "stat")
    return bool(raw) and raw.decode("latin-1").rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children(pid):
    raw = read_proc(pid, "task/%d/children" % pid)
    if raw is not None:
        return [int(p) for p in raw.split()]
    return [p for p in pids() if ppid(p) == pid]


def pid_ns(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def kill_and_wait(pid_list, timeout=5.0):
    for pid in pid_list:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = [p for p in pid_list if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def ancestors():
    seen, pid = set(), os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = ppid(pid)
    return seen


@contextlib.contextmanager
def machine_lock():
    """One fleet at a time picks its names and addresses."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def atomic_json(path, obj):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def links():
    out = run(["ip", "-o", "link", "show"]).stdout
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def netns_names():
    out = run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def addresses_in_use():
    return run(["ip", "-o", "-4", "addr", "show"]).stdout


def require_root():
    if os.geteuid() != 0:
        raise FleetError("the SSH fleet needs root (network, mount and PID namespaces); run it as root")
    for tool in (SSHD, HOST_PYTHON, "/usr/bin/ssh-keygen"):
        if not os.path.exists(tool):
            raise FleetError("%s is missing: install Debian's openssh-server and iproute2 (make fleet-deps)"
                             % tool)
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            raise FleetError("%s is missing: install Debian's iproute2 and util-linux (make fleet-deps)" % tool)


# -- the fleet -----------------------------------------------------------------------

class Fleet:
    """A fleet laid out under `root` (fleet.json says what it is)."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.lab = os.path.join(self.root, "lab")
        self.tools = os.path.join(self.root, "tools")
        self.ssh_dir = os.path.join(self.root, "ssh")
        self.key = os.path.join(self.ssh_dir, "id_ed25519")
        self.known_hosts = os.path.join(self.ssh_dir, "known_hosts")
        self.inventory_dir = os.path.join(self.root, "inventory")
        self.inventory = os.path.join(self.inventory_dir, "hosts.yml")
        self.control_path_dir = os.path.join(self.root, "cp")
        self.state = None
        path = os.path.join(self.root, FLEET_JSON)
        if os.path.exists(path):
            with open(path) as handle:
                self.state = json.load(handle)

    # -- facts ----------------------------------------------------------------------
    @property
    def hosts(self):
        return self.state["hosts"]

    def host(self, name):
        if not self.state or name not in self.state["hosts"]:
            raise FleetError("%s is not a host of the fleet at %s (%s)" % (
                name, self.root, ", ".join(sorted(self.state["hosts"])) if self.state else "no fleet"))
        return self.state["hosts"][name]

    @property
    def clients(self):
        return [h for h, v in sorted(self.hosts.items()) if v["role"] == "client"]

    @property
    def logon_servers(self):
        return self.state["logon_servers"]

    @property
    def site_server(self):
        return self.state["site_server"]

    def save(self):
        atomic_json(os.path.join(self.root, FLEET_JSON), self.state)

    def drive(self, name):
        """The host's drive as the host itself sees it (its own mount namespace)."""
        return "/proc/%d/root/mnt/c" % self.host(name)["init_pid"]

    def in_host(self, name, path):
        return "/proc/%d/root%s" % (self.host(name)["init_pid"], path)

    def env(self):
        """Environment for Ansible runs against this fleet."""
        return {"ANSIBLE_SSH_CONTROL_PATH_DIR": self.control_path_dir}

    # -- up ------------------------------------------------------------------------------
    def up(self, cycle=DEFAULT_CYCLE, hide=(), clients=SPEC["clients"], alpha=SPEC["alpha"], smsrun=True):
        require_root()
        if self.state:
            raise FleetError("a fleet is already laid out at %s: run 'sms-fleet down --root %s' first"
                             % (self.root, self.root))
        if os.path.exists(self.root) and os.listdir(self.root):
            raise FleetError("%s exists and is not empty: pick another --root" % self.root)
        os.makedirs(self.root, exist_ok=True)
        with machine_lock():
            self._plan(cycle, hide, clients, alpha, smsrun)
            self.save()
            try:
                self._lay_out()
                self._network()
            except Exception:
                self.down()
                raise
        try:
            for name in self.hosts:
                self.start_host(name)
            self.start_processes()
        except Exception:
            self.down()
            raise
        return self.state

    def _plan(self, cycle, hide, clients, alpha, smsrun):
        if clients + SPEC["logon_servers"] + 1 > 240:
            raise FleetError("at most %d clients fit in a fleet's /24" % (239 - SPEC["logon_servers"]))
        spec = Spec(logon_servers=SPEC["logon_servers"], clients=clients, alpha=alpha, hung=0,
                    smsrun=False, mm=False, cycle=cycle, idle_timeout=86400.0)
        used = addresses_in_use()
        present = links()
        taken = {name.split("-", 1)[0] for name in netns_names() if name.startswith("smsfleet")}
        for fid in range(1, 255):
            net = "%s.%d." % (NET_PREFIX, fid)
            if (" %s" % net) in used or "smsfb%d" % fid in present or "smsfleet%d" % fid in taken:
                continue
            break
        else:
            raise FleetError("no free %s.x.0/24 range for a fleet bridge" % NET_PREFIX)
        names = spec.logon_server_names + spec.client_names
        hosts = {}
        for index, name in enumerate(names):
            role = ("site" if name == spec.site_server else
                    "logon" if name in spec.logon_server_names else "client")
            entry = {"index": index, "role": role, "address": "%s.%d.%d" % (NET_PREFIX, fid, 10 + index),
                     "netns": "smsfleet%d-%s" % (fid, name), "veth": "sf%dh%d" % (fid, index),
                     "init_pid": None, "unshare_pid": None}
            if role == "client":
                entry.update(platform=spec.platform(name), logon_server=spec.logon_server_of(name),
                             smsrun=("windows" if name in WINDOWS_STYLE else "hung" if name in HUNG
                                     else "healthy"))
            hosts[name] = entry
        hidden = [REPO, self.root] + [os.path.abspath(p) for p in hide]
        self.state = {"format": 1, "id": fid, "bridge": "smsfb%d" % fid, "gateway": "%s.%d.1" % (NET_PREFIX, fid),
                      "subnet": "%s.%d.0/24" % (NET_PREFIX, fid), "repo": REPO, "root": self.root,
                      "site_server": spec.site_server, "logon_servers": spec.logon_server_names,
                      "spec": spec.to_dict(), "cycle": cycle, "hide": hidden, "hosts": hosts,
                      "skip": [], "smsrun": smsrun}

    def _lay_out(self):
        # The hosts' folders: the lab twin's tree, without its processes (the
        # fleet starts them inside the hosts).
        spec = Spec.from_dict(self.state["spec"])
        argv = [sys.executable, LAB_TOOL, "build", "--root", self.lab, "--no-smsrun", "--no-mm",
                "--hung", "0", "--logon-servers", str(spec.logon_servers), "--clients", str(spec.clients),
                "--alpha", str(spec.alpha), "--cycle", repr(spec.cycle), "--idle-timeout", repr(spec.idle_timeout)]
        run(argv)
        # What hosts run, copied out of the checkout (which they cannot see).
        os.makedirs(self.tools)
        shutil.copy2(LAB_TOOL, os.path.join(self.tools, "sms-lab"))
        shutil.copytree(os.path.join(LAB_DIR, "smslab"), os.path.join(self.tools, "smslab"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(HOSTSIDE, os.path.join(self.tools, "sms-fleet-host"))
        for name in ("sms-lab", "sms-fleet-host"):
            os.chmod(os.path.join(self.tools, name), 0o755)

        os.makedirs(self.ssh_dir, mode=0o700)
        os.makedirs(self.control_path_dir, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sms-fleet controller", "-f", self.key])
        with open(self.key + ".pub") as handle:
            public = handle.read().strip()
        known = []
        for name, h in self.hosts.items():
            cdir = os.path.join(self.root, "hosts", name)
            os.makedirs(cdir, mode=0o700)
            hostkey = os.path.join(cdir, "ssh_host_ed25519_key")
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + name, "-f", hostkey])
            with open(hostkey + ".pub") as handle:
                kind, blob = handle.read().split()[:2]
            known.append("%s %s %s\n" % (h["address"], kind, blob))
            with open(os.path.join(cdir, "sshd_config"), "w") as handle:
                handle.write(sshd_config(h["address"]))
            cfg = {"name": name, "role": h["role"], "address": h["address"], "config_dir": cdir,
                   "drive": os.path.join(self.lab, "hosts", name), "tools": self.tools,
                   "authorized_key": public, "hide": self.state["hide"],
                   "smsrun_style": "windows" if h.get("smsrun") == "windows" else "lab"}
            if h["role"] == "site":
                cfg["lab_root"] = self.lab
            if h["role"] == "client":
                cfg["shares"] = {s: os.path.join(self.lab, "hosts", s, "SMS", "Logon.srv")
                                 for s in self.logon_servers}
            atomic_json(os.path.join(cdir, "host.json"), cfg)
        with open(self.known_hosts, "w") as handle:
            handle.writelines(known)
        fleet_inventory.write(self)

    def _network(self):
        bridge = self.state["bridge"]
        run(["ip", "link", "add", bridge, "type", "bridge"])
        run(["ip", "addr", "add", self.state["gateway"] + "/24", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
        for name, h in sorted(self.hosts.items(), key=lambda item: item[1]["index"]):
            ns, veth = h["netns"], h["veth"]
            inner = veth + "n"
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", inner])
            run(["ip", "link", "set", inner, "netns", ns])
            run(["ip", "-n", ns, "link", "set", inner, "name", "eth0"])
            run(["ip", "-n", ns, "addr", "add", h["address"] + "/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "link", "set", veth, "master", bridge])
            run(["ip", "link", "set", veth, "up"])

    # -- one host's life ------------------------------------------------------------------
    def start_host(self, name):
        h = self.host(name)
        cdir = os.path.join(self.root, "hosts", name)
        log_path = os.path.join(cdir, "init.log")
        argv = ["ip", "netns", "exec", h["netns"], "unshare", "--mount", "--pid", "--fork", "--mount-proc",
                "--propagation", "private", HOST_PYTHON, os.path.join(self.tools, "sms-fleet-host"),
                "init", "--config", os.path.join(cdir, "host.json")]
        with open(log_path, "ab") as log:
            # a restarted host appends to its log: only what this start wrote counts
            offset = log.tell()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True, cwd="/")
        h["unshare_pid"] = proc.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(log_path, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
            if text.rstrip().endswith("ready %s" % name):
                break
            if proc.poll() is not None:
                raise FleetError("host %s did not start: %s" % (name, text.strip()[-2000:]))
            time.sleep(0.05)
        else:
            raise FleetError("host %s did not become ready in 30 s (log %s)" % (name, log_path))
        # unshare --fork: PID 1 of the host is unshare's only child
        init = children(proc.pid)
        if len(init) != 1:
            raise FleetError("host %s: expected one child of unshare (pid %d), found %s" % (name, proc.pid, init))
        h["init_pid"] = init[0]
        h["pidns"] = pid_ns(init[0])
        self.save()
        self.start_sshd(name)

    def nsenter(self, name, argv, check=True, timeout=60):
        h = self.host(name)
        return run(["nsenter", "--target", str(h["init_pid"]), "--mount", "--pid", "--net", "--wd=/", "--",
                    *argv], check=check, timeout=timeout)

    def host_pids(self, name):
        """Every live process in the host's PID namespace (root-namespace pids)."""
        h = self.host(name)
        want = h.get("pidns")
        if not want or not alive(h["init_pid"] or 0):
            return []
        return [p for p in pids() if pid_ns(p) == want and alive(p)]

    def sshd_pids(self, name):
        return [p for p in self.host_pids(name) if (comm(p) or "").startswith("sshd")]

    def start_sshd(self, name):
        h = self.host(name)
        self.nsenter(name, [SSHD, "-f", IN_HOST_SSHD_CONFIG, "-E", IN_HOST_SSHD_LOG])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((h["address"], 22), timeout=1) as conn:
                if conn.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        raise FleetError("sshd of %s does not answer on %s:22 (log %s)" % (
            name, h["address"], self.in_host(name, IN_HOST_SSHD_LOG)))

    def stop_sshd(self, name):
        """The host's sshd and every sshd process of it (the sessions that
        Ansible's ControlPersist keeps open too): unreachable at once."""
        left = kill_and_wait(self.sshd_pids(name))
        if left:
            raise FleetError("sshd processes of %s did not stop: %s" % (name, left))

    def stop_host(self, name):
        h = self.host(name)
        targets = self.host_pids(name)
        for pid in (h.get("init_pid"), h.get("unshare_pid")):
            if pid and alive(pid):
                targets.append(pid)
        left = kill_and_wait(sorted(set(targets)), timeout=10)
        if left:
            raise FleetError("processes of host %s did not stop: %s" % (name, left))
        h["init_pid"] = h["unshare_pid"] = None
        self.save()

    def restart_host(self, name):
        self.stop_host(name)
        self.start_host(name)
        if self.host(name)["role"] == "site":
            self.start_mm()
        if self.host(name)["role"] == "client":
            self.start_smsrun(name)

    def healthy(self, name):
        """Why a host is not as `up` made it (empty when it is)."""
        h = self.host(name)
        problems = []
        if not h.get("init_pid") or not alive(h["init_pid"]):
            return ["init is not running"]
        if not self.sshd_pids(name):
            problems.append("sshd is not running")
        state = run(["ip", "-o", "link", "show", h["veth"]], check=False).stdout
        if "state DOWN" in state or ",UP" not in state.split(">")[0]:
            problems.append("link %s is down" % h["veth"])
        if fleet_netem.has_qdisc(h["veth"]):
            problems.append("link %s has a netem delay" % h["veth"])
        mounts = read_proc(h["init_pid"], "mountinfo") or b""
        for line in mounts.decode("utf-8", "replace").splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/mnt/c" and " - tmpfs " in line:
                problems.append("its drive is a small tmpfs")
        return problems

    # -- processes inside the hosts: the twin and SMSRUN32 -------------------------------
    def start_mm(self):
        self.nsenter(self.site_server, [HOST_PYTHON, IN_HOST_TOOLS + "/sms-lab", "mm", "--root", IN_HOST_MM,
                                        "--detach"])

    def start_smsrun(self, name, hung=None, stubborn=False, lifetime=None):
        h = self.host(name)
        if hung is None:
            hung = h.get("smsrun") == "hung"
        argv = [HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "smsrun"]
        if hung:
            argv.append("--hung")
        if stubborn:
            argv.append("--stubborn")
        # Long enough to outlive a slow test run (they end with the host, at
        # reset and at down); a hung pair burns a fifth of a core each, not
        # more: two instances are what makes it hung.
        argv += ["--lifetime", repr(float(lifetime or STANDIN_LIFETIME))]
        if hung:
            argv += ["--cpu", repr(HUNG_CPU)]
        self.nsenter(name, argv)
        return self.smsrun_pids(name)

    def smsrun_pids(self, name):
        return sorted(p for p in self.host_pids(name) if comm(p) == "SMSRUN32")

    def start_processes(self):
        self.start_mm()
        if self.state.get("smsrun", True):
            for name in self.clients:
                self.start_smsrun(name)

    def module_pids(self, name):
        """Processes an Ansible task runs on the host: below an sshd, not sshd."""
        mine = set(self.host_pids(name))
        sshd = {p for p in mine if (comm(p) or "").startswith("sshd")}
        found = []
        for pid in mine - sshd:
            parent, seen = ppid(pid), 0
            while parent and parent in mine and seen < 64:
                if parent in sshd:
                    found.append(pid)
                    break
                parent, seen = ppid(parent), seen + 1
        return sorted(found)

    def settle_modules(self, timeout=20.0):
        """After the controller was killed: let module processes still running
        on the hosts finish on their own; kill the ones still there after
        `timeout` (they block writing to the dead controller). Returns
        {host: [pids killed]}."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self.module_pids(h) for h in self.hosts):
                return {}
            time.sleep(0.2)
        killed = {}
        for name in self.hosts:
            left = self.module_pids(name)
            if left:
                kill_and_wait(left)
                killed[name] = left
        return killed

    # -- faults -----------------------------------------------------------------------------
    def link(self, name, up):
        """Cut (or restore) a host's link. A logon server cut off is cut off
        from the site's Maintenance Manager too (the twin skips it)."""
        h = self.host(name)
        run(["ip", "link", "set", h["veth"], "up" if up else "down"])
        if h["role"] in ("site", "logon"):
            skip = set(self.state.get("skip", []))
            skip = skip - {name} if up else skip | {name}
            self.state["skip"] = sorted(skip)
            labmm.write_skip(self.lab, skip)
            self.save()

    def netem(self, name, delay_ms):
        fleet_netem.delay(self.host(name)["veth"], delay_ms)

    def netem_clear(self, name):
        fleet_netem.clear(self.host(name)["veth"])

    def small_drive(self, name, free):
        out = self.nsenter(name, [HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "small-drive", "--free",
                                  str(int(free))]).stdout
        return json.loads(out.strip().splitlines()[-1])

    # -- reset between tests ------------------------------------------------------------------
    def reset(self):
        """Every host back to its state right after `up`, under the same mounts:
        faults undone, the lab tree rewritten in place, the twin and the
        stand-ins started afresh, Ansible's leftovers in /root and /tmp gone."""
        for name in self.hosts:
            h = self.host(name)
            if fleet_netem.has_qdisc(h["veth"]):
                self.netem_clear(name)
            run(["ip", "link", "set", h["veth"], "up"])
        self.state["skip"] = []
        self.save()
        for name in self.hosts:
            problems = self.healthy(name)
            if problems and problems != ["sshd is not running"]:
                self.stop_host(name)
        for name in self.hosts:
            if not self.host(name).get("init_pid"):
                self.start_host(name)
            else:
                keep = {self.host(name)["init_pid"]}
                # the listening sshd (child of init) stays; sessions, module
                # processes, stand-ins and the twin go
                keep |= {p for p in self.sshd_pids(name) if ppid(p) == self.host(name)["init_pid"]}
                kill_and_wait([p for p in self.host_pids(name) if p not in keep])
                if not self.sshd_pids(name):
                    self.start_sshd(name)
            # the stand-ins' faults (IE 4.01 setup running, a service that fails to start)
            for marker in ("ie401.json", "svcfail"):
                path = self.in_host(name, "/run/sms-fleet/lab/run/" + marker)
                if os.path.lexists(path):
                    os.unlink(path)
            for folder in ("/root/.ansible", "/tmp", "/var/tmp"):
                top = self.in_host(name, folder)
                if os.path.isdir(top):
                    for entry in os.listdir(top):
                        path = os.path.join(top, entry)
                        if os.path.isdir(path) and not os.path.islink(path):
                            shutil.rmtree(path)
                        else:
                            os.unlink(path)
        self._rewrite_lab()
        self.start_processes()

    def _rewrite_lab(self):
        spec = Spec.from_dict(self.state["spec"])
        staging = os.path.join(self.root, "lab.fresh")
        shutil.rmtree(staging, ignore_errors=True)
        labbuild.write_tree(staging, spec)
        for name in self.hosts:
            replace_contents(os.path.join(self.lab, "hosts", name), os.path.join(staging, "hosts", name))
        shutil.rmtree(staging)
        rdir = os.path.join(self.lab, "run")
        for entry in os.listdir(rdir):
            os.unlink(os.path.join(rdir, entry))
        labmm.write_skip(self.lab, [])
        atomic_json(os.path.join(rdir, labmm.STATE), labmm.initial_state(self.lab, spec))

    # -- down and the leak check ----------------------------------------------------------------
    def down(self):
        """Stop everything the fleet started and remove its folder. Idempotent."""
        errors = []
        if self.state:
            for name in list(self.hosts):
                try:
                    self.stop_host(name)
                except FleetError as exc:
                    errors.append(str(exc))
            present_links = links()
            for name, h in self.hosts.items():
                if h["veth"] in present_links:
                    run(["ip", "link", "del", h["veth"]], check=False)
                if h["netns"] in netns_names():
                    run(["ip", "netns", "del", h["netns"]], check=False)
            if self.state["bridge"] in links():
                run(["ip", "link", "del", self.state["bridge"]], check=False)
        # The controller's ControlPersist masters for these hosts end when the
        # hosts' sshd is gone; any still waiting go now.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and self._own_processes():
            time.sleep(0.1)
        kill_and_wait(self._own_processes())
        left = self.leftovers()
        if left:
            errors.append("left behind: " + "; ".join(left))
        if errors:
            raise FleetError("; ".join(errors))
        if os.path.isdir(self.root):
            shutil.rmtree(self.root)
        self.state = None

    def _own_processes(self):
        mine = ancestors()
        found = []
        for pid in pids():
            if pid in mine:
                continue
            args = cmdline(pid)
            if any(self.root + "/" in a or a == self.root for a in args) and alive(pid):
                found.append(pid)
        return found

    def leftovers(self):
        """What of this fleet still exists besides its folder: namespaces,
        mounts, processes (init, sshd, stand-ins, the twin, SSH masters),
        links. Empty after a clean `down`."""
        found = []
        if not self.state:
            return found
        fid = self.state["id"]
        for ns in sorted(netns_names()):
            if ns.startswith("smsfleet%d-" % fid):
                found.append("network namespace %s" % ns)
        names = {h["veth"] for h in self.hosts.values()} | {self.state["bridge"]}
        for link in sorted(links() & names):
            found.append("link %s" % link)
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                if self.root in fields[4] or "/run/netns/smsfleet%d-" % fid in fields[4]:
                    found.append("mount %s" % fields[4])
        spaces = {h.get("pidns") for h in self.hosts.values() if h.get("pidns")}
        for pid in pids():
            if pid_ns(pid) in spaces and alive(pid):
                found.append("process %d (%s) in a host's PID namespace" % (pid, comm(pid)))
        for pid in self._own_processes():
            found.append("process %d (%s): %s" % (pid, comm(pid), " ".join(cmdline(pid))[:200]))
        return found

    # -- status ---------------------------------------------------------------------------------
    def status(self):
        out = {"root": self.root, "up": bool(self.state), "hosts": {}}
        if not self.state:
            return out
        out.update(bridge=self.state["bridge"], subnet=self.state["subnet"], inventory=self.inventory)
        for name, h in sorted(self.hosts.items(), key=lambda item: item[1]["index"]):
            entry = {"role": h["role"], "address": h["address"], "init_pid": h.get("init_pid"),
                     "problems": self.healthy(name), "sshd": self.sshd_pids(name)}
            if h["role"] == "client":
                entry["smsrun32"] = self.smsrun_pids(name)
            out["hosts"][name] = entry
        return out


def replace_contents(live, fresh):
    """Make folder `live` hold what `fresh` holds, keeping every folder that
    exists in both (a host bind-mounts some of them: its drive, the shares)."""
    for entry in os.listdir(live):
        path, new = os.path.join(live, entry), os.path.join(fresh, entry)
        if os.path.isdir(path) and not os.path.islink(path) and os.path.isdir(new):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    for entry in os.listdir(fresh):
        path, new = os.path.join(live, entry), os.path.join(fresh, entry)
        if os.path.isdir(path) and os.path.isdir(new):
            replace_contents(path, new)
        else:
            os.rename(new, path)
    st = os.stat(fresh)
    os.utime(live, ns=(st.st_atime_ns, st.st_mtime_ns))


def sshd_config(address):
    return "\n".join([
        "# sshd of one fleet host (written by fleet/sms-fleet): key-only root login.",
        "ListenAddress %s:22" % address,
        "HostKey /run/sms-fleet/ssh/ssh_host_ed25519_key",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "StrictModes yes",
        "UsePAM no",
        "UseDNS no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "PermitTunnel no",
        "PrintMotd no",
        # a host whose controller vanished (link down, controller killed)
        # drops the session within 15 s instead of keeping it for hours
        "ClientAliveInterval 5",
        "ClientAliveCountMax 3",
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "Subsystem sftp internal-sftp",
        # VERBOSE names every session (a command, or sftp): what the tests count
        "LogLevel VERBOSE",
        "",
    ])
