"""plugins/module_utils/sms_manifest: every malformed manifest or payload is
refused with a message naming the manifest, the entry and the cause."""

import json
import os

import pytest

from sms_testlib import make_hotfix, sha, write

from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    PLATFORM_DIRS,
    ManifestError,
    check_plain_name,
    load_manifest,
    platform_dir,
    summary,
    validate_manifest,
)


@pytest.fixture
def manifest(tmp_path):
    return make_hotfix(tmp_path)


def edit(path, change):
    with open(path) as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w") as handle:
        json.dump(data, handle)


def refused(path, *words, **kwargs):
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kwargs)
    for word in words:
        assert word in info.value.msg, (word, info.value.msg)
    return info.value


def test_valid_manifest_loads(manifest):
    loaded = load_manifest(manifest)
    assert loaded["kb"] == "Q216552" and set(loaded["platforms"]) == {"x86", "alpha"}
    x86 = loaded["platforms"]["x86"]
    assert x86["directory"] == "X86.bin"
    run = x86["files"][0]
    assert run["name"] == "Smsrun32.exe" and run["mtime"] == 916356060 and run["size"] == 4096
    assert os.path.isabs(run["payload"]) and os.path.isfile(run["payload"])
    assert summary(loaded)["platforms"]["x86"]["files"][0] == {
        "name": "Smsrun32.exe",
        "size": 4096,
        "date": "1999-01-14T23:21:00Z",
        "sha256": run["sha256"],
        "service": False,
    }


def test_platform_filter(manifest):
    loaded = load_manifest(manifest, platforms=["X86"])
    assert list(loaded["platforms"]) == ["x86"]
    refused(manifest, "'sparc' is unknown", platforms=["sparc"])
    refused(manifest, "does not define platform 'mips'", platforms=["mips"])


def test_platform_dir():
    assert platform_dir("Alpha") == "Alpha.bin" and PLATFORM_DIRS["mips"] == "Mips.bin"


@pytest.mark.parametrize(
    "name", ["../x", "..", ".", "a/b", "a\\b", "C:x.exe", "c:\\x", "x..y", "", "bad*.exe", "trailing.", "trailing "]
)
def test_names_that_are_not_plain(name):
    with pytest.raises(ManifestError):
        check_plain_name(name, "entry")


@pytest.mark.parametrize("name", ["Smsrun32.exe", "SMSRUN32.EXE", "Long name (1).dll", "a$b~c.txt"])
def test_plain_names(name):
    check_plain_name(name, "entry")


def test_manifest_naming_a_parent_path(manifest):
    edit(manifest, lambda d: d["platforms"]["x86"]["files"][0].update(name="../x"))
    refused(manifest, "not a plain name", manifest, "'../x'")


def test_unknown_platform(manifest):
    edit(manifest, lambda d: d["platforms"].update(sparc=d["platforms"]["x86"]))
    refused(manifest, "'sparc' is unknown", manifest)


def test_missing_payload_file(manifest):
    payload = os.path.join(os.path.dirname(manifest), "payload", "X86.bin", "Smssrv32.exe")
    os.unlink(payload)
    err = refused(manifest, "missing", payload)
    assert err.path == payload
    assert load_manifest(manifest, check_payload=False)["kb"] == "Q216552"


def test_payload_with_one_flipped_byte(manifest):
    payload = os.path.join(os.path.dirname(manifest), "payload", "Alpha.bin", "Smsrun32.exe")
    with open(payload, "rb") as handle:
        data = bytearray(handle.read())
    data[-1] ^= 0x80
    write(payload, bytes(data))
    err = refused(manifest, "SHA-256", sha(bytes(data)), payload)
    assert err.facts["found"] == sha(bytes(data))


def test_payload_of_the_wrong_size(manifest):
    payload = os.path.join(os.path.dirname(manifest), "payload", "X86.bin", "Smsrun32.exe")
    write(payload, b"short")
    refused(manifest, "is 5 bytes, the manifest says 4096", payload)


