"""End-to-end plumbing shared by tests/e2e: the lab twin's readers and one
playbook run's results. Fixtures are in tests/e2e/conftest.py."""

import json
import os
import stat
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_TOOL = os.path.join(REPO, "lab", "sms-lab")
MANIFEST = os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")

from sms_testlib import sha  # noqa: E402


def load_manifest_json():
    with open(MANIFEST) as handle:
        return json.load(handle)


def lab_cmd(*args, check=True):
    return subprocess.run([sys.executable, LAB_TOOL, *args], check=check, capture_output=True, text=True, timeout=120)


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
        return sorted(
            name
            for name in os.listdir(os.path.join(self.root, "hosts"))
            if os.path.isdir(self.host(name, "SMS", "Logon.srv"))
        )

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


def results_of(events, action):
    """host -> the last result of tasks running `action` (short name) among ansible-runner events."""
    found = {}
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") not in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            continue
        if data.get("task_action", "").split(".")[-1] != action:
            continue
        res = dict(data.get("res") or {})
        res["_event"] = event["event"]
        found[data["host"]] = res
    return found


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
        return results_of(self.events, action)

    def changed(self):
        return sum((self.stats.get("changed") or {}).values())

    def failed_hosts(self):
        return sorted(set(self.stats.get("failures") or {}) | set(self.stats.get("dark") or {}))

    def report(self):
        runs = sorted(os.listdir(self.report_dir)) if os.path.isdir(self.report_dir) else []
        if not runs:
            return None
        with open(os.path.join(self.report_dir, runs[-1], "report.json")) as handle:
            return json.load(handle)


def full_listing(top):
    """Every file, folder and link below `top`: relative path -> (kind, sha256, size, mtime_ns, mode or target)."""
    out = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", None, None, None, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None, None, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as handle:
                    out[rel] = ("file", sha(handle.read()), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def failures(run):
    """[(host, task, msg)] of every failed task of a run."""
    out = []
    for event in run.events:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event["event_data"]
            out.append((data.get("host"), data.get("task"), str((data.get("res") or {}).get("msg", ""))))
    return out
