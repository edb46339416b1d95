"""End-to-end fixtures: a fresh lab twin per test, playbooks driven through
ansible-runner's Python API (what AWX uses). Readers live in tests/sms_e2e.py.

A test asserts on the lab's files (hashes, SMS.INI bytes, processes), not only
on the run's return code.
"""

import os
import sys

import ansible_runner
import pytest

from sms_e2e import REPO, Lab, Run, lab_cmd


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


@pytest.fixture
def run_playbook(tmp_path):
    """run_playbook(lab, 'rollout.yml', extravars={}, check=False, diff=False)."""
    counter = [0]

    def _run(lab, playbook="rollout.yml", extravars=None, check=False, diff=False, limit=None, envvars=None):
        counter[0] += 1
        private = tmp_path / ("runner%d" % counter[0])
        reports = tmp_path / ("reports%d" % counter[0])
        private.mkdir()
        cmdline = []
        if check:
            cmdline.append("--check")
        if diff:
            cmdline.append("--diff")
        env = {
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "SMS_REPORT_DIR": str(reports),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        }
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
