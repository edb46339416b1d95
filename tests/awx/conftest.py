"""Fixtures of the AWX rehearsal: one lab and one rehearsal AWX per test
module; the lab is rebuilt in place between scenarios, so the inventory AWX
imported stays valid."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from awx_lab import Site  # noqa: E402
from awx_rehearsal import load_assets  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("awx")
    built = Site(work / "lab", work)
    yield built
    built.down()


@pytest.fixture
def fresh(site):
    """The shared site with its lab rebuilt: every scenario starts from the
    same untouched site."""
    site.build()
    return site


@pytest.fixture(scope="session")
def assets():
    return load_assets()
