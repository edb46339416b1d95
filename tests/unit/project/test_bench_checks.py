"""The benchmark's own check (benchmarks/smsbench/lab.py) must refuse a fast
wrong run: a client without the hotfix, a wrong date, a lost CRLF, an
SMS.INI line other than the two keys changed. Built on a 3-client lab with
no processes; the "upgrade" is done by hand here, so only the check is tested.
"""

import datetime
import os
import shutil
import sys

import pytest

from sms_e2e import REPO, load_manifest_json

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from smsbench.lab import BenchError, Lab  # noqa: E402

HOTFIX = load_manifest_json()
PAYLOAD = os.path.join(REPO, "hotfixes", "Q216552")


def upgrade_by_hand(lab, client):
    """What a correct upgrade leaves: payload files under their on-disk names, two keys set."""
    platform = lab.clients[client]
    bin_dir = lab.host(client, "MS", "SMS", "BIN")
    on_disk = {name.lower(): name for name in os.listdir(bin_dir)}
    for spec in HOTFIX["platforms"][platform]["files"]:
        target = bin_dir / on_disk.get(spec["name"].lower(), spec["name"])
        shutil.copyfile(os.path.join(PAYLOAD, spec["payload"]), target)
        when = datetime.datetime.fromisoformat(spec["date"].replace("Z", "+00:00")).timestamp()
        os.utime(target, (when, when))
    ini = lab.host(client, "SMS.INI")
    text = ini.read_bytes()
    server = [line for line in text.split(b"\r\n") if line.lower().startswith(b"current_logon_server=")][0]
    version = lab.server_version(server.split(b"\\")[2].decode().lower())
    text = text.replace(b"CopyListVersion=41", b"CopyListVersion=" + version.encode())
    ini.write_bytes(text)  # SetupPhase is already "installed" in the lab's SMS.INI


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench-check")
    built = Lab.build(work / "lab", work, clients=3, alpha=1)
    built.snapshot()
    yield built
    built.down()


@pytest.fixture
def fresh(lab):
    lab.reset()
    return lab


def test_untouched_clients_fail_the_upgrade_check(fresh):
    with pytest.raises(BenchError, match="SHA-256"):
        fresh.check_upgraded(list(fresh.clients))


def test_a_correct_upgrade_passes_and_a_wrong_date_does_not(fresh):
    for client in fresh.clients:
        upgrade_by_hand(fresh, client)
    assert fresh.check_upgraded(list(fresh.clients)) == 3
    client = next(iter(fresh.clients))
    spec = HOTFIX["platforms"][fresh.clients[client]]["files"][0]
    target = [p for p in fresh.host(client, "MS", "SMS", "BIN").iterdir() if p.name.lower() == spec["name"].lower()][0]
    os.utime(target, (0, 0))
    with pytest.raises(BenchError, match="dated"):
        fresh.check_upgraded([client])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text.replace(b"\r\n", b"\n"), "CRLF"),
        (lambda text: text.replace(b"Poll_Interval =  60", b"Poll_Interval=60"), "became"),
        (lambda text: text.replace(b"SetupPhase=installed", b"SetupPhase=verify_files"), "SetupPhase"),
    ],
)
def test_sms_ini_damage_fails_the_check(fresh, damage, message):
    client = next(iter(fresh.clients))
    upgrade_by_hand(fresh, client)
    ini = fresh.host(client, "SMS.INI")
    ini.write_bytes(damage(ini.read_bytes()))
    with pytest.raises(BenchError, match=message):
        fresh.check_upgraded([client])


def test_a_file_twice_under_two_cases_fails_the_check(fresh):
    client = next(iter(fresh.clients))
    upgrade_by_hand(fresh, client)
    spec = HOTFIX["platforms"][fresh.clients[client]]["files"][0]
    shutil.copyfile(
        os.path.join(PAYLOAD, spec["payload"]), fresh.host(client, "MS", "SMS", "BIN", spec["name"].upper())
    )
    with pytest.raises(BenchError, match="2 files named"):
        fresh.check_upgraded([client])


def test_reset_puts_back_the_pristine_bytes_and_dates(fresh):
    client = next(iter(fresh.clients))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in fresh.host(client, "MS", "SMS", "BIN").iterdir()}
    upgrade_by_hand(fresh, client)
    fresh.reset()
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in fresh.host(client, "MS", "SMS", "BIN").iterdir()}
    assert after == before
