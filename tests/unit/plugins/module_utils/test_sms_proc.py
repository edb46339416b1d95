"""sms_proc: SMSRUN32 processes read from the real process table."""

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc

CHILD = r"""
import ctypes, signal, sys, time
if sys.argv[1] != "noname":
    ctypes.CDLL(None).prctl(15, b"SMSRUN32", 0, 0, 0)
if "stubborn" in sys.argv[1]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
end = time.monotonic() + 120
while time.monotonic() < end:
    if "busy" in sys.argv[1]:
        x = 0
        for _ in range(200000):
            x += 1
    else:
        time.sleep(0.05)
"""


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return None


@pytest.fixture
def spawn(tmp_path):
    children = []

    def _spawn(mode="idle", drive=None, argv0=None, image=True):
        drive = drive or str(tmp_path)
        args = [argv0 or sys.executable, "-c", CHILD, mode]
        if image:
            args.append("--image=%s/MS/SMS/BIN/Smsrun32.exe" % drive)
        proc = subprocess.Popen(args, executable=sys.executable, stdin=subprocess.DEVNULL)
        children.append(proc)
        wanted = "SMSRUN32" if mode != "noname" else None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if wanted is None or comm(proc.pid) == wanted:
                break
            time.sleep(0.02)
        if wanted is None:
            time.sleep(0.3)  # let the interpreter start so cmdline is final
        return proc.pid

    yield _spawn
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def pids(drive, name="SMSRUN32"):
    """SMSRUN32s under `drive` (drive scope), or in the whole process table (host scope) for None."""
    scope = "host" if drive is None else "drive"
    return [p["pid"] for p in sms_proc.list_processes(name, scope=scope, drive_root=drive)]


def test_list_by_comm_within_scope(spawn, tmp_path):
    mine = spawn(drive=str(tmp_path / "client01"))
    other = spawn(drive=str(tmp_path / "client02"))
    assert pids(str(tmp_path / "client01")) == [mine]
    assert pids(str(tmp_path / "client02")) == [other]
    assert sorted(pids(str(tmp_path))) == sorted([mine, other])
    assert set(pids(None)) >= {mine, other}
    assert pids(str(tmp_path / "client03")) == []
    entry = sms_proc.list_processes("smsrun32.EXE", scope="drive", drive_root=str(tmp_path / "client01"))[0]
    assert entry["pid"] == mine and entry["cpu_ticks"] >= 0 and entry["state"] != "Z"


def test_name_from_argv0_with_exe_suffix(spawn, tmp_path):
    pid = spawn("noname", argv0="/opt/sms/bin/SMSRUN32.EXE")
    assert comm(pid) != "SMSRUN32"
    assert pids(str(tmp_path)) == [pid]


def test_windows_image_path_is_an_smsrun32_of_the_host(spawn, tmp_path):
    # A host that is one client (drive at /mnt/c) shows Windows paths: its
    # hung pair must be seen in the host scope, whatever the drive root is.
    first = spawn("noname", argv0="C:\\MS\\SMS\\BIN\\SMSRUN32.EXE", image=False)
    second = spawn("noname", argv0="C:\\MS\\SMS\\BIN\\Smsrun32.exe", image=False)
    assert comm(first) != "SMSRUN32"
    assert {first, second} <= set(pids(None))
    # ...but it names no path under a drive root: not one of a managed drive's
    assert pids(str(tmp_path)) == []


def test_unreadable_process_table_is_unknown_not_empty(monkeypatch):
    def no_proc(path):
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(sms_proc.os, "listdir", no_proc)
    with pytest.raises(sms_proc.ProcessTableUnavailable):
        sms_proc.list_processes("SMSRUN32", scope="host")


def test_other_names_are_ignored(spawn, tmp_path):
    spawn("noname")
    assert pids(str(tmp_path)) == []


def test_zombies_are_dead(tmp_path):
    image = "--image=%s/MS/SMS/BIN/Smsrun32.exe" % tmp_path
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "idle", image], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while comm(proc.pid) != "SMSRUN32" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pids(str(tmp_path)) == [proc.pid]
        proc.kill()
        deadline = time.monotonic() + 5
        while sms_proc.alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.exists("/proc/%d" % proc.pid), "not a zombie: the test proves nothing"
        assert not sms_proc.alive(proc.pid)
        assert pids(str(tmp_path)) == []
    finally:
        proc.kill()
        proc.wait()


def test_sample_cpu_tells_busy_from_idle(spawn, tmp_path):
    busy = spawn("busy", drive=str(tmp_path / "a"))
    idle = spawn("idle", drive=str(tmp_path / "b"))
    usage = sms_proc.sample_cpu([busy, idle], 0.5)
    assert usage[busy] >= 10, usage  # even on a loaded machine
    assert usage[idle] < 5 and usage[idle] < usage[busy], usage
    assert sms_proc.sample_cpu([999999999], 0.05) == {999999999: None}


def test_stop_with_term(spawn):
    pid = spawn("idle")
    survivors, sent = sms_proc.stop([pid], ["TERM", "KILL"], 3)
    assert survivors == [] and sent == ["TERM"]
    assert not sms_proc.alive(pid)


def test_stop_stubborn_needs_kill(spawn):
    pid = spawn("stubborn")
    survivors, sent = sms_proc.stop([pid], ["TERM"], 0.3)
    assert survivors == [pid] and sent == ["TERM"]
    survivors, sent = sms_proc.stop([pid], ["TERM", "KILL"], 0.3)
    assert survivors == [] and sent == ["TERM", "KILL"]


def test_stop_nothing_left(spawn):
    assert sms_proc.stop([999999999], ["TERM"], 0.1) == ([], [])


# --- the watch of the cure (sms_client_upgrade verify_seconds) -----------------


def test_watch_one_idle_instance_is_healthy_over_the_whole_window(spawn, tmp_path):
    spawn(drive=str(tmp_path))
    seen = sms_proc.watch("SMSRUN32", "drive", str(tmp_path), 0.6, 0.2, 90)
    assert seen["result"] == "healthy" and seen["reason"] is None, seen
    assert seen["instances"] == 1 and seen["looks"] >= 3 and seen["elapsed"] >= 0.6
    assert 0 <= seen["highest_cpu"] < 90


def test_watch_two_instances_is_the_hang_and_ends_at_the_first_look(spawn, tmp_path):
    spawn(drive=str(tmp_path))
    spawn(drive=str(tmp_path))
    seen = sms_proc.watch("SMSRUN32", "drive", str(tmp_path), 30, 0.2, 90)
    assert seen["result"] == "hung" and seen["instances"] == 2 and seen["looks"] == 1, seen
    assert seen["elapsed"] < 5 and "2 instances of SMSRUN32" in seen["reason"]


def test_watch_without_smsrun32_fails_only_when_one_was_expected(tmp_path):
    expected = sms_proc.watch("SMSRUN32", "drive", str(tmp_path), 0.2, 0.1, 90)
    assert expected["result"] == "not_running" and expected["instances"] == 0, expected
    unexpected = sms_proc.watch("SMSRUN32", "drive", str(tmp_path), 0.2, 0.1, 90, expect_running=False)
    assert unexpected["result"] == "unverified" and "nothing was meant to start it" in unexpected["reason"]
