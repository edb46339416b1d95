"""A real SMB server for the tests: Debian's Samba in a network namespace of its own.

One `smbd`, started by the tests as root with its own configuration (no
system service is touched), listens on one address per lab host inside the
namespace. Each host's shares are what an SMS site shares, named as on the
real hosts: on the site and logon servers the SMS root (`SMS_SHRC`) and
`Logon.srv` (`SMS_SHR`), on clients the drive (`C$`). The per-address share
definitions use Samba's `%i` (the address the client connected to), so every
host has its own shares behind its own address, as on a real network.

Everything started here is stopped by `stop()`: smbd, the namespace, the veth
pair, the test user. Nothing is written outside the given folder.
"""

import os
import shutil
import signal
import subprocess
import time

NET = "10.213.200"
USER = "smsrolltest"


def run(*argv, check=True, **kwargs):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=60, **kwargs)


class Samba:
    """Samba serving `hosts` ({name: {"share name": folder}}) under `workdir`."""

    def __init__(self, workdir, hosts, password="Q216552-test-Pa55"):
        self.workdir = str(workdir)
        self.hosts = hosts
        self.password = password
        self.ns = "smssmb%d" % os.getpid()
        self.veth = ("smb%dh" % (os.getpid() % 100000), "smb%dn" % (os.getpid() % 100000))
        self.addresses = {name: "%s.%d" % (NET, 10 + i) for i, name in enumerate(sorted(hosts))}
        self.proc = None
        self._made = []

    # -- setup -------------------------------------------------------------------------------
    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self._network()
            self._config()
            self._user()
            self._smbd()
        except BaseException:
            self.stop()
            raise
        return self

    def _network(self):
        run("ip", "netns", "add", self.ns)
        self._made.append("netns")
        outer, inner = self.veth
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        self._made.append("veth")
        run("ip", "link", "set", inner, "netns", self.ns)
        run("ip", "addr", "add", "%s.1/24" % NET, "dev", outer)
        run("ip", "link", "set", outer, "up")
        run("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        for address in self.addresses.values():
            run("ip", "netns", "exec", self.ns, "ip", "addr", "add", "%s/24" % address, "dev", inner)
        run("ip", "netns", "exec", self.ns, "ip", "link", "set", inner, "up")

    def _config(self):
        state = os.path.join(self.workdir, "state")
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
            os.makedirs(os.path.join(state, sub), exist_ok=True)
        lines = [
            "[global]",
            "  interfaces = %s" % " ".join(self.addresses.values()),
            "  bind interfaces only = yes",
            "  server min protocol = SMB2_02",
            # One smbd serves every host's address here; without this it would hand a
            # second connection of the same client (same client GUID) to the process
            # of the first, with the first address's shares.
            "  server multi channel support = no",
            "  server role = standalone server",
            "  disable netbios = yes",
            "  smb ports = 445",
            "  private dir = %s/private" % state,
            "  lock directory = %s/lock" % state,
            "  state directory = %s/state" % state,
            "  cache directory = %s/cache" % state,
            "  pid directory = %s/pid" % state,
            "  ncalrpc dir = %s/ncalrpc" % state,
            "  passdb backend = tdbsam:%s/private/passdb.tdb" % state,
            "  log file = %s/smbd.log" % self.workdir,
            "  max log size = 1000",
            "  load printers = no",
            "  printing = bsd",
            "  printcap name = /dev/null",
            "  disable spoolss = yes",
            "  map to guest = never",
            "  restrict anonymous = 2",
            "  include = %s/shares.%%i.conf" % self.workdir,
        ]
        with open(os.path.join(self.workdir, "smb.conf"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        for name, shares in self.hosts.items():
            out = []
            for share, folder in sorted(shares.items()):
                out += [
                    "[%s]" % share,
                    "  path = %s" % folder,
                    "  read only = no",
                    "  valid users = %s" % USER,
                    "  force user = root",
                    "  create mask = 0644",
                    "  directory mask = 0755",
                    "  browseable = no",
                    "  strict locking = yes",
                ]
            with open(os.path.join(self.workdir, "shares.%s.conf" % self.addresses[name]), "w") as handle:
                handle.write("\n".join(out) + "\n")

    def _user(self):
        exists = run("id", USER, check=False).returncode == 0
        if not exists:
            run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER)
            self._made.append("user")
        run(
            "smbpasswd",
            "-c",
            os.path.join(self.workdir, "smb.conf"),
            "-s",
            "-a",
            USER,
            input="%s\n%s\n" % (self.password, self.password),
        )

    def _smbd(self):
        log = open(os.path.join(self.workdir, "smbd.stdout"), "w")
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                "smbd",
                "--foreground",
                "--debug-stdout",
                "-s",
                os.path.join(self.workdir, "smb.conf"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        probe = next(iter(self.addresses.values()))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smbd exited: %s" % self.log()[-2000:])
            if run("ip", "netns", "exec", self.ns, "ss", "-ltn", check=False).stdout.count(":445 ") >= 1:
                return
            time.sleep(0.2)
        raise RuntimeError("smbd did not listen on %s:445 within 30 s: %s" % (probe, self.log()[-2000:]))

    def log(self):
        path = os.path.join(self.workdir, "smbd.stdout")
        return open(path).read() if os.path.exists(path) else ""

    # -- faults ------------------------------------------------------------------------------
    def pause(self):
        """Take the server away (all of its addresses) without stopping smbd: the link goes down."""
        run("ip", "link", "set", self.veth[0], "down")

    def resume(self):
        run("ip", "link", "set", self.veth[0], "up")

    def drop(self, name):
        """Take one host's address away (that server is gone; the others answer)."""
        run("ip", "netns", "exec", self.ns, "ip", "addr", "del", "%s/24" % self.addresses[name], "dev", self.veth[1])

    def restore(self, name):
        run("ip", "netns", "exec", self.ns, "ip", "addr", "add", "%s/24" % self.addresses[name], "dev", self.veth[1])

    # -- teardown ----------------------------------------------------------------------------
    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # smbd forks per connection: anything left in the namespace goes too
        if "netns" in self._made:
            pids = run("ip", "netns", "pids", self.ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        if "veth" in self._made:
            run("ip", "link", "del", self.veth[0], check=False)
        if "netns" in self._made:
            run("ip", "netns", "del", self.ns, check=False)
        if "user" in self._made:
            run("userdel", USER, check=False)
        self._made = []

    def leftovers(self):
        """What of this server still exists (must be nothing after stop())."""
        out = []
        if self.ns in run("ip", "netns", "list", check=False).stdout:
            out.append("netns %s" % self.ns)
        if run("ip", "link", "show", self.veth[0], check=False).returncode == 0:
            out.append("veth %s" % self.veth[0])
        if self.proc is not None and self.proc.poll() is None:
            out.append("smbd pid %d" % self.proc.pid)
        return out


def available():
    """(True, "") when Samba tests can run here, else (False, why)."""
    if os.geteuid() != 0:
        return False, "the SMB tests start Samba in a network namespace, which needs root (CI runs as root)"
    for tool in ("smbd", "smbpasswd", "ip", "useradd"):
        if shutil.which(tool) is None:
            return False, "%s is not installed (make test-deps, as root, installs Debian's samba and iproute2)" % tool
    return True, ""
