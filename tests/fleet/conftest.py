"""The SSH fleet, built once for the whole session (docs/FLEET.md).

Root only: when not root, every fleet test is skipped with the reason (and
`make test` prints it in pytest's summary); as root nothing is skipped for
that. Each test starts from a fleet reset in place (same namespaces, mounts
and sshd; the hosts' files rewritten, faults undone, stand-ins started
afresh). At the end the fleet is taken down and the fixture fails if any
namespace, mount, sshd, stand-in, link or SSH master is left behind.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

from sms_fleet import Player, fleetmod  # noqa: E402

NOT_ROOT = (
    "the SSH fleet tests need root (network, mount and PID namespaces, their own sshd): "
    "run make test as root, as CI does"
)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    fleetmod.require_root()  # as root, a missing sshd or ip fails here, never skips
    root = tmp_path_factory.mktemp("fleet")
    built = fleetmod.Fleet(str(root))
    built.up()
    yield built
    # down() checks what is left (namespaces, mounts, processes in the hosts'
    # PID namespaces or naming the fleet's folder, links) and fails naming it.
    built.down()


@pytest.fixture
def fresh(fleet):
    """The fleet as `up` left it, with no fault from an earlier test."""
    fleet.reset()
    for host in fleet.hosts:
        assert fleet.healthy(host) == [], (host, fleet.healthy(host))
    return fleet


@pytest.fixture
def play(fleet, tmp_path):
    return Player(fleet, tmp_path)
