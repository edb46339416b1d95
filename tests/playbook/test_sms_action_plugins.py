"""Action plugins: the hotfix folder lives on the controller, not on the hosts.

Real ansible-playbook runs over local-connection hosts whose view of the
disk differs from the controller's: each host's Python runs in its own mount
namespace where the controller's hotfix folder is hidden under an empty
tmpfs (and, for one client, a copy exists at a path the controller lacks).
That is what a remote host sees, so a module that reads the controller's
path fails there; staging and pushing only work from the transferred copy.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

import sms_testlib as lib
from sms_testlib import REPO

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
UNSHARE = shutil.which("unshare")

WRAPPER = """#!/bin/sh
# This host's view of the disk: {bind_src} appears at {bind_dst}, and the
# controller's folder {hide} is hidden under an empty tmpfs.
exec {unshare} -- /bin/sh -c 'mount --bind "$1" "$2" && mount -t tmpfs sms-hidden "$3" && shift 3 && exec "$@"' \\
    sh '{bind_src}' '{bind_dst}' '{hide}' '{python}' "$@"
"""


def file_sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def host_view(tmp_path):
    """An interpreter wrapper giving the hosts their own view; skips only where namespaces are unavailable."""
    if UNSHARE is None:
        pytest.skip("unshare(1) is missing")
    unshare = UNSHARE + " --mount" + ("" if os.geteuid() == 0 else " --map-root-user")
    controller = tmp_path / "controller"
    hostonly = tmp_path / "hostonly"
    hostonly.mkdir()
    wrapper = tmp_path / "host-python"
    wrapper.write_text(
        WRAPPER.format(
            unshare=unshare, bind_src=controller / "hotfix", bind_dst=hostonly, hide=controller, python=sys.executable
        )
    )
    wrapper.chmod(0o755)
    probe = subprocess.run(
        [str(wrapper), "-c", "import os, sys; sys.stdout.write(str(os.listdir(sys.argv[1])))", str(controller)],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        if os.geteuid() == 0:
            raise AssertionError("mount namespaces fail as root: %s" % probe.stderr)
        pytest.skip("no mount namespace for an unprivileged user here: %s" % probe.stderr.strip())
    assert probe.stdout == "[]", "the host still sees the controller's folder"
    return str(wrapper), str(hostonly / "manifest.json")


@pytest.fixture
def world(tmp_path):
    manifest = lib.make_hotfix(tmp_path / "controller")
    hosts = tmp_path / "hosts"
    world = {
        "tmp": tmp_path,
        "manifest": manifest,
        "hotfix": os.path.dirname(manifest),
        "site": lib.make_site(hosts),
        "logon": lib.make_logon(hosts, "logon01"),
        "client": lib.make_client(hosts, "client01", server="LOGON01"),
        "remote_tmp": str(tmp_path / "remote-tmp"),
    }
    with open(manifest) as handle:
        world["expected"] = {
            p: {f["name"]: f["sha256"] for f in spec["files"]} for p, spec in json.load(handle)["platforms"].items()
        }
    return world


def run_playbook(world, plays, interpreter):
    """Run `plays`; return {(host, task name): result} and the process."""
    tmp = world["tmp"]
    (tmp / "inventory.yml").write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {"site": {}, "logon01": {}, "client01": {}},
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": interpreter},
                }
            }
        )
    )
    for entry in plays:  # each play writes its registered results as JSON
        names = [item["name"] for item in entry["tasks"]]
        for index, item in enumerate(entry["tasks"]):
            item["register"] = "result_%d" % index
        entry["tasks"].append(
            {
                "name": "results",
                "ansible.builtin.copy": {
                    "content": "{{ {%s} | to_json }}"
                    % ", ".join("%r: result_%d" % (n, i) for i, n in enumerate(names)),
                    "dest": str(tmp / ("results-%s.json" % entry["hosts"])),
                },
            }
        )
    (tmp / "play.yml").write_text(json.dumps(plays))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        SMS_REPORT_DISABLE="1",
        ANSIBLE_REMOTE_TMP=world["remote_tmp"],
        ANSIBLE_LOCAL_TMP=str(tmp / "local-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp / "inventory.yml"), str(tmp / "play.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    results = {}
    for entry in plays:
        path = tmp / ("results-%s.json" % entry["hosts"])
        assert path.exists(), "play %s wrote no results (rc %d): %s %s" % (
            entry["hosts"],
            proc.returncode,
            proc.stdout[-3000:],
            proc.stderr[-3000:],
        )
        for name, result in json.loads(path.read_text()).items():
            results[entry["hosts"], name] = result
        path.unlink()
    return results, proc


def play(host, *tasks):
    return {"name": host, "hosts": host, "gather_facts": False, "tasks": list(tasks)}


def task(name, module, args, **extra):
    return dict({"name": name, "sms.hotfix." + module: args, "ignore_errors": True}, **extra)


def test_stage_push_and_clients_work_when_the_hosts_cannot_read_the_controller_folder(world):
    interpreter, host_only_manifest = host_view(world["tmp"])
    manifest, site, logon = world["manifest"], world["site"], world["logon"]
    stage = {"sms_root": site, "manifest": manifest, "transfer": "always"}
    push = {"sms_root": logon, "manifest": manifest, "state": "pushed", "platforms": ["x86"], "transfer": "always"}
    client = {"drive_root": world["client"], "platform": "x86", "cpu_window": 0.1, "process_scope": "drive"}
    bad_manifest = str(world["tmp"] / "bad-manifest.json")  # on the controller: refused there
    with open(bad_manifest, "w") as handle:
        handle.write("{not json")
    upgrade = dict(
        client,
        share_path_pattern=os.path.join(str(world["tmp"]), "hosts", "{server}", "SMS", "Logon.srv"),
        logon_servers=["LOGON01"],
    )
    results, proc = run_playbook(
        world,
        [
            play(
                "site",
                task("never", "sms_hotfix_stage", dict(stage, transfer="never")),
                task("preview", "sms_hotfix_stage", stage, check_mode=True),
                task("stage", "sms_hotfix_stage", stage),
                task("again", "sms_hotfix_stage", stage),
            ),
            play(
                "logon01",
                task("preview", "sms_replication", push, check_mode=True),
                task("push", "sms_replication", push),
                task("again", "sms_replication", push),
            ),
            play(
                "client01",
                task("facts controller", "sms_client_info", dict(client, manifest=manifest)),
                # the old name, routed to sms_client_info until 2.0.0 (meta/runtime.yml)
                task("facts host", "sms_client_facts", dict(client, manifest=host_only_manifest)),
                task("facts bad manifest", "sms_client_info", dict(client, manifest=bad_manifest)),
                task("upgrade", "sms_client_upgrade", dict(upgrade, manifest=manifest)),
                task("upgrade host", "sms_client_upgrade", dict(upgrade, manifest=host_only_manifest), check_mode=True),
            ),
        ],
        interpreter,
    )
    r = dict(results)
    ansible_tmp = os.path.join(world["remote_tmp"], "ansible-tmp-")

    # the site server cannot read the controller's path ...
    assert r["site", "never"]["failed"] and "does not exist" in r["site", "never"]["msg"], r["site", "never"]
    # ... but stages from the copy sent to its remote tmp: check mode, run, second run
    preview, staged, again = r["site", "preview"], r["site", "stage"], r["site", "again"]
    for result in (preview, staged, again):
        assert not result.get("failed"), result
        assert result["manifest_source"] == "controller"
        assert result["manifest_path"].startswith(ansible_tmp)
        assert os.path.basename(result["manifest_path"]) == "manifest.json"
        assert not os.path.exists(result["manifest_path"])
    assert sorted(staged["transferred"]) == sorted(
        ["manifest.json"]
        + ["payload/%s/%s" % (lib.DIRS[p], n) for p in ("x86", "alpha") for n in ("Smsrun32.exe", "Smssrv32.exe")]
    )
    originals = {lib.sha(data) for p in ("x86", "alpha") for data in lib.original_files(p).values()}
    assert preview["changed"] is True
    # check mode left the originals: the real run found them
    assert {f["before_sha256"] for f in staged["files"]} <= originals and staged["changed"] is True
    assert again["changed"] is False
    client_src = os.path.join(site, "Site.srv", "Maincfg.box", "Client.src")
    assert file_sha(os.path.join(client_src, "X86.bin", "SMSRUN32.EXE")) == world["expected"]["x86"]["Smsrun32.exe"]
    assert file_sha(os.path.join(client_src, "Alpha.bin", "Smssrv32.exe")) == world["expected"]["alpha"]["Smssrv32.exe"]

    # the push sends and copies the requested platform only
    pushed, push_again = r["logon01", "push"], r["logon01", "again"]
    assert not pushed.get("failed") and not r["logon01", "preview"].get("failed"), pushed
    assert pushed["manifest_path"].startswith(ansible_tmp) and pushed["manifest_source"] == "controller"
    assert pushed["transferred"] == ["manifest.json", "payload/X86.bin/Smsrun32.exe", "payload/X86.bin/Smssrv32.exe"]
    assert r["logon01", "preview"]["changed"] is True and pushed["changed"] is True
    assert push_again["changed"] is False
    logon_srv = os.path.join(logon, "Logon.srv")
    for name, digest in world["expected"]["x86"].items():
        assert file_sha(os.path.join(logon_srv, "X86.bin", name)) == digest
    for name, data in lib.original_files("alpha").items():
        assert file_sha(os.path.join(logon_srv, "Alpha.bin", name)) == lib.sha(data)

    # clients: the controller's manifest goes as data; a host-only path is read on the host
    facts_c, facts_h = r["client01", "facts controller"], r["client01", "facts host"]
    assert facts_c["manifest_source"] == "controller" and facts_c["manifest_path"] is None
    assert facts_h["manifest_source"] == "host" and facts_h["manifest_path"] == host_only_manifest
    assert facts_c["compliance"]["files"] == facts_h["compliance"]["files"]
    assert facts_c["status"] == facts_h["status"] == "not_compliant", (facts_c, facts_h)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "sms_client_facts returns no ansible_facts, so it is now called sms.hotfix.sms_client_info" in out, out
    assert "sms.hotfix.sms_client_facts has been deprecated" in out and "'sms.hotfix' version 2.0.0" in out, out
    assert out.count("sms_client_facts has been deprecated") == 1, out  # the old name's task only
    refused = r["client01", "facts bad manifest"]
    assert refused["failed"] is True and refused["status"] == "refused" and bad_manifest in refused["msg"], refused
    assert not os.path.exists(host_only_manifest)  # only the client sees it
    upgraded, checked = r["client01", "upgrade"], r["client01", "upgrade host"]
    assert upgraded["manifest_source"] == "controller" and upgraded["status"] == "upgraded", upgraded
    assert checked["manifest_source"] == "host" and checked["status"] == "unchanged", checked
    bin_dir = os.path.join(world["client"], "MS", "SMS", "BIN")
    for name, digest in world["expected"]["x86"].items():
        assert file_sha(os.path.join(bin_dir, name)) == digest

    # every remote tmp dir is gone
    assert os.listdir(world["remote_tmp"]) == [], proc.stdout[-2000:]


def test_a_bad_payload_is_refused_on_the_controller_before_anything_is_sent(world):
    payload = os.path.join(world["hotfix"], "payload", "X86.bin", "Smsrun32.exe")
    with open(payload, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0x01]))
    before = lib.snapshot(world["tmp"] / "hosts")
    # the refused tasks get a remote tmp of their own, to show none was made
    refused_tmp = {"ansible_remote_tmp": str(world["tmp"] / "refused-tmp")}
    results, _proc = run_playbook(
        world,
        [
            play(
                "site",
                task(
                    "stage",
                    "sms_hotfix_stage",
                    {"sms_root": world["site"], "manifest": world["manifest"], "transfer": "always"},
                    vars=refused_tmp,
                ),
            ),
            play(
                "logon01",
                task(
                    "push",
                    "sms_replication",
                    {
                        "sms_root": world["logon"],
                        "manifest": world["manifest"],
                        "state": "pushed",
                        "transfer": "always",
                    },
                    vars=refused_tmp,
                ),
            ),
        ],
        sys.executable,
    )
    for key in (("site", "stage"), ("logon01", "push")):
        result = results[key]
        assert result["failed"] is True, result
        assert payload in result["msg"] and "SHA-256" in result["msg"], result["msg"]
        assert "checked on the controller; nothing was sent to %s" % key[0] in result["msg"]
        assert result["failed_path"] == payload
    assert lib.snapshot(world["tmp"] / "hosts") == before
    # not even a remote tmp dir was made
    assert not os.path.exists(refused_tmp["ansible_remote_tmp"])


# --- the controller helpers, in process ----------------------------------------------


def load_helpers():
    spec = importlib.util.spec_from_file_location(
        "sms_client_info_action", os.path.join(REPO, "plugins", "action", "sms_client_info.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sms_controller


def test_manifest_as_data_reads_each_version_once(world, monkeypatch):
    helpers = load_helpers()
    calls = []
    real = helpers.read_manifest
    monkeypatch.setattr(helpers, "read_manifest", lambda path: calls.append(path) or real(path))
    helpers._CACHE.clear()
    args = {"drive_root": "/c", "platform": "x86", "manifest": world["manifest"]}
    first = helpers.manifest_as_data(args)
    second = helpers.manifest_as_data(args)
    assert "manifest" not in first and first["manifest_data"]["kb"] == "Q216552" and second == first
    assert calls == [world["manifest"]]
    os.utime(world["manifest"], ns=(1, 1))
    helpers.manifest_as_data(args)
    assert len(calls) == 2
    # a path the controller lacks is the host's business
    assert helpers.manifest_as_data({"manifest": "/nowhere/manifest.json"}) == {"manifest": "/nowhere/manifest.json"}
    with pytest.raises(Exception) as info:
        helpers.pop_transfer({"transfer": "sometimes"})
    assert "auto, always, never" in str(info.value)
