"""sms_client_info (formerly sms_client_facts): the read-only compliance view of one client."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import sms_testlib as lab

MODULE = "sms_client_info"

CHILD = r"""
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, b"SMSRUN32", 0, 0, 0)
end = time.monotonic() + 120
while time.monotonic() < end:
    time.sleep(0.05)
"""


@pytest.fixture
def client(tmp_path):
    manifest = lab.make_hotfix(tmp_path)
    drive = lab.make_client(os.path.join(str(tmp_path), "hosts"), "client01")
    return {
        "root": str(tmp_path),
        "manifest": manifest,
        "drive": drive,
        "bin": os.path.join(drive, "MS", "SMS", "BIN"),
        "args": dict(drive_root=drive, platform="x86", manifest=manifest, cpu_window=0.2, process_scope="drive"),
    }


@pytest.fixture
def smsrun():
    children = []

    def spawn(drive, count=1):
        image = "--image=" + os.path.join(drive, "MS", "SMS", "BIN", "Smsrun32.exe")
        for _instance in range(count):
            children.append(subprocess.Popen([sys.executable, "-c", CHILD, image], stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            names = []
            for proc in children:
                with open("/proc/%d/comm" % proc.pid) as handle:
                    names.append(handle.read().strip())
            if names == ["SMSRUN32"] * len(children):
                break
            time.sleep(0.02)
        return [proc.pid for proc in children]

    yield spawn
    for proc in children:
        proc.kill()
        proc.wait(timeout=10)


def install_hotfix(client):
    base = os.path.dirname(client["manifest"])
    for name in ("Smsrun32.exe", "Smssrv32.exe"):
        shutil.copyfile(os.path.join(base, "payload", "X86.bin", name), os.path.join(client["bin"], name))


def test_not_compliant_then_compliant(client, module_runner):
    before = lab.snapshot(client["root"])
    result = module_runner(MODULE, client["args"])
    assert result["changed"] is False and result["status"] == "not_compliant"
    compliance = result["compliance"]
    assert compliance["compliant"] is False and "error" not in compliance
    assert [(f["name"], f["ok"]) for f in compliance["files"]] == [("Smsrun32.exe", False), ("Smssrv32.exe", False)]
    assert compliance["files"][0]["found_sha256"] == lab.sha(lab.original_files("x86")["Smsrun32.exe"])
    assert compliance["setup_phase"] == "installed" and compliance["copy_list_version"] == "41"
    assert compliance["logon_server"] == "LOGON01" and compliance["kb"] == "Q216552"
    assert compliance["smsrun32"] == {"count": 0, "pids": [], "cpu": None, "hung": False, "known": True}
    assert lab.snapshot(client["root"]) == before

    install_hotfix(client)
    result = module_runner(MODULE, client["args"], check_mode=True)
    compliance = result["compliance"]
    assert compliance["compliant"] is True and result["status"] == "compliant"
    assert all(f["found_sha256"] == f["expected_sha256"] for f in compliance["files"])


def test_one_file_missing(client, module_runner):
    install_hotfix(client)
    os.unlink(os.path.join(client["bin"], "Smssrv32.exe"))
    compliance = module_runner(MODULE, client["args"])["compliance"]
    assert compliance["compliant"] is False
    entry = compliance["files"][1]
    assert (entry["name"], entry["found_sha256"], entry["ok"]) == ("Smssrv32.exe", None, False)
    assert len(entry["expected_sha256"]) == 64


def test_missing_sms_ini_is_reported_not_failed(client, module_runner):
    install_hotfix(client)
    os.unlink(os.path.join(client["drive"], "SMS.INI"))
    result = module_runner(MODULE, client["args"])
    assert not result.get("failed") and result["changed"] is False
    assert result["compliance"]["compliant"] is False and result["status"] == "unreadable"
    assert "SMS.INI is missing" in result["compliance"]["error"]


def test_malformed_sms_ini_is_reported_not_failed(client, module_runner):
    lab.write(os.path.join(client["drive"], "SMS.INI"), b"[SMS]\r\ngarbage line\r\n")
    result = module_runner(MODULE, client["args"])
    assert not result.get("failed")
    assert "line 2" in result["compliance"]["error"] and result["compliance"]["compliant"] is False


def test_missing_client_folder_is_reported(client, module_runner):
    shutil.rmtree(client["bin"])
    result = module_runner(MODULE, client["args"])
    assert not result.get("failed") and "does not exist" in result["compliance"]["error"]


def test_hung_smsrun32_is_reported_and_left_running(client, smsrun, module_runner):
    pids = smsrun(client["drive"], count=2)
    smsrun32 = module_runner(MODULE, client["args"])["compliance"]["smsrun32"]
    assert smsrun32["count"] == 2 and sorted(smsrun32["pids"]) == sorted(pids) and smsrun32["hung"] is True
    for pid in pids:
        assert os.path.exists("/proc/%d" % pid)


def test_single_smsrun32_is_sampled(client, smsrun, module_runner):
    (pid,) = smsrun(client["drive"])
    smsrun32 = module_runner(MODULE, client["args"])["compliance"]["smsrun32"]
    assert smsrun32["pids"] == [pid] and smsrun32["hung"] is False and smsrun32["cpu"] < 50


def test_bad_manifest_fails(client, module_runner):
    result = module_runner(MODULE, dict(client["args"], manifest=client["root"] + "/nope.json"))
    assert result.get("failed") is True and "nope.json" in result["msg"] and result["status"] == "refused"
    # an existing file at fault is named failed_path, not `path` (Ansible would add its `state` and owner)
    lab.write(client["root"] + "/broken.json", b"{not json")
    result = module_runner(MODULE, dict(client["args"], manifest=client["root"] + "/broken.json"))
    assert result.get("failed") is True and result["status"] == "refused", result
    assert result["failed_path"] == client["root"] + "/broken.json"
    assert "path" not in result and "state" not in result and "owner" not in result, result


def test_manifest_given_as_data(client, module_runner):
    with open(client["manifest"]) as handle:
        data = json.load(handle)
    by_path = module_runner(MODULE, client["args"])
    assert by_path["manifest_source"] == "host" and by_path["manifest_path"] == client["manifest"]
    args = dict(client["args"], manifest_data=data)
    del args["manifest"]
    by_data = module_runner(MODULE, args)
    assert by_data["manifest_source"] == "controller" and by_data["manifest_path"] is None
    assert by_data["compliance"] == by_path["compliance"]
    both = module_runner(MODULE, dict(client["args"], manifest_data=data))
    assert both["failed"] is True and "mutually exclusive" in both["msg"]
    del args["manifest_data"]
    neither = module_runner(MODULE, args)
    assert neither["failed"] is True and "manifest, manifest_data" in neither["msg"]
    data["platforms"]["x86"]["files"][0]["sha256"] = "nope"
    bad = module_runner(MODULE, dict(args, manifest_data=data))
    assert bad["failed"] is True and bad["msg"].startswith("client01: manifest_data, platform x86, file Smsrun32.exe")


def test_messages_name_the_client(client, module_runner):
    default = module_runner(MODULE, client["args"])
    assert default["msg"].startswith("client01: not compliant with Q216552"), default["msg"]
    named = dict(client["args"], client_name="pc042.corp.example")
    assert module_runner(MODULE, named)["msg"].startswith("pc042.corp.example: not compliant"), named
    install_hotfix(client)
    assert module_runner(MODULE, named)["msg"] == "pc042.corp.example: all 2 x86 file(s) of Q216552 in place"
    failed = module_runner(MODULE, dict(named, manifest=client["root"] + "/nope.json"))
    assert failed["failed"] is True and failed["msg"].startswith("pc042.corp.example: "), failed["msg"]


def test_odd_bytes_in_sms_ini_are_not_line_ends(client, module_runner):
    ini = os.path.join(client["drive"], "SMS.INI")
    lab.write(ini, b"; Setup\x85 done\r\n" + lab.sms_ini())
    compliance = module_runner(MODULE, client["args"])["compliance"]
    assert "error" not in compliance, compliance
    assert compliance["setup_phase"] == "installed" and compliance["logon_server"] == "LOGON01"
