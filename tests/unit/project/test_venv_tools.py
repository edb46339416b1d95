"""The virtualenv's tools work when called by path, with no virtualenv activated (bin/sms-venv-path)."""

import os
import subprocess
import sys

from sms_testlib import REPO


def test_molecule_called_by_path_finds_ansible_config_without_the_venv_on_path():
    venv_bin = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run(
        [os.path.join(venv_bin, "molecule"), "list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "FileNotFoundError" not in out and "Traceback" not in out, out[-2000:]
    assert "default" in out  # the scenario is listed
