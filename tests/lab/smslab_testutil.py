"""Helpers shared by the lab twin's tests (a unique module name, so it
never clashes with other test folders' helpers)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "lab", "sms-lab")
sys.path.insert(0, os.path.join(REPO, "lab"))


def sms_lab(*args, check=True, timeout=60):
    """Run lab/sms-lab with this interpreter; returns CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, TOOL, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            "sms-lab %s failed (%d):\n%s%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr)
        )
    return proc


def processes_naming(root):
    """Live (non-zombie) pids whose command line names the lab root."""
    found = []
    needle = root.rstrip("/") + "/"
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as fh:
                args = fh.read().decode("utf-8", "replace").split("\0")
            with open("/proc/%s/stat" % d) as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and any(a == root or needle in a for a in args):
            found.append(int(d))
    return found
