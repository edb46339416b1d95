"""Shared test plumbing: import the project's modules and drive them.

The checkout is the sms.hotfix collection (galaxy.yml; collections/ links
to it). Ansible's own collection loader is installed on that path, so tests
import modules and their utilities exactly as Ansible does on a host
(`ansible_collections.sms.hotfix.plugins...`), and `run_module` runs a
module's main() through its argument spec as Ansible would hand it arguments.
"""

import importlib
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "lab"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from ansible.module_utils import basic  # noqa: E402
from sms_testlib import install_collection_loader, xdist_scope  # noqa: E402

install_collection_loader()
MODULES = "ansible_collections.sms.hotfix.plugins.modules."

MANIFEST = os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


def run_module(name, args, check_mode=False, diff=False, capsys=None):
    """Run module `name` with `args`; return its result dict.

    The result carries `failed` when the module failed. Output is read from
    stdout, the channel Ansible reads.
    """
    module = importlib.import_module(MODULES + name)
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    payload["_ansible_tmpdir"] = None
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    if capsys is not None:
        capsys.readouterr()
    try:
        module.main()
    except SystemExit:
        pass
    finally:
        basic._ANSIBLE_ARGS = None
        basic._ANSIBLE_PROFILE = None
    out = capsys.readouterr().out if capsys is not None else ""
    lines = [line for line in out.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise AssertionError("module %s printed no JSON result: %r" % (name, out))
    return json.loads(lines[-1])


@pytest.fixture
def module_runner(capsys):
    def _run(name, args, check_mode=False, diff=False):
        return run_module(name, args, check_mode=check_mode, diff=diff, capsys=capsys)

    return _run


@pytest.fixture(autouse=True)
def _modules_run_as_on_a_host(monkeypatch):
    """Once a test imports controller code, ansible-core treats the process as
    the controller and sends module warnings to Display instead of into the
    result; modules under test must behave as they do on a managed host."""
    from ansible.module_utils import _internal

    monkeypatch.setattr(_internal, "is_controller", False, raising=False)


# make test runs pytest on two workers (pytest-xdist, -n 2). A scope is sent
# whole to one worker: each test file, so its module fixtures (a lab, the AWX
# site) are built once; and each suite whose session fixture is one shared
# world (the fleet: fixed network namespaces; Samba: its namespace and test
# account), so two workers never build it at once. (pytest-xdist's own
# `loadgroup` marks tests by renaming their node ids, which pytest 9.2 no
# longer reads: its groups were silently ignored.)
@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return SuiteScheduling(config, log)
