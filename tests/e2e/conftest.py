"""End-to-end plumbing: a fresh lab twin per test, playbooks driven through
ansible-runner's Python API (what AWX uses), and readers for the lab's files.

A test asserts on the lab's files (hashes, SMS.INI bytes, processes), not only
on the run's return code.
"""

import json
import os
import subprocess
import sys

import ansible_runner
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_TOOL = os.path.join(REPO, "lab", "sms-lab")
MANIFEST = os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")
sys.path.insert(0, os.path.join(REPO, "tests"))

from sms_testlib import sha  # noqa: E402


def load_manifest_json():
    with open(MANIFEST) as handle:
        return json.load(handle)


def lab_cmd(*args, check=True):
    return subprocess.run([sys.executable, LAB_TOOL, *args], check=check, capture_output=True, text=True,
                          timeout=120)


class Lab:
    def __init__(self, root):
        self.root = str(root)
        self.inventory = os.path.join(self.root, "inventory.yml")

    def host(self, name, *parts):
        return os.path.join(self.root, "hosts", name, *parts)

    @property
    def spec(self):
        with open(os.path.join(self.root, "lab.json")) as handle:
            return json.load(handle)

    def clients(self):
        return sorted(name for name in os.listdir(os.path.join(self.root, "hosts")) if name.startswith("client"))

    def logon_servers(self):
        return sorted(name for name in os.listdir(os.path.join(self.root, "hosts"))
                      if os.path.isdir(self.host(name, "SMS", "Logon.srv")))

    def files(self, *parts):
        """name (lower case) -> sha256 of every file in a folder."""
        folder = os.path.join(self.root, "hosts", *parts)
        result = {}
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    result[name.lower()] = sha(handle.read())
        return result

    def sms_ini(self, client):
        with open(self.host(client, "SMS.INI"), "rb") as handle:
            return handle.read()

    def ini_value(self, client, key):
        for line in self.sms_ini(client).decode("latin-1").split("\r\n"):
            if line.lower().startswith(key.lower() + "="):
                return line.split("=", 1)[1]
        return None

    def copy_list_version(self, server, name="Cl_nt.txt"):
        with open(self.host(server, "SMS", "Logon.srv", name), "rb") as handle:
            for line in handle.read().decode("latin-1").split("\r\n"):
                if line.lower().startswith("copylistversion="):
                    return int(line.split("=", 1)[1])
        return None

    def snapshot(self, *parts):
        """relative path -> (sha256, mtime) below a host folder (or the lab)."""
        top = os.path.join(self.root, "hosts", *parts)
        state = {}
        for folder, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as handle:
                    state[os.path.relpath(path, top)] = (sha(handle.read()), int(os.stat(path).st_mtime))
        return state

    def cmd(self, *args, check=True):
        return lab_cmd(args[0], "--root", self.root, *args[1:], check=check)

    def status(self):
        return json.loads(self.cmd("status").stdout)


@pytest.fixture
def make_lab(tmp_path):
    """Build a lab: make_lab(clients=12, hung=1, cycle=2, ...) -> Lab."""
    built = []

    def _make(**options):
        root = tmp_path / ("lab%d" % len(built))
        args = ["build", "--root", str(root)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    args += [flag, str(item)]
            elif value is not False and value is not None:
                args += [flag, str(value)]
        built.append(root)
        lab_cmd(*args)
        return Lab(root)

    yield _make
    for root in built:
        lab_cmd("down", "--root", str(root), check=False)


class Run:
    """One playbook run: return code, per-host stats and task results."""

    def __init__(self, runner, report_dir):
        self.runner = runner
        self.rc = runner.rc
        self.report_dir = report_dir
        self.events = list(runner.events)
        self.stats = runner.stats or {}

    @property
    def stdout(self):
        return "\n".join(event.get("stdout", "") for event in self.events)

    def results(self, action):
        """host -> last result of tasks running `action` (short name)."""
        found = {}
        for event in self.events:
            data = event.get("event_data", {})
            if event.get("event") not in ("runner_on_ok", "runner_on_failed", "runner_on_skipped",
                                          "runner_on_unreachable"):
                continue
            if data.get("task_action", "").split(".")[-1] != action:
                continue
            res = dict(data.get("res") or {})
            res["_event"] = event["event"]
            found[data["host"]] = res
        return found

    def changed(self):
        return sum((self.stats.get("changed") or {}).values())

    def failed_hosts(self):
        return sorted(set((self.stats.get("failures") or {})) | set((self.stats.get("dark") or {})))

    def report(self):
        runs = sorted(os.listdir(self.report_dir)) if os.path.isdir(self.report_dir) else []
        if not runs:
            return None
        with open(os.path.join(self.report_dir, runs[-1], "report.json")) as handle:
            return json.load(handle)


@pytest.fixture
def run_playbook(tmp_path):
    """run_playbook(lab, 'rollout.yml', extravars={}, check=False, diff=False)."""
    counter = [0]

    def _run(lab, playbook="rollout.yml", extravars=None, check=False, diff=False, limit=None, envvars=None):
        counter[0] += 1
        private = tmp_path / ("runner%d" % counter[0])
        reports = tmp_path / ("reports%d" % counter[0])
        cmdline = []
        if check:
            cmdline.append("--check")
        if diff:
            cmdline.append("--diff")
        env = {"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "SMS_REPORT_DIR": str(reports),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
        env.update(envvars or {})
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=REPO,
            playbook=os.path.join(REPO, playbook),
            inventory=lab.inventory,
            extravars=extravars or {},
            cmdline=" ".join(cmdline) or None,
            limit=limit,
            envvars=env,
            quiet=True,
            timeout=900,
        )
        run = Run(runner, str(reports))
        with open(os.path.join(str(private), "stdout.txt"), "w") as handle:
            handle.write(run.stdout)
        return run

    return _run