def test_payload_outside_the_manifest_folder(manifest):
    edit(manifest, lambda d: d["platforms"]["x86"]["files"][0].update(payload="../../etc/passwd"))
    refused(manifest, "must be a path inside")
    edit(manifest, lambda d: d["platforms"]["x86"]["files"][0].update(payload="/etc/passwd"))
    refused(manifest, "must be a path inside")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.update(kb="KB216552"), ["not a Knowledge Base number"]),
        (lambda d: d.pop("product"), ["'product' is missing"]),
        (lambda d: d.update(platforms={}), ["'platforms' is empty"]),
        (lambda d: d["platforms"]["x86"].update(files=[]), ["'files' is empty"]),
        (lambda d: d["platforms"]["x86"].update(directory="Alpha.bin"), ["does not match the platform's folder"]),
        (lambda d: d["platforms"]["x86"]["files"][0].update(sha256="xyz"), ["not 64 hex digits"]),
        (lambda d: d["platforms"]["x86"]["files"][0].update(size=-1), ["must not be negative"]),
        (lambda d: d["platforms"]["x86"]["files"][0].update(size="4096"), ["'size' is missing or not a int"]),
        (lambda d: d["platforms"]["x86"]["files"][0].update(date="14/1/99"), ["not ISO-8601"]),
        (lambda d: d["platforms"]["x86"]["files"][1].update(name="SMSRUN32.EXE"), ["listed twice"]),
    ],
)
def test_malformed_entries(manifest, change, words):
    edit(manifest, change)
    refused(manifest, manifest, *words)


def test_not_json_and_missing(tmp_path):
    path = str(tmp_path / "manifest.json")
    refused(path, "does not exist", path)
    write(path, b"{nope")
    refused(path, "not valid JSON", path)
    write(path, b"[]")
    refused(path, "top level must be an object")


def test_manifest_given_as_data(manifest):
    with open(manifest) as handle:
        raw = json.load(handle)
    by_path = load_manifest(manifest, check_payload=False)
    by_data = validate_manifest(raw, None, platforms=["x86"], check_payload=False, source="manifest_data")
    assert by_data["path"] is None and by_data["base_dir"] is None and list(by_data["platforms"]) == ["x86"]
    assert by_data["platforms"]["x86"]["files"][0]["payload"] == os.path.join("payload", "X86.bin", "Smsrun32.exe")
    assert [(f["name"], f["sha256"]) for f in by_data["platforms"]["x86"]["files"]] == [
        (f["name"], f["sha256"]) for f in by_path["platforms"]["x86"]["files"]
    ]
    # the same checks, with the source named in the message
    raw["platforms"]["x86"]["files"][0]["payload"] = "../outside.exe"
    with pytest.raises(ManifestError) as info:
        validate_manifest(raw, None, check_payload=False, source="manifest_data")
    assert (
        info.value.msg.startswith("manifest_data, platform x86, file Smsrun32.exe: payload")
        and "must be a path inside the manifest's folder" in info.value.msg
    )
    with pytest.raises(ManifestError) as info:
        validate_manifest(["not", "an", "object"], None, check_payload=False, source="manifest_data")
    assert info.value.msg == "manifest_data: the top level must be an object"
    with pytest.raises(ManifestError) as info:
        validate_manifest({}, None, source="manifest_data")
    assert "cannot be checked without the manifest's folder" in info.value.msg


def test_the_module_says_what_it_did(manifest, module_runner):
    verified = module_runner("sms_hotfix_manifest", {"manifest": manifest})
    assert verified["status"] == "verified" and verified["payload_verified"] is True, verified
    loaded = module_runner("sms_hotfix_manifest", {"manifest": manifest, "verify_payload": False})
    assert loaded["status"] == "loaded" and loaded["payload_verified"] is False, loaded
    payload = os.path.join(os.path.dirname(manifest), "payload", "X86.bin", "Smsrun32.exe")
    with open(payload, "rb") as handle:
        data = bytearray(handle.read())
    data[0] ^= 0x01
    write(payload, bytes(data))
    bad = module_runner("sms_hotfix_manifest", {"manifest": manifest})
    assert bad["failed"] is True and bad["status"] == "refused" and payload in bad["msg"], bad
    # the file at fault as failed_path: a `path` would get that file's owner, mode and `state` added
    assert bad["failed_path"] == payload and "state" not in bad and "owner" not in bad, bad
    # without the payload check the same manifest loads
    assert module_runner("sms_hotfix_manifest", {"manifest": manifest, "verify_payload": False})["status"] == "loaded"
