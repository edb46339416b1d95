"""Fixtures for the lab twin's tests: every lab lives in tmp_path and is
always torn down (processes stopped, tree removed) by a finalizer."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smslab_testutil import processes_naming, sms_lab  # noqa: E402


@pytest.fixture
def lab(tmp_path):
    """Factory: lab(*build_args, name="lab") builds a lab and returns its root."""
    roots = []

    def make(*build_args, name="lab"):
        root = str(tmp_path / name)
        roots.append(root)
        sms_lab("build", "--root", root, *build_args)
        return root

    yield make
    for root in roots:
        sms_lab("down", "--root", root, check=False)
        assert processes_naming(root) == [], "processes of %s survived down" % root
