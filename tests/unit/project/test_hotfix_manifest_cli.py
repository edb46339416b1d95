"""bin/sms-hotfix-manifest: recording real vendor files into a manifest, and verifying it."""

import json
import os
import subprocess
import sys

import sms_testlib as lab
from sms_testlib import REPO

TOOL = os.path.join(REPO, "bin", "sms-hotfix-manifest")


def tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_record_writes_sizes_dates_and_checksums_and_verify_accepts_them(tmp_path):
    vendor = tmp_path / "unpacked"
    files = {
        ("X86.bin", "Smsrun32.exe"): lab.blob("vendor-run", 5000),
        ("X86.bin", "SMSSRV32.EXE"): lab.blob("vendor-srv", 5100),
    }
    for (folder, name), data in files.items():
        lab.write(str(vendor / folder / name), data, mtime=916356060)  # 1999-01-14T23:21:00Z
    manifest = tmp_path / "Q999999" / "manifest.json"
    result = tool(
        "record", "--manifest", str(manifest), "--payload", str(vendor), "--kb", "Q999999", "--title", "a test hotfix"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(manifest.read_text())
    assert data["kb"] == "Q999999" and list(data["platforms"]) == ["x86"]
    entries = {e["name"]: e for e in data["platforms"]["x86"]["files"]}
    for (_folder, name), blob in files.items():
        entry = entries[name]
        assert entry["size"] == len(blob) and entry["sha256"] == lab.sha(blob)
        assert entry["date"] == "1999-01-14T23:21:00Z"
        copied = manifest.parent / entry["payload"]
        assert copied.read_bytes() == blob
    assert entries["SMSSRV32.EXE"]["service"] is True and entries["Smsrun32.exe"]["service"] is False
    assert tool("verify", "--manifest", str(manifest)).returncode == 0

    # a payload that no longer matches is refused, naming the file
    payload = manifest.parent / entries["Smsrun32.exe"]["payload"]
    damaged = bytearray(payload.read_bytes())
    damaged[10] ^= 0x01
    payload.write_bytes(bytes(damaged))
    refused = tool("verify", "--manifest", str(manifest))
    assert refused.returncode == 1 and "Smsrun32.exe" in refused.stderr and "SHA-256" in refused.stderr


def test_record_refuses_a_folder_without_platform_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    result = tool(
        "record",
        "--manifest",
        str(tmp_path / "m" / "manifest.json"),
        "--payload",
        str(tmp_path / "empty"),
        "--kb",
        "Q999999",
    )
    assert result.returncode == 2 and "X86.bin" in result.stderr
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_the_shipped_manifest_matches_the_generated_payload():
    assert tool("verify", "--manifest", os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")).returncode == 0


def test_without_ansible_core_the_tool_names_the_interpreter_to_use(tmp_path):
    # -S: no site-packages, so no ansible-core, as with a system python3 outside the virtualenv
    manifest = tmp_path / "manifest.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-S", TOOL, "record", "--manifest", str(manifest), "--payload", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot import ansible-core" in proc.stderr
    assert "'.venv/bin/python bin/sms-hotfix-manifest ...'" in proc.stderr
    assert os.listdir(str(tmp_path)) == []
