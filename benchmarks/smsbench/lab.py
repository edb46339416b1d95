"""The lab a benchmark measures against: built once, prepared once (site
staged, logon servers converged), then put back to its pristine clients
before every run that needs a fresh lab, and checked after every run that
changed it. The lab tool is the world; the benchmark reads the lab's files
as a test does, never the product's state.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_TOOL = REPO / "lab" / "sms-lab"
MANIFEST = REPO / "hotfixes" / "Q216552" / "manifest.json"
CLIENT_BIN = ("MS", "SMS", "BIN")
PLATFORM_DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin", "mips": "Mips.bin"}

# Module runs are counted by the interpreter they run with: a link per host
# to this script, which notes "<host> <module file>" and execs the real Python.
# sh is used so counting adds one exec, not a second Python start-up.
COUNTING_INTERPRETER = """#!/bin/sh
# Written by benchmarks/smsbench/lab.py: counts module runs per host.
printf '%s %s\\n' "${0##*/}" "${1##*/}" >> "$BENCH_MODULE_LOG"
exec "$BENCH_PYTHON" "$@"
"""


class BenchError(Exception):
    """The benchmark cannot give a result: a wrong outcome or a failed step."""


def tool(name):
    """An Ansible command from this interpreter's virtualenv (else PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BenchError(
            "%s not found beside %s nor on PATH: run with the checkout's .venv/bin/python" % (name, sys.executable)
        )
    return found


