"""Safety at the edges, end to end on the lab (issue "Safety at the edges").

- A refused run leaves nothing behind: every bad input (manifest, payload,
  variables, groups, site and logon paths, links, state files, disk, lock) is
  refused before the lock and the baselines, with a message naming the cause,
  and a full listing of every host's files and folders (kind, content, size,
  mtime, mode) is unchanged.
- The wave gate counts unreachable clients: a wave whose failed plus
  unreachable clients cross the threshold stops the later waves.
- The site tier is crash-safe: a site whose files were replaced but whose
  System.map was never bumped is finished by the next run.

The refusals share one small lab (3 clients, no twin processes): each case
sets its fault up, runs, checks, and takes the fault away again.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from sms_e2e import MANIFEST, Lab, failures, full_listing, lab_cmd

pytestmark = pytest.mark.slow
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chattr, bind mounts, tmpfs); CI runs as root")
X86 = ("SMS", "Site.srv", "Maincfg.box", "Client.src", "X86.bin")


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety") / "lab"
    lab_cmd("build", "--root", str(root), "--clients", "3", "--alpha", "1", "--no-mm", "--no-smsrun")
    yield Lab(root)
    lab_cmd("down", "--root", str(root), check=False)


def hotfix_copy(tmp_path):
    """A copy of the hotfix folder (manifest and payload) to damage; returns its manifest path."""
    target = tmp_path / "hotfix"
    shutil.copytree(os.path.dirname(MANIFEST), str(target), symlinks=True)
    return str(target / "manifest.json")


def edit_manifest(path, change):
    with open(path) as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w") as handle:
        json.dump(data, handle)


# Each case: (id, setup(lab, tmp_path) -> (extravars, undo), words the refusal must say).
def _vars(**extravars):
    return lambda lab, tmp: (extravars, None)


def _manifest(change):
    def setup(lab, tmp):
        path = hotfix_copy(tmp)
        change(path)
        return {"sms_hotfix_manifest": path}, None

    return setup


def _corrupt_json(path):
    with open(path, "a") as handle:
        handle.write("{")


def _plain_name(path):
    edit_manifest(path, lambda d: d["platforms"]["x86"]["files"][0].update(name="..\\Smsrun32.exe"))


def _sparc(path):
    edit_manifest(path, lambda d: d["platforms"].update(sparc=d["platforms"]["x86"]))


def _payload(path, how):
    folder = os.path.join(os.path.dirname(path), "payload", "X86.bin")
    target = os.path.join(folder, "Smsrun32.exe")
    if how == "damaged":
        with open(target, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\xff")
    elif how == "missing":
        os.unlink(target)
    elif how == "link":
        os.rename(target, os.path.join(os.path.dirname(path), "elsewhere.exe"))
        os.symlink(os.path.join(os.path.dirname(path), "elsewhere.exe"), target)


def _move(*parts):
    """Move a lab path aside for the case, and back."""

    def setup(lab, tmp):
        path = lab.host("smssite", *parts) if parts[0] != "@" else lab.host(*parts[1:])
        os.rename(path, path + ".away")
        return {}, lambda: os.rename(path + ".away", path)

    return setup


def _link_site_file(lab, tmp):
    folder = lab.host("smssite", *X86)
    target = os.path.join(folder, "SMSRUN32.EXE")
    outside = tmp / "outside.exe"
    outside.write_bytes(b"not the original: a file outside the site server")
    os.rename(target, target + ".away")
    os.symlink(str(outside), target)

    def undo():
        os.unlink(target)
        os.rename(target + ".away", target)

    return {}, undo


def _link_site_folder(lab, tmp):
    folder = lab.host("smssite", *X86)
    outside = tmp / "outside-folder"
    shutil.copytree(folder, str(outside))
    os.rename(folder, folder + ".away")
    os.symlink(str(outside), folder)

    def undo():
        os.unlink(folder)
        os.rename(folder + ".away", folder)

    return {}, undo


def _state_file(kind):
    def setup(lab, tmp):
        state = lab.host("smssite", "SMS", "Hotfix", "Q216552")
        os.makedirs(os.path.join(state, "backup", "X86.bin"))
        journal = os.path.join(state, "journal.json")
        if kind == "journal":
            with open(journal, "w") as handle:
                handle.write("{ this is not json")
        else:
            with open(os.path.join(state, "backup", "X86.bin", "SMSRUN32.EXE"), "wb") as handle:
                handle.write(b"a damaged backup")
            entry = {
                "name": "SMSRUN32.EXE",
                "existed": True,
                "backup": "backup/X86.bin/SMSRUN32.EXE",
                "size": 16,
                "date": "1998-06-22T12:00:00Z",
                "mtime": 898516800.0,
                "sha256": "0" * 64,
            }
            with open(journal, "w") as handle:
                json.dump({"version": 1, "entries": {"X86.bin/smsrun32.exe": entry}}, handle)
        return {}, lambda: shutil.rmtree(lab.host("smssite", "SMS", "Hotfix"))

    return setup


def _immutable(*parts):
    def setup(lab, tmp):
        path = lab.host(*parts)
        subprocess.run(["chattr", "+i", path], check=True)
        return {}, lambda: subprocess.run(["chattr", "-i", path], check=True)

    return setup


def _read_only_mount(lab, tmp):
    folder = lab.host("smssite", *X86)
    subprocess.run(["mount", "--bind", folder, folder], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True)
    return {}, lambda: subprocess.run(["umount", folder], check=True)


def _full_disk(lab, tmp):
    folder = lab.host("smssite", *X86)
    saved = tmp / "saved"
    shutil.copytree(folder, str(saved))
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk" % (size // 1024 + 12), "tmpfs", folder], check=True)
    for name in os.listdir(str(saved)):
        shutil.copy2(os.path.join(str(saved), name), os.path.join(folder, name))
    return {}, lambda: subprocess.run(["umount", folder], check=True)


def _live_lock(lab, tmp):
    folder = lab.host("smssite", "SMS", "Hotfix")
    os.makedirs(folder)
    with open(os.path.join(folder, "rollout.lock"), "w") as handle:
        json.dump(
            {
                "holder": "awx job template 7",
                "purpose": "rollout",
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "epoch": time.time(),
            },
            handle,
        )
    return {}, lambda: shutil.rmtree(folder)


def _no_copy_lists(lab, tmp):
    folder = lab.host("logon02", "SMS", "Logon.srv")
    moved = []
    for name in os.listdir(folder):
        if name.lower().startswith("cl_"):
            os.rename(os.path.join(folder, name), os.path.join(str(tmp), name))
            moved.append(name)
    return {}, lambda: [os.rename(os.path.join(str(tmp), n), os.path.join(folder, n)) for n in moved]


CASES = [
    # the hotfix
    ("manifest-missing", _vars(sms_hotfix_manifest="/nonexistent/Q216552/manifest.json"), ["does not exist"]),
    ("manifest-not-json", _manifest(_corrupt_json), ["not valid JSON"]),
    ("manifest-name-with-path", _manifest(_plain_name), ["not a plain name"]),
    ("manifest-unknown-platform", _manifest(_sparc), ["sparc", "unknown"]),
    ("payload-damaged", _manifest(lambda p: _payload(p, "damaged")), ["SHA-256", "damaged"]),
    ("payload-missing", _manifest(lambda p: _payload(p, "missing")), ["is missing"]),
    ("payload-link", _manifest(lambda p: _payload(p, "link")), ["symbolic link"]),
    # variables
    ("waves-zero", _vars(sms_rollout_waves=[0]), ["sms_rollout_waves", "0"]),
    ("waves-over-100", _vars(sms_rollout_waves=[1, "150%"]), ["sms_rollout_waves", "150%"]),
    ("threshold-not-a-number", _vars(sms_rollout_max_fail_percentage="abc"), ["sms_rollout_max_fail_percentage"]),
    ("on-failure-unknown", _vars(sms_rollout_on_failure="undo"), ["sms_rollout_on_failure", "'undo'"]),
    ("client-stop-timeout", _vars(sms_client_stop_timeout="abc"), ["sms_client_stop_timeout", "client01"]),
    ("client-running-policy", _vars(sms_client_running_policy="sometimes"), ["sms_client_running_policy"]),
    ("client-process-scope", _vars(sms_client_process_scope="galaxy"), ["sms_client_process_scope"]),
    ("replication-mode", _vars(sms_replication_mode="teleport"), ["sms_replication_mode", "logon01"]),
    ("stage-bump", _vars(sms_stage_bump="sometimes"), ["sms_stage_bump", "smssite"]),
    ("module-bytecode", _vars(sms_module_bytecode="sometimes"), ["sms_module_bytecode is 'sometimes'", "logon01"]),
    ("platform-unknown", _vars(sms_rollout_platforms=["sparc"]), ["sms_rollout_platforms", "sparc"]),
    ("platform-unknown-as-a-string", _vars(sms_rollout_platforms="x86,sparc"), ["'sparc' is not a platform"]),
    # a misspelt setting would silently fall back to its default (waves, threshold, window)
    (
        "variable-misspelt",
        _vars(sms_rollout_wave=[1, "50%"], sms_rollout_max_fail_percent=5),
        [
            "sms_rollout_wave is not a variable the rollout knows (set with -e)",
            "Did you mean sms_rollout_waves?",
            "sms_rollout_max_fail_percent is not",
            "Did you mean sms_rollout_max_fail_percentage?",
        ],
    ),
    (
        "window-misspelt",
        _vars(sms_rollout_windows="Sat 22:00-06:00"),
        ["sms_rollout_windows is not", "Did you mean sms_rollout_window?"],
    ),
    ("platform-not-in-manifest", _vars(sms_rollout_platforms=["mips"]), ["sms_rollout_platforms", "mips"]),
    # groups
    ("site-group-missing", _vars(sms_site_group="nosite"), ["nosite", "sms_site_group"]),
    ("client-group-missing", _vars(sms_client_group="noclients"), ["noclients", "sms_client_group"]),
    ("logon-names-mismatch", _vars(sms_logon_server_names=["LOGON01"]), ["sms_logon_server_names", "smssite"]),
    ("logon-name-with-path", _vars(sms_logon_server_names=["..", "LOGON01"]), ["plain server name"]),
    # the site server
    ("client-src-missing", _move("SMS", "Site.srv", "Maincfg.box", "Client.src"), ["Client.src"]),
    ("platform-folder-missing", _move(*X86), ["X86.bin", "sms_rollout_platforms"]),
    ("system-map-missing", _move("SMS", "System.map"), ["System.map is missing"]),
    ("client-src-file-link", _link_site_file, ["symbolic link", "SMSRUN32.EXE"]),
    ("client-src-folder-link", _link_site_folder, ["symbolic link", "X86.bin"]),
    ("journal-damaged", _state_file("journal"), ["journal.json", "not valid JSON"]),
    ("backup-damaged", _state_file("backup"), ["backup", "is damaged"]),
    ("lock-held", _live_lock, ["awx job template 7"]),
    # the logon servers
    ("logon-platform-missing", _move("@", "logon01", "SMS", "Logon.srv", "Alpha.bin"), ["Alpha.bin"]),
    ("logon-copy-lists-missing", _no_copy_lists, ["copy lists"]),
]
ROOT_CASES = [
    ("client-src-immutable", _immutable("smssite", *X86), ["read-only"]),
    ("client-src-read-only-mount", _read_only_mount, ["read-only"]),
    ("client-src-full-disk", _full_disk, ["not enough free space"]),
    ("logon-state-folder-immutable", _immutable("logon02", "SMS"), ["cannot write in", "logon02"]),
]


@pytest.mark.parametrize(
    "case", CASES + [pytest.param(c, marks=needs_root) for c in ROOT_CASES], ids=[c[0] for c in CASES + ROOT_CASES]
)
def test_a_refused_run_changes_nothing_on_any_host(case, small_lab, run_playbook, tmp_path):
    _name, setup, words = case
    extravars, undo = setup(small_lab, tmp_path)
    try:
        before = full_listing(os.path.join(small_lab.root, "hosts"))
        run = run_playbook(small_lab, "rollout.yml", extravars=dict({"sms_replication_timeout": 5}, **extravars))
        after = full_listing(os.path.join(small_lab.root, "hosts"))
    finally:
        if undo:
            undo()
    found = failures(run)
    assert run.rc != 0 and found, run.stdout[-3000:]
    text = " ".join(msg for _host, _task, msg in found)
    for word in words:
        assert word in text, (word, found)
    assert after == before, "a refused run changed: %s" % sorted(set(after.items()) ^ set(before.items()))
    # refused before the lock and the baselines (the listing shows neither), and before any client
    assert not run.results("sms_client_upgrade")


# --- the wave gate counts the unreachable -----------------------------------------------------


def _inventory_with_unreachable(lab, hosts, path):
    """A copy of the lab's inventory in which `hosts` are reached over SSH on a closed port."""
    import yaml

    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    for group in ("clients_x86", "clients_alpha"):
        members = inventory["all"]["children"]["clients"]["children"][group]["hosts"]
        for host in hosts:
            if host in members:
                members[host] = {
                    "ansible_connection": "ssh",
                    "ansible_host": "127.0.0.1",
                    "ansible_port": 1,
                    "ansible_user": "nobody",
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    return path


def _break(lab, client):
    """A client whose SMS.INI lacks [SMS]: it fails, untouched."""
    with open(lab.host(client, "SMS.INI"), "rb") as handle:
        data = handle.read()
    with open(lab.host(client, "SMS.INI"), "wb") as handle:
        handle.write(data.replace(b"[SMS]", b"[NotSMS]"))


@pytest.mark.parametrize("failed,unreachable", [(3, 1), (0, 4)], ids=["3-failed-1-unreachable", "4-unreachable"])
def test_unreachable_clients_count_toward_the_wave_threshold(failed, unreachable, make_lab, run_playbook, tmp_path):
    lab = make_lab(clients=30, alpha=2, hung=0, cycle=2, no_smsrun=True)
    clients = lab.clients()
    waves = [1, 3, 15, 11]  # client01 | client02-04 | client05-19 | client20-30
    third = clients[4:19]
    bad = third[: failed + unreachable]
    for client in bad[:failed]:
        _break(lab, client)
    inventory = _inventory_with_unreachable(lab, bad[failed:], str(tmp_path / "inventory.yml"))
    lab.inventory = inventory
    fourth = clients[19:]
    untouched = {c: lab.snapshot(c) for c in fourth}

    run = run_playbook(lab, extravars={"sms_rollout_waves": waves, "sms_rollout_max_fail_percentage": 20})
    assert run.rc != 0
    results = run.results("sms_client_upgrade")
    for client in fourth:
        assert client not in results, "%s of wave 4 ran although wave 3 crossed the threshold" % client
        assert lab.snapshot(client) == untouched[client]
    gate = [msg for _h, task, msg in failures(run) if "Wave gate" in (task or "")]
    assert gate and "wave 4 of 4 does not start" in gate[0], failures(run)
    for client in bad:
        assert client in gate[0], (client, gate[0])
    assert "11 client(s) not reached" in gate[0]
    # the clients of wave 3 that could be upgraded were
    for client in third[len(bad) :]:
        assert results[client]["status"] == "upgraded", (client, results[client])
    # the report and the console name every one of them: failed, unreachable, not reached
    status = {entry["host"]: entry["status"] for entry in run.report()["clients"]}
    assert sorted(h for h, s in status.items() if s == "failed") == sorted(bad[:failed])
    assert sorted(h for h, s in status.items() if s == "unreachable") == sorted(bad[failed:])
    assert sorted(h for h, s in status.items() if s == "not_reached") == sorted(fourth)
    console = run.stdout
    if failed:
        assert "failed (%d): %s" % (failed, ", ".join(bad[:failed])) in console
    assert "unreachable (%d): %s" % (unreachable, ", ".join(bad[failed:])) in console
    assert "not reached (11): %s" % ", ".join(fourth) in console


# --- the site tier is crash-safe -------------------------------------------------------------


def test_a_site_staged_but_never_bumped_is_finished_by_the_next_run(make_lab, run_playbook):
    """The state a controller killed between the last replace and the bump leaves."""
    lab = make_lab(cycle=2, hung=0, no_smsrun=True)
    staged = run_playbook(lab, "playbooks/site.yml", extravars={"sms_stage_bump": "never"})
    assert staged.rc == 0, staged.stdout[-3000:]
    result = staged.results("sms_hotfix_stage")["smssite"]
    assert result["system_map"]["bumped"] is False and result["bump_owed"] is True
    with open(lab.host("smssite", "SMS", "Hotfix", "Q216552", "journal.json")) as handle:
        assert "bump" in json.load(handle)["pending"]
    version = lab.copy_list_version("logon01")

    run = run_playbook(lab, extravars={"sms_replication_timeout": 120})
    assert run.rc == 0, run.stdout[-3000:]
    site = run.results("sms_hotfix_stage")["smssite"]
    assert site["system_map"]["bumped"] is True and site["bump_owed"] is False
    assert lab.copy_list_version("logon01") > version
    with open(lab.host("smssite", "SMS", "Hotfix", "Q216552", "journal.json")) as handle:
        assert "pending" not in json.load(handle)
    for client, data in run.results("sms_client_upgrade").items():
        assert data["status"] == "upgraded", (client, data)
    again = run_playbook(lab)
    assert again.rc == 0 and again.changed() == 0, again.stdout[-3000:]


# --- a slice's job sees only its own hosts ----------------------------------------------------


def _slice_inventory(lab, path, names):
    """The lab's inventory as one AWX slice sees it: one client, no servers, and the
    site's logon server names as a variable of the clients' group."""
    import yaml

    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    children = inventory["all"]["children"]
    for group in list(children):
        if group != "clients":
            del children[group]
    kept = None
    for group in children["clients"]["children"].values():
        for host in list(group.get("hosts") or {}):
            if kept is None:
                kept = host
            else:
                del group["hosts"][host]
    children["clients"]["vars"] = {"sms_logon_server_names": names}
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    return kept


def test_a_slice_checks_its_clients_against_the_logon_names_of_their_group(small_lab, run_playbook, tmp_path):
    lab = Lab(small_lab.root)
    lab.inventory = str(tmp_path / "slice.yml")
    client = _slice_inventory(small_lab, lab.inventory, ["SMSSITE", "LOGON01", "LOGON02"])
    run = run_playbook(lab, "playbooks/clients.yml", check=True)
    assert run.rc == 0, failures(run) or run.stdout[-3000:]
    check = run.results("sms_rollout_check")
    assert check["localhost"]["msg"].startswith("every input of every tier is valid"), check

    # the group's list is checked as the play's would be: a name with a path is refused
    _slice_inventory(small_lab, lab.inventory, ["..", "LOGON01"])
    before = full_listing(os.path.join(small_lab.root, "hosts"))
    run = run_playbook(lab, "playbooks/clients.yml")
    assert run.rc != 0
    text = " ".join(msg for _h, _t, msg in failures(run))
    assert "plain server name" in text and "'..'" in text, failures(run)
    assert not run.results("sms_client_upgrade")
    assert full_listing(os.path.join(small_lab.root, "hosts")) == before, client
