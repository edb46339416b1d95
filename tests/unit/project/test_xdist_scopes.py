"""make test's two pytest workers: a file, or a shared-world suite, runs whole in one.

pytest-xdist's own `loadgroup` stopped grouping under pytest 9.2 without a
word; this runs real workers and reads which one ran each test.
"""

import os
import re
import subprocess
import sys

from sms_testlib import REPO, xdist_scope

FILES = [
    "tests/unit/plugins/module_utils/test_sms_ini.py",
    "tests/unit/plugins/module_utils/test_sms_zipimport.py",
    "tests/unit/plugins/module_utils/test_sms_manifest.py",
]


def test_the_scope_is_the_file_or_the_shared_world_suite():
    assert (
        xdist_scope("tests/unit/plugins/module_utils/test_sms_ini.py::test_x[a::b]")
        == "tests/unit/plugins/module_utils/test_sms_ini.py"
    )
    assert xdist_scope("tests/fleet/test_fleet_e2e.py::test_x") == "tests/fleet"
    assert xdist_scope("tests/fleet/test_fleet_faults.py::test_y") == "tests/fleet"
    assert xdist_scope("tests/smb/test_smb_e2e.py::test_z") == "tests/smb"
    assert xdist_scope("tests/e2e/test_rollout_e2e.py::test_w") == "tests/e2e/test_rollout_e2e.py"


def test_two_workers_run_each_file_whole():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "-v",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=--import-mode=importlib",
        ]
        + FILES,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, PYTEST_ADDOPTS=""),
    )
    assert done.returncode == 0, done.stdout[-3000:]
    workers = {}
    for worker, nodeid in re.findall(r"^\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+)", done.stdout, re.M):
        workers.setdefault(xdist_scope(nodeid), set()).add(worker)
    assert sorted(workers) == sorted(FILES), done.stdout[-3000:]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), workers
    # both workers were used: the files were shared out, not run in a row
    assert len(set().union(*workers.values())) == 2, workers