def lab_cmd(*args, check=True):
    return subprocess.run(
        [sys.executable, str(LAB_TOOL), *map(str, args)],
        cwd=REPO,
        check=check,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def ini_value(data, section, key):
    """A key's value in one section of CRLF INI bytes (names case-insensitive)."""
    current = None
    for line in data.decode("latin-1").split("\r\n"):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip().lower()
        elif current == section.lower() and "=" in line and line.split("=", 1)[0].strip().lower() == key.lower():
            return line.split("=", 1)[1].strip()
    return None


class Lab:
    """A built lab under `root` with its clients' pristine copy in `pristine`."""

    def __init__(self, root, work):
        self.root = Path(root)
        self.work = Path(work)
        self.inventory = self.root / "inventory.yml"
        self.pristine = self.work / "pristine"
        self.manifest_path = MANIFEST
        self.manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        self.clients = {}
        self.interpreters = self.work / "interpreters"
        self.module_log = self.work / "modules.log"

    @classmethod
    def build(cls, root, work, clients, alpha, logon_servers=2, smsrun=False, hung=0, idle_timeout=900):
        """Build a lab; the Maintenance Manager twin passes only when asked (cycle of an hour)."""
        lab = cls(root, work)
        args = [
            "build",
            "--root",
            lab.root,
            "--clients",
            clients,
            "--alpha",
            alpha,
            "--logon-servers",
            logon_servers,
            "--hung",
            hung,
            "--cycle",
            3600,
            "--idle-timeout",
            idle_timeout,
        ]
        if not smsrun:
            args.append("--no-smsrun")
        done = lab_cmd(*args, check=False)
        if done.returncode != 0:
            raise BenchError("lab build failed (rc=%d): %s" % (done.returncode, done.stderr.strip()[-2000:]))
        lab.clients = lab.read_clients()
        if len(lab.clients) != clients:
            raise BenchError("%s: %d clients, expected %d" % (lab.inventory, len(lab.clients), clients))
        lab.write_interpreters()
        return lab

    def down(self):
        lab_cmd("down", "--root", self.root, check=False)

    def host(self, name, *parts):
        return self.root.joinpath("hosts", name, *parts)

    def read_clients(self):
        """{client: platform} from the lab's inventory (group var sms_client_platform)."""
        import yaml  # ansible-core's dependency, in the virtualenv

        data = yaml.safe_load(self.inventory.read_text(encoding="utf-8"))
        found = {}

        def walk(group, platform):
            group = group or {}
            platform = (group.get("vars") or {}).get("sms_client_platform", platform)
            for name in group.get("hosts") or {}:
                found[name] = platform
            for child in (group.get("children") or {}).values():
                walk(child, platform)

        walk(data["all"]["children"]["clients"], None)
        missing = sorted(h for h, p in found.items() if not p)
        if missing:
            raise BenchError("%s: no sms_client_platform for %s" % (self.inventory, ", ".join(missing[:5])))
        return dict(sorted(found.items()))

    def write_interpreters(self):
        self.interpreters.mkdir(parents=True, exist_ok=True)
        script = self.interpreters / ".count-module-runs"
        script.write_text(COUNTING_INTERPRETER, encoding="ascii")
        script.chmod(0o755)
        # the lab's hosts, and the controller's own tasks (rollout.yml's plan)
        hosts = [p.name for p in (self.root / "hosts").iterdir() if p.is_dir()] + ["localhost"]
        for name in hosts:
            link = self.interpreters / name
            if not link.is_symlink():
                link.symlink_to(script.name)

    def interpreter_vars(self):
        """Extra vars that run every module through the counting interpreter."""
        return {"ansible_python_interpreter": str(self.interpreters) + "/{{ inventory_hostname }}"}

    def interpreter_env(self):
        return {"BENCH_MODULE_LOG": str(self.module_log), "BENCH_PYTHON": sys.executable}

    def module_runs(self):
        """{host: {module: runs}} since the log was last cleared."""
        runs = {}
        if self.module_log.exists():
            for line in self.module_log.read_text(encoding="utf-8").splitlines():
                host, _sep, module_file = line.partition(" ")
                module = module_file.replace("AnsiballZ_", "").rsplit(".py", 1)[0]
                per_host = runs.setdefault(host, {})
                per_host[module] = per_host.get(module, 0) + 1
        return runs

    def clear_module_log(self):
        self.module_log.unlink(missing_ok=True)

    # -- pristine copy ---------------------------------------------------

    def snapshot(self):
        """Keep a copy of every client as it is now (before any client run)."""
        if self.pristine.exists():
            shutil.rmtree(self.pristine)
        self.pristine.mkdir(parents=True)
        for name in self.clients:
            shutil.copytree(self.host(name), self.pristine / name, symlinks=True, copy_function=shutil.copy2)
            # copytree sets folder dates before their files are written: set them again.
            copy_dir_times(self.host(name), self.pristine / name)

    def reset(self):
        """Put every client back to its pristine copy (a real copy: nothing shared)."""
        for name in self.clients:
            target = self.host(name)
            spare = target.with_name("." + name + ".old")
            os.replace(target, spare)
            shutil.copytree(self.pristine / name, target, symlinks=True, copy_function=shutil.copy2)
            copy_dir_times(self.pristine / name, target)
            shutil.rmtree(spare)

    # -- checks ----------------------------------------------------------

    def server_version(self, server):
        data = self.host(server, "SMS", "Logon.srv", "Cl_nt.txt").read_bytes()
        return ini_value(data, "Copy List", "CopyListVersion")

    def check_upgraded(self, clients):
        """Every client in `clients` holds the hotfix and its SMS.INI says so.

        Files: each manifest file of the platform present once (names compared
        case-insensitively), with the manifest's SHA-256 and date. SMS.INI:
        every line byte for byte as before, CRLF kept, except [SMS]
        CopyListVersion (= the client's logon server's copy list) and [Local]
        SetupPhase (= installed). Returns the number of clients checked.
        """
        wrong = []
        versions = {}
        for name in clients:
            platform = self.clients[name]
            bin_dir = self.host(name, *CLIENT_BIN)
            by_lower = {}
            for entry in os.scandir(bin_dir):
                if entry.is_file(follow_symlinks=False):
                    by_lower.setdefault(entry.name.lower(), []).append(entry.path)
            for spec in self.manifest["platforms"][platform]["files"]:
                paths = by_lower.get(spec["name"].lower(), [])
                if len(paths) != 1:
                    wrong.append("%s: %d files named %s in %s" % (name, len(paths), spec["name"], bin_dir))
                    continue
                digest = sha256(paths[0])
                if digest != spec["sha256"]:
                    wrong.append(
                        "%s: %s has SHA-256 %s…, manifest %s…" % (name, paths[0], digest[:12], spec["sha256"][:12])
                    )
                want = datetime.datetime.fromisoformat(spec["date"].replace("Z", "+00:00")).timestamp()
                if int(os.stat(paths[0]).st_mtime) != int(want):
                    wrong.append(
                        "%s: %s dated %s, manifest %s" % (name, paths[0], os.stat(paths[0]).st_mtime, spec["date"])
                    )
            wrong += self._check_sms_ini(name, versions)
        if wrong:
            more = " (and %d more)" % (len(wrong) - 10) if len(wrong) > 10 else ""
            raise BenchError("clients not upgraded as they should be: " + "; ".join(wrong[:10]) + more)
        return len(clients)

    def _check_sms_ini(self, name, versions):
        before = (self.pristine / name / "SMS.INI").read_bytes()
        after = self.host(name, "SMS.INI").read_bytes()
        server = ini_value(before, "Servers", "Current_Logon_Server").strip("\\").split("\\")[0].lower()
        if server not in versions:
            versions[server] = self.server_version(server)
        old, new = before.split(b"\r\n"), after.split(b"\r\n")
        if any(b"\n" in line or b"\r" in line for line in new):
            return ["%s: SMS.INI lost its CRLF line ends" % name]
        if len(old) != len(new):
            return ["%s: SMS.INI has %d lines, had %d" % (name, len(new), len(old))]
        allowed = {b"copylistversion", b"setupphase"}
        for a, b in zip(old, new):
            if a != b and a.split(b"=", 1)[0].strip().lower() not in allowed:
                return ["%s: SMS.INI line %r became %r" % (name, a, b)]
        wrong = []
        if ini_value(after, "SMS", "CopyListVersion") != versions[server]:
            wrong.append(
                "%s: SMS.INI CopyListVersion %s, logon server %s has %s"
                % (name, ini_value(after, "SMS", "CopyListVersion"), server, versions[server])
            )
        if ini_value(after, "Local", "SetupPhase") != "installed":
            wrong.append("%s: SMS.INI SetupPhase %s" % (name, ini_value(after, "Local", "SetupPhase")))
        return wrong

    def check_pristine(self, clients):
        """Clients a run must not have touched: SMS.INI and BIN as in the pristine copy."""
        wrong = []
        for name in clients:
            if self.host(name, "SMS.INI").read_bytes() != (self.pristine / name / "SMS.INI").read_bytes():
                wrong.append("%s: SMS.INI changed" % name)
            now = sorted(os.listdir(self.host(name, *CLIENT_BIN)))
            if now != sorted(os.listdir(self.pristine.joinpath(name, *CLIENT_BIN))):
                wrong.append("%s: BIN holds %s" % (name, ", ".join(now)))
        if wrong:
            raise BenchError("clients outside the run were touched: " + "; ".join(wrong[:10]))


def smsrun_pids(lab, client):
    """Live SMSRUN32 processes of one lab client, read from /proc as the product does."""
    marker = ("--image=" + str(lab.host(client, *CLIENT_BIN)) + "/").encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry, "rb") as handle:
                comm = handle.read().strip()
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read()
            with open("/proc/%s/stat" % entry, "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if comm == b"SMSRUN32" and marker in cmdline and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def prepare(lab, log, run):
    """Not measured: stage the site and converge the logon servers with the project's own tiers."""
    argv = [
        tool("ansible-playbook"),
        "-i",
        str(lab.inventory),
        "playbooks/plan.yml",
        "playbooks/site.yml",
        "playbooks/logon.yml",
    ]
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        SMS_REPORT_DIR=str(lab.work / "reports"),
    )
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    usage = run(argv, env, log)
    if usage.rcs != [0]:
        raise BenchError("preparing the lab failed (rc=%s); log %s" % (usage.rcs, log))
    return usage.wall_s


def copy_dir_times(src, dst):
    for folder, _dirs, _files in os.walk(src):
        rel = os.path.relpath(folder, src)
        shutil.copystat(folder, os.path.join(dst, rel))
