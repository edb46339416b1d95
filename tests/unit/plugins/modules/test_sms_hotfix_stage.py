"""sms_hotfix_stage driven through its argument spec against tmp site servers.

Bad input must fail naming the cause and the path, and leave every byte (and
date) of the site server as it was: asserted with sms_testlib.snapshot.
Read-only and disk-full cases use real tmpfs/bind mounts when run as root (as
CI does), and chmod / an injected ENOSPC otherwise.
"""

import contextlib
import json
import os
import subprocess

import pytest

from sms_testlib import (
    DIRS,
    HOTFIX_DATE,
    ORIGINAL_MTIME,
    blob,
    make_hotfix,
    make_site,
    original_files,
    sha,
    sha256_file,
    snapshot,
    write,
)

from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import parse_iso_utc

ROOT = os.geteuid() == 0
MODULE = "sms_hotfix_stage"


def client_src(sms, platform="x86"):
    return os.path.join(sms, "Site.srv", "Maincfg.box", "Client.src", DIRS[platform])


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def manifest_data(manifest):
    with open(manifest) as handle:
        return json.load(handle)


def save_manifest(manifest, data):
    with open(manifest, "w") as handle:
        json.dump(data, handle, indent=2)


@pytest.fixture
def world(tmp_path):
    manifest = make_hotfix(tmp_path)
    sms = make_site(tmp_path)
    return {"tmp": tmp_path, "manifest": manifest, "sms": sms, "site": os.path.join(str(tmp_path), "site")}


@pytest.fixture
def run(module_runner, world):
    def _run(check_mode=False, diff=False, **params):
        args = {"sms_root": world["sms"], "manifest": world["manifest"]}
        args.update(params)
        return module_runner(MODULE, args, check_mode=check_mode, diff=diff)

    return _run


def mount(*argv):
    subprocess.run(["mount"] + list(argv), check=True, capture_output=True)


def umount(path):
    subprocess.run(["umount", path], check=False, capture_output=True)


@contextlib.contextmanager
def read_only_dir(path):
    """`path` (a folder or a file) made read-only: a read-only bind mount as root, chmod otherwise."""
    if ROOT:
        mount("--bind", path, path)
        try:
            mount("-o", "remount,bind,ro", path)
            yield
        finally:
            umount(path)
    else:
        mode = os.stat(path).st_mode
        os.chmod(path, 0o555 if os.path.isdir(path) else 0o444)
        try:
            yield
        finally:
            os.chmod(path, mode)


def hotfix_bytes(platform, name):
    from sms_testlib import SIZES

    return blob("hotfix:%s:%s" % (platform, name), SIZES[platform])


# -- the rhythm -----------------------------------------------------------------------------------
def test_rhythm_check_change_no_change_check(world, run):
    sms = world["sms"]
    before = snapshot(world["site"])

    checked = run(check_mode=True)
    assert not checked.get("failed"), checked
    assert checked["changed"] is True
    assert (checked["status"], checked["state"]) == ("would_stage", "present")
    assert {(f["platform"], f["name"]) for f in checked["files"] if f["changed"]} == {
        ("x86", "Smsrun32.exe"),
        ("x86", "Smssrv32.exe"),
        ("alpha", "Smsrun32.exe"),
        ("alpha", "Smssrv32.exe"),
    }
    assert checked["system_map"]["bumped"] is True
    assert snapshot(world["site"]) == before, "check mode must not touch the site server"

    done = run()
    assert not done.get("failed"), done
    assert done["changed"] is True and done["kb"] == "Q216552"
    assert (done["status"], done["state"]) == ("staged", "present")
    for platform in ("x86", "alpha"):
        folder = client_src(sms, platform)
        for name in ("Smsrun32.exe", "Smssrv32.exe"):
            expected = hotfix_bytes(platform, name)
            entry = [f for f in done["files"] if f["platform"] == platform and f["name"] == name][0]
            assert read(entry["path"]) == expected
            assert entry["after_sha256"] == sha(expected)
            assert entry["before_sha256"] == sha(original_files(platform)[name])
            assert os.stat(entry["path"]).st_mtime == parse_iso_utc(HOTFIX_DATE[name])
            assert read(entry["backup"]) == original_files(platform)[name]
        # Cli_nt.exe is not part of the hotfix: untouched.
        assert read(os.path.join(folder, "Cli_nt.exe")) == original_files(platform)["Cli_nt.exe"]
    system_map = os.path.join(sms, "System.map")
    assert read(system_map) == b"[System Map]\r\nSite=LAB\r\n"
    assert os.stat(system_map).st_mtime > ORIGINAL_MTIME
    assert done["system_map"]["bumped"] is True and done["system_map"]["path"] == system_map
    assert done["journal"] == os.path.join(sms, "Hotfix", "Q216552", "journal.json")

    after = snapshot(world["site"])
    again = run()
    assert not again.get("failed"), again
    assert again["changed"] is False
    assert not any(f["changed"] for f in again["files"])
    assert again["system_map"]["bumped"] is False
    assert snapshot(world["site"]) == after

    rechecked = run(check_mode=True)
    assert rechecked["changed"] is False
    assert snapshot(world["site"]) == after


def test_case_insensitive_name_is_kept(world, run):
    folder = client_src(world["sms"])
    assert "SMSRUN32.EXE" in os.listdir(folder)
    result = run()
    assert not result.get("failed"), result
    names = sorted(os.listdir(folder))
    assert names == ["Cli_nt.exe", "SMSRUN32.EXE", "Smssrv32.exe"]
    entry = [f for f in result["files"] if f["platform"] == "x86" and f["name"] == "Smsrun32.exe"][0]
    assert entry["path"] == os.path.join(folder, "SMSRUN32.EXE")
    assert read(entry["path"]) == hotfix_bytes("x86", "Smsrun32.exe")
    assert os.path.basename(entry["backup"]) == "SMSRUN32.EXE"
    journal = json.loads(read(result["journal"]))
    recorded = journal["entries"]["X86.bin/smsrun32.exe"]
    assert recorded["name"] == "SMSRUN32.EXE"
    assert recorded["sha256"] == sha(original_files("x86")["Smsrun32.exe"])
    assert recorded["size"] == len(original_files("x86")["Smsrun32.exe"])


def test_file_missing_on_site_is_added_and_rollback_removes_it(world, run):
    folder = client_src(world["sms"])
    os.unlink(os.path.join(folder, "Smssrv32.exe"))
    before = snapshot(world["site"])
    result = run(platforms=["x86"])
    assert not result.get("failed"), result
    entry = [f for f in result["files"] if f["name"] == "Smssrv32.exe"][0]
    assert entry["before_sha256"] is None and entry["changed"] and entry["backup"] is None
    assert read(os.path.join(folder, "Smssrv32.exe")) == hotfix_bytes("x86", "Smssrv32.exe")
    back = run(platforms=["x86"], state="absent")
    assert back["changed"] is True
    assert not os.path.exists(os.path.join(folder, "Smssrv32.exe"))
    restored = snapshot(world["site"])
    assert {k: v for k, v in restored.items() if "Client.src" in k} == {
        k: v for k, v in before.items() if "Client.src" in k
    }


def test_backup_is_taken_once_and_survives_a_second_run(world, run):
    first = run()
    assert first["changed"] is True
    backup = [f for f in first["files"] if f["platform"] == "x86" and f["name"] == "Smsrun32.exe"][0]["backup"]
    journal_before = read(first["journal"])
    # Someone re-stages: the file on the site now differs from both original and hotfix.
    target = os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")
    write(target, b"a file somebody put there by hand")
    second = run()
    assert second["changed"] is True
    entry = [f for f in second["files"] if f["platform"] == "x86" and f["name"] == "Smsrun32.exe"][0]
    assert entry["changed"] and entry["backup"] == backup
    assert read(backup) == original_files("x86")["Smsrun32.exe"], "the backup must stay the original"
    assert read(second["journal"]) == journal_before
    assert read(target) == hotfix_bytes("x86", "Smsrun32.exe")
    # And a third run (nothing to do) leaves the backup as it is too.
    third = run()
    assert third["changed"] is False
    assert read(backup) == original_files("x86")["Smsrun32.exe"]


# -- rollback -------------------------------------------------------------------------------------
def test_rollback_restores_identical_bytes_and_dates_and_is_idempotent(world, run):
    sms = world["sms"]
    original = {k: v for k, v in snapshot(world["site"]).items() if "Client.src" in k}
    run()
    staged_map_mtime = os.stat(os.path.join(sms, "System.map")).st_mtime
    os.utime(os.path.join(sms, "System.map"), (staged_map_mtime - 100, staged_map_mtime - 100))

    checked = run(state="absent", check_mode=True)
    assert checked["changed"] is True
    assert (checked["status"], checked["state"]) == ("would_roll_back", "absent")
    assert sum(1 for f in checked["files"] if f["changed"]) == 4
    assert read(os.path.join(client_src(sms), "SMSRUN32.EXE")) == hotfix_bytes("x86", "Smsrun32.exe")

    back = run(state="absent")
    assert not back.get("failed"), back
    assert back["changed"] is True and back["system_map"]["bumped"] is True
    assert (back["status"], back["state"]) == ("rolled_back", "absent")
    now = {k: v for k, v in snapshot(world["site"]).items() if "Client.src" in k}
    assert now == original, "rollback must restore the originals byte for byte, with their dates"
    assert "SMSRUN32.EXE" in os.listdir(client_src(sms))
    assert read(os.path.join(sms, "System.map")) == b"[System Map]\r\nSite=LAB\r\n"
    assert os.stat(os.path.join(sms, "System.map")).st_mtime > staged_map_mtime - 100

    after = snapshot(world["site"])
    again = run(state="absent")
    assert again["changed"] is False and again["system_map"]["bumped"] is False
    assert (again["status"], again["state"]) == ("nothing_to_roll_back", "absent")
    assert snapshot(world["site"]) == after
    assert run(state="absent", check_mode=True)["changed"] is False

    # Stage again after a rollback: the backups are still the originals.
    restaged = run()
    assert restaged["changed"] is True
    for f in restaged["files"]:
        assert read(f["backup"]) == original_files(f["platform"])[f["name"]]


def test_rollback_without_journal_changes_nothing(world, run):
    before = snapshot(world["site"])
    result = run(state="absent")
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert "nothing to roll back" in result["msg"] and result["journal"] in result["msg"]
    assert snapshot(world["site"]) == before


def test_rollback_refuses_a_damaged_backup(world, run):
    staged = run()
    backup = staged["files"][-1]["backup"]
    with open(backup, "r+b") as handle:
        handle.write(b"X")
    before = snapshot(world["site"])
    result = run(state="absent")
    assert result.get("failed")
    assert backup in result["msg"] and "SHA-256" in result["msg"]
    assert snapshot(world["site"]) == before


def test_rollback_restores_the_original_name(world, run):
    run()
    folder = client_src(world["sms"])
    # A tool renamed the file to another case after the staging.
    os.rename(os.path.join(folder, "SMSRUN32.EXE"), os.path.join(folder, "smsrun32.exe"))
    back = run(state="absent", platforms=["x86"])
    assert back["changed"] is True
    assert sorted(os.listdir(folder)) == ["Cli_nt.exe", "SMSRUN32.EXE", "Smssrv32.exe"]
    assert read(os.path.join(folder, "SMSRUN32.EXE")) == original_files("x86")["Smsrun32.exe"]


# -- bump, platforms, diff ------------------------------------------------------------------------
def test_bump_always_touches_system_map_even_when_nothing_changed(world, run):
    run()
    system_map = os.path.join(world["sms"], "System.map")
    os.utime(system_map, (ORIGINAL_MTIME, ORIGINAL_MTIME))
    checked = run(bump="always", check_mode=True)
    assert checked["changed"] is True and checked["system_map"]["bumped"] is True
    assert os.stat(system_map).st_mtime == ORIGINAL_MTIME
    result = run(bump="always")
    assert result["changed"] is True and result["system_map"]["bumped"] is True
    assert not any(f["changed"] for f in result["files"])
    assert os.stat(system_map).st_mtime > ORIGINAL_MTIME
    assert read(system_map) == b"[System Map]\r\nSite=LAB\r\n"


def test_bump_never_leaves_system_map(world, run):
    result = run(bump="never")
    assert result["changed"] is True and result["system_map"]["bumped"] is False
    assert os.stat(os.path.join(world["sms"], "System.map")).st_mtime == ORIGINAL_MTIME


def test_platforms_limit_the_work(world, run):
    alpha_before = {k: v for k, v in snapshot(world["site"]).items() if "Alpha.bin" in k}
    result = run(platforms=["x86"])
    assert {f["platform"] for f in result["files"]} == {"x86"}
    assert {k: v for k, v in snapshot(world["site"]).items() if "Alpha.bin" in k} == alpha_before
    assert read(os.path.join(client_src(world["sms"]), "Smssrv32.exe")) == hotfix_bytes("x86", "Smssrv32.exe")


def test_diff_names_files_and_system_map(world, run):
    result = run(diff=True, check_mode=True)
    diff = result["diff"]
    headers = [d["before_header"] for d in diff]
    assert "X86.bin/SMSRUN32.EXE" in headers and "Alpha.bin/Smssrv32.exe" in headers
    entry = [d for d in diff if d["before_header"] == "X86.bin/SMSRUN32.EXE"][0]
    assert entry["before"] == "X86.bin/SMSRUN32.EXE sha256:%s\n" % sha(original_files("x86")["Smsrun32.exe"])
    assert entry["after"] == "X86.bin/SMSRUN32.EXE sha256:%s\n" % sha(hotfix_bytes("x86", "Smsrun32.exe"))
    assert any(d["before"].startswith("System.map date: 1998-06-22T12:00:00Z") for d in diff)
    run()
    assert run(diff=True)["diff"] == []


# -- bad input: refused, named, nothing changed ---------------------------------------------------
def assert_refused(result, *words, preflight=True):
    """Failed, naming `words`; with `preflight`, refused before any step (nothing to put back)."""
    assert result.get("failed") is True, result
    if preflight:
        assert "restored" not in result, "expected a refusal before any change: %s" % result["msg"]
        assert "Nothing was changed" in result["msg"]
    for word in words:
        assert word in result["msg"], (word, result["msg"])


def test_missing_payload_file(world, run):
    payload = os.path.join(os.path.dirname(world["manifest"]), "payload", "Alpha.bin", "Smssrv32.exe")
    os.unlink(payload)
    before = snapshot(world["site"])
    assert_refused(run(), "missing", payload)
    assert snapshot(world["site"]) == before


def test_payload_with_one_flipped_byte(world, run):
    payload = os.path.join(os.path.dirname(world["manifest"]), "payload", "X86.bin", "Smsrun32.exe")
    data = bytearray(read(payload))
    data[100] ^= 0x01
    write(payload, bytes(data))
    before = snapshot(world["site"])
    result = run()
    assert_refused(result, "SHA-256", payload, sha(bytes(data)))
    assert snapshot(world["site"]) == before


@pytest.mark.parametrize("name", ["../x", "..\\x", "C:x.exe", "sub/Smsrun32.exe"])
def test_manifest_naming_a_path(world, run, name):
    data = manifest_data(world["manifest"])
    data["platforms"]["x86"]["files"][0]["name"] = name
    save_manifest(world["manifest"], data)
    before = snapshot(world["site"])
    assert_refused(run(), "not a plain name", world["manifest"], repr(name))
    assert snapshot(world["site"]) == before


def test_unknown_platform_in_manifest(world, run):
    data = manifest_data(world["manifest"])
    data["platforms"]["sparc"] = data["platforms"]["x86"]
    save_manifest(world["manifest"], data)
    before = snapshot(world["site"])
    assert_refused(run(), "'sparc' is unknown", world["manifest"])
    assert snapshot(world["site"]) == before


def test_unknown_platform_requested(world, run):
    before = snapshot(world["site"])
    assert_refused(run(platforms=["x86", "ppc"]), "'ppc' is unknown")
    assert snapshot(world["site"]) == before


def test_platform_folder_missing_on_site(tmp_path, module_runner):
    manifest = make_hotfix(tmp_path)
    sms = make_site(tmp_path, platforms=("x86",))
    before = snapshot(tmp_path / "site")
    result = module_runner(MODULE, {"sms_root": sms, "manifest": manifest})
    assert_refused(result, "Alpha.bin", "alpha")
    assert snapshot(tmp_path / "site") == before


def test_sms_root_missing(world, run):
    missing = os.path.join(str(world["tmp"]), "nowhere", "SMS")
    before = snapshot(world["tmp"])
    assert_refused(run(sms_root=missing), "SMS root", missing, "does not exist")
    assert snapshot(world["tmp"]) == before
    assert not os.path.exists(missing)


def test_not_an_sms_root(world, run):
    maincfg = os.path.join(world["sms"], "Site.srv", "Maincfg.box")
    os.rename(os.path.join(maincfg, "Client.src"), os.path.join(maincfg, "Client.old"))
    before = snapshot(world["site"])
    assert_refused(run(), "no Client.src folder", os.path.join(maincfg, "Client.src"))
    assert snapshot(world["site"]) == before


def test_system_map_missing(world, run):
    os.unlink(os.path.join(world["sms"], "System.map"))
    before = snapshot(world["site"])
    assert_refused(run(), os.path.join(world["sms"], "System.map"), "missing")
    assert snapshot(world["site"]) == before


def test_components_found_in_any_case(tmp_path, module_runner):
    manifest = make_hotfix(tmp_path, platforms=("x86",))
    sms = make_site(tmp_path, platforms=("x86",))
    os.rename(os.path.join(sms, "Site.srv"), os.path.join(sms, "SITE.SRV"))
    os.rename(os.path.join(sms, "System.map"), os.path.join(sms, "SYSTEM.MAP"))
    result = module_runner(MODULE, {"sms_root": sms, "manifest": manifest})
    assert result["changed"] is True, result
    assert result["system_map"]["path"] == os.path.join(sms, "SYSTEM.MAP")
    folder = os.path.join(sms, "SITE.SRV", "Maincfg.box", "Client.src", "X86.bin")
    assert read(os.path.join(folder, "SMSRUN32.EXE")) == hotfix_bytes("x86", "Smsrun32.exe")


def test_target_directory_read_only(world, run):
    folder = client_src(world["sms"], "alpha")
    before = snapshot(world["site"])
    with read_only_dir(folder):
        result = run()
        assert_refused(result, "cannot write in", folder)
        assert snapshot(world["site"]) == before
    assert not os.path.exists(os.path.join(world["sms"], "Hotfix"))


def test_state_dir_read_only(world, run, tmp_path):
    state_parent = tmp_path / "state"
    state_parent.mkdir()
    before = snapshot(world["site"])
    with read_only_dir(str(state_parent)):
        result = run(state_dir=str(state_parent / "Q216552"))
        assert_refused(result, "cannot write in", str(state_parent))
    assert snapshot(world["site"]) == before


def fill(folder, leave_pages):
    st = os.statvfs(folder)
    size = (st.f_bavail - leave_pages) * st.f_frsize
    write(os.path.join(folder, "filler.bin"), b"\0" * size)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB filesystem: a real tmpfs as root, else a plain folder (space is then simulated)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if ROOT:
        mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt))
    yield str(mnt)
    if ROOT:
        umount(str(mnt))


def test_disk_full_is_refused_before_anything_changes(tmp_path, tiny_fs, module_runner, monkeypatch):
    manifest = make_hotfix(tmp_path)
    sms = make_site(tiny_fs)
    if ROOT:
        fill(tiny_fs, leave_pages=2)
    else:
        real = os.fstatvfs

        class Small:
            def __init__(self, st):
                self.f_frsize, self.f_bavail = st.f_frsize, 2

        monkeypatch.setattr(os, "fstatvfs", lambda fd: Small(real(fd)))
    site = os.path.join(tiny_fs, "site")
    before = snapshot(site)
    result = module_runner(MODULE, {"sms_root": sms, "manifest": manifest})
    assert_refused(result, "not enough free space", "need", "have")
    assert snapshot(site) == before
    assert not os.path.exists(os.path.join(sms, "Hotfix"))


def _enospc_after(monkeypatch, count):
    """Make the `count`-th copy into Client.src fail with ENOSPC, as a full disk would."""
    import sms_testlib

    return sms_testlib.enospc_on(monkeypatch, "Client.src", count)


def test_disk_full_during_the_copy_puts_everything_back(world, run, monkeypatch):
    before = snapshot(world["site"])
    _enospc_after(monkeypatch, 3)
    result = run()
    assert_refused(result, "no space left", "put back", preflight=False)
    assert len(result["restored"]) == 2
    assert snapshot(world["site"]) == before, "the site server must end byte-identical"
    assert not os.path.exists(os.path.join(world["sms"], "Hotfix")), "backups of a failed run are removed"


def test_disk_full_on_a_second_run_keeps_the_first_runs_backups(world, run, monkeypatch):
    run(platforms=["x86"])
    journal = os.path.join(world["sms"], "Hotfix", "Q216552", "journal.json")
    os.utime(journal, (ORIGINAL_MTIME, ORIGINAL_MTIME))  # a rewrite of the journal would show
    before = snapshot(world["site"])
    _enospc_after(monkeypatch, 2)
    result = run()
    assert_refused(result, "no space left", "put back", preflight=False)
    assert snapshot(world["site"]) == before
    assert set(json.loads(read(journal))["entries"]) == {"X86.bin/smsrun32.exe", "X86.bin/smssrv32.exe"}


@pytest.mark.skipif(not ROOT, reason="needs a real tmpfs mount (root); the injected ENOSPC tests cover it otherwise")
def test_real_enospc_mid_run_puts_everything_back(tmp_path, tiny_fs, module_runner, monkeypatch):
    """Preflight bypassed: the tmpfs itself runs out of space on the third copy."""
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_replace

    manifest = make_hotfix(tmp_path)
    sms = make_site(tiny_fs)
    # x86 copies (4096 bytes over 1-page files) fit in one free page; the first alpha copy (2 pages) does not.
    fill(tiny_fs, leave_pages=1)
    monkeypatch.setattr(sms_replace, "check_free_space", lambda needs: None)
    site = os.path.join(tiny_fs, "site")
    before = snapshot(site)
    result = module_runner(
        MODULE, {"sms_root": sms, "manifest": manifest, "state_dir": str(tmp_path / "state" / "Q216552")}
    )
    assert_refused(result, "no space left", "put back", preflight=False)
    assert snapshot(site) == before


def test_journal_unreadable(world, run):
    state = os.path.join(world["sms"], "Hotfix", "Q216552")
    write(os.path.join(state, "journal.json"), b"{not json")
    before = snapshot(world["site"])
    assert_refused(run(), os.path.join(state, "journal.json"), "not valid JSON")
    assert snapshot(world["site"]) == before


def test_rolled_back_is_a_deprecated_alias_of_absent(world, run):
    run()
    back = run(state="rolled_back")
    assert not back.get("failed"), back
    assert (back["status"], back["state"]) == ("rolled_back", "absent")
    said = [(d.get("msg") or d["event"]["msg"]) for d in back["deprecations"]]  # 2.19 / 2.21 shapes
    assert said == ["state=rolled_back is now state=absent; use state=absent"]
    assert back["deprecations"][0]["version"] == "2.0.0"
    assert read(os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")) == original_files("x86")["Smsrun32.exe"]


def test_a_second_stage_is_unchanged(world, run):
    run()
    again = run()
    assert again["changed"] is False and (again["status"], again["state"]) == ("unchanged", "present")


def test_argument_spec_rejects_bad_choices(world, run):
    result = run(state="restored")
    assert result.get("failed") and "state" in result["msg"]
    result = run(bump="sometimes")
    assert result.get("failed") and "bump" in result["msg"]


def test_verified_sha_equals_manifest(world, run):
    result = run()
    data = manifest_data(world["manifest"])
    for f in result["files"]:
        listed = [e for e in data["platforms"][f["platform"]]["files"] if e["name"] == f["name"]][0]
        assert sha256_file(f["path"]) == listed["sha256"] == f["after_sha256"]


def test_system_map_read_only(world, run):
    system_map = os.path.join(world["sms"], "System.map")
    before = snapshot(world["site"])
    with read_only_dir(system_map):
        result = run()
        assert_refused(result, "cannot change", system_map)
        assert snapshot(world["site"]) == before
        # Without a bump, System.map need not be writable.
        assert run(bump="never")["changed"] is True


# -- the journal is retired after a completed rollback --------------------------------------------
SERVICE_PACK_MTIME = 946684800  # 2000-01-01T00:00:00Z


def state_folder(world):
    return os.path.join(world["sms"], "Hotfix", "Q216552")


def test_rollout_rollback_service_pack_rollout_rollback_keeps_the_newer_file(world, run):
    """A rollback retires its journal, so a later rollout backs up what it finds then."""
    folder = client_src(world["sms"])
    state = state_folder(world)
    target = os.path.join(folder, "SMSRUN32.EXE")
    assert run()["changed"] is True

    checked = run(state="absent", check_mode=True)
    assert checked["changed"] is True
    assert os.path.isfile(os.path.join(state, "journal.json")), "check mode must not retire the journal"

    back = run(state="absent")
    assert not back.get("failed"), back
    assert back["changed"] is True
    assert read(target) == original_files("x86")["Smsrun32.exe"]
    assert not os.path.exists(os.path.join(state, "journal.json"))
    assert not os.path.exists(os.path.join(state, "backup"))
    retired = os.listdir(os.path.join(state, "retired"))
    assert len(retired) == 1 and back["retired"] == os.path.join(state, "retired", retired[0])
    # The result still lists the files restored, with their backups where they are kept now.
    assert len(back["files"]) == 4 and all(f["changed"] for f in back["files"])
    for f in back["files"]:
        original = {k.lower(): v for k, v in original_files(f["platform"]).items()}[f["name"].lower()]
        assert f["backup"].startswith(back["retired"] + os.sep)
        assert read(f["backup"]) == original and f["after_sha256"] == sha(original)

    # A second rollback has no journal: nothing to do.
    after = snapshot(world["site"])
    again = run(state="absent")
    assert not again.get("failed"), again
    assert again["changed"] is False and "nothing to roll back" in again["msg"]
    assert snapshot(world["site"]) == after

    # A service pack replaces Smsrun32.exe in Client.src.
    service_pack = blob("service pack 3:x86:Smsrun32.exe", 5000)
    write(target, service_pack, SERVICE_PACK_MTIME)
    before_second = {k: v for k, v in snapshot(world["site"]).items() if "Client.src" in k}

    second = run()
    assert second["changed"] is True
    assert read(target) == hotfix_bytes("x86", "Smsrun32.exe")
    entry = [f for f in second["files"] if f["platform"] == "x86" and f["name"] == "Smsrun32.exe"][0]
    assert read(entry["backup"]) == service_pack, "the new rollout must back up the service pack's file"

    back_again = run(state="absent")
    assert back_again["changed"] is True
    assert read(target) == service_pack, "the rollback must put back the newer file, not the old original"
    assert os.stat(target).st_mtime == SERVICE_PACK_MTIME
    assert {k: v for k, v in snapshot(world["site"]).items() if "Client.src" in k} == before_second
    assert len(os.listdir(os.path.join(state, "retired"))) == 2
    assert run(state="absent")["changed"] is False


def test_rollback_of_some_platforms_retires_only_their_entries(world, run):
    state = state_folder(world)
    run()
    back = run(state="absent", platforms=["x86"])
    assert back["changed"] is True
    journal = json.loads(read(os.path.join(state, "journal.json")))
    assert sorted(journal["entries"]) == ["Alpha.bin/smsrun32.exe", "Alpha.bin/smssrv32.exe"]
    assert not os.path.exists(os.path.join(state, "backup", "X86.bin"))
    retired = json.loads(read(os.path.join(back["retired"], "journal.json")))
    assert sorted(retired["entries"]) == ["X86.bin/smsrun32.exe", "X86.bin/smssrv32.exe"]
    assert (
        read(os.path.join(back["retired"], "backup", "X86.bin", "SMSRUN32.EXE"))
        == original_files("x86")["Smsrun32.exe"]
    )
    # x86 is done: a second x86 rollback changes nothing, alpha still rolls back from its backups.
    assert run(state="absent", platforms=["x86"])["changed"] is False
    alpha = run(state="absent", platforms=["alpha"])
    assert alpha["changed"] is True
    assert (
        read(os.path.join(client_src(world["sms"], "alpha"), "SMSRUN32.EXE")) == original_files("alpha")["Smsrun32.exe"]
    )
    assert not os.path.exists(os.path.join(state, "journal.json"))
    assert run(state="absent")["changed"] is False


def test_rollback_with_nothing_left_to_restore_still_retires_the_journal(world, run):
    """A rollback whose files are already the originals (say, a run that died after restoring) completes."""
    state = state_folder(world)
    run()
    for platform in ("x86", "alpha"):
        for name, data in original_files(platform).items():
            found = [e for e in os.listdir(client_src(world["sms"], platform)) if e.lower() == name.lower()][0]
            write(os.path.join(client_src(world["sms"], platform), found), data, ORIGINAL_MTIME)
    checked = run(state="absent", check_mode=True)
    assert checked["changed"] is True and "journal" in checked["msg"]
    assert os.path.isfile(os.path.join(state, "journal.json"))
    result = run(state="absent", bump="never")
    assert result["changed"] is True and not any(f["changed"] for f in result["files"])
    assert not os.path.exists(os.path.join(state, "journal.json")) and result["retired"]
    assert run(state="absent")["changed"] is False


# -- a damaged backup stops a rollout before anything is changed -----------------------------------
def test_damaged_existing_backup_fails_before_any_change(world, run):
    staged = run(platforms=["x86"])
    target = os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")
    backup = [f for f in staged["files"] if f["name"] == "Smsrun32.exe"][0]["backup"]
    recorded = sha(original_files("x86")["Smsrun32.exe"])
    write(target, b"a file somebody put there by hand")  # so a new run would replace it
    with open(backup, "r+b") as handle:
        handle.write(b"X")
    damaged = sha256_file(backup)
    before = snapshot(world["site"])
    for check_mode in (True, False):
        result = run(check_mode=check_mode)
        assert_refused(result, backup, recorded, damaged, "restore the backup", "retire the journal")
        assert snapshot(world["site"]) == before
    assert read(target) == b"a file somebody put there by hand"


def test_missing_existing_backup_fails_before_any_change(world, run):
    staged = run(platforms=["x86"])
    backup = [f for f in staged["files"] if f["name"] == "Smssrv32.exe"][0]["backup"]
    os.unlink(backup)
    before = snapshot(world["site"])
    assert_refused(run(), backup, "missing", "retire the journal")
    assert snapshot(world["site"]) == before


# --- links in Client.src, and a run killed between the last replace and the bump --------------


def test_a_hotfix_file_in_client_src_that_is_a_link_is_refused(world, run, tmp_path):
    """Backed up, the link's target would reach Client.src on rollback, and every logon server after."""
    outside = tmp_path / "outside.exe"
    outside.write_bytes(b"a file outside the site server")
    target = os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")
    os.unlink(target)
    os.symlink(str(outside), target)
    before = snapshot(str(tmp_path))
    result = run()
    assert_refused(result, target, "symbolic link")
    assert snapshot(str(tmp_path)) == before and outside.read_bytes() == b"a file outside the site server"
    assert not os.path.exists(os.path.join(world["sms"], "Hotfix"))


def test_a_platform_folder_that_is_a_link_is_refused(world, run, tmp_path):
    folder = client_src(world["sms"])
    elsewhere = tmp_path / "elsewhere"
    os.rename(folder, str(elsewhere))
    os.symlink(str(elsewhere), folder)
    before = snapshot(str(tmp_path))
    assert_refused(run(), folder, "symbolic link")
    assert snapshot(str(tmp_path)) == before


def test_a_state_folder_that_is_a_link_is_refused(world, run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), os.path.join(world["sms"], "Hotfix"))
    before = snapshot(str(tmp_path))
    assert_refused(run(), "Hotfix", "symbolic link")
    assert snapshot(str(tmp_path)) == before and os.listdir(str(elsewhere)) == []


class Killed(BaseException):
    """What a SIGKILL is to a run: nothing after it happens, nothing is put back."""


def test_a_run_killed_before_the_bump_is_finished_by_the_next(world, run, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.modules import sms_hotfix_stage

    def killed(site):
        raise Killed()

    real = sms_hotfix_stage.bump_system_map
    monkeypatch.setattr(sms_hotfix_stage, "bump_system_map", killed)
    system_map = os.path.join(world["sms"], "System.map")
    mtime = os.stat(system_map).st_mtime
    with pytest.raises(Killed):
        run()
    # every file replaced, the bump owed and recorded, System.map untouched
    journal = json.loads(read(os.path.join(world["sms"], "Hotfix", "Q216552", "journal.json")))
    assert "bump" in journal["pending"]
    assert os.stat(system_map).st_mtime == mtime
    monkeypatch.setattr(sms_hotfix_stage, "bump_system_map", real)
    check = run(check_mode=True)
    assert check["changed"] is True and check["system_map"]["bumped"] is True
    again = run()
    assert again["changed"] is True and again["system_map"]["bumped"] is True
    assert not [f for f in again["files"] if f["changed"]], "the files were in place already"
    assert os.stat(system_map).st_mtime > mtime
    journal = json.loads(read(os.path.join(world["sms"], "Hotfix", "Q216552", "journal.json")))
    assert "pending" not in journal
    assert run()["changed"] is False


def test_bump_never_records_the_owed_bump_and_auto_makes_it(world, run):
    system_map = os.path.join(world["sms"], "System.map")
    mtime = os.stat(system_map).st_mtime
    first = run(bump="never")
    assert first["system_map"]["bumped"] is False and first["bump_owed"] is True
    assert "bump is owed" in first["msg"]
    assert os.stat(system_map).st_mtime == mtime
    assert run(bump="never")["bump_owed"] is True
    done = run()
    assert done["system_map"]["bumped"] is True and done["bump_owed"] is False and done["changed"] is True
    assert run()["changed"] is False


def test_a_rollback_killed_before_its_bump_is_finished_by_the_next(world, run, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.modules import sms_hotfix_stage

    run()
    real = sms_hotfix_stage.bump_system_map

    def killed(site):
        raise Killed()

    monkeypatch.setattr(sms_hotfix_stage, "bump_system_map", killed)
    with pytest.raises(Killed):
        run(state="absent")
    monkeypatch.setattr(sms_hotfix_stage, "bump_system_map", real)
    again = run(state="absent")
    assert again["system_map"]["bumped"] is True and again["retired"]
    for name, data in original_files("x86").items():
        on_disk = "SMSRUN32.EXE" if name == "Smsrun32.exe" else name
        assert read(os.path.join(client_src(world["sms"]), on_disk)) == data
    assert run(state="absent")["changed"] is False


def test_stale_temporary_files_in_client_src_are_removed(world, run):
    stale = os.path.join(client_src(world["sms"]), ".sms-tmp-%d-0badc0de-SMSRUN32.EXE" % (2**22 + 1))
    write(stale, b"half a file")
    assert run(check_mode=True)["stale_temporary_files"] == [stale] and os.path.exists(stale)
    result = run()
    assert result["stale_temporary_files"] == [stale] and not os.path.exists(stale)


# -- issue 23: nothing lost, for real ---------------------------------------------------------------
def test_a_failed_put_back_keeps_its_backup_and_a_rollback_finishes_it(world, run, monkeypatch):
    import sms_testlib

    folder = os.path.join(world["sms"], "Site.srv", "Maincfg.box", "Client.src")
    before = snapshot(folder)
    sms_testlib.disk_fills_at(monkeypatch, "Client.src", 2)  # full after the first file is replaced
    result = run()
    assert_refused(result, "no space left", "could not all be put back", preflight=False)
    assert len(result["backups_kept"]) == 1, result
    backup = result["backups_kept"][0]
    assert backup in result["msg"] and os.path.exists(backup), result["msg"]
    journal = json.loads(read(os.path.join(state_folder(world), "journal.json")))
    kept = [e for e in journal["entries"].values() if e.get("backup")]
    assert len(kept) == 1 and sha256_file(backup) == kept[0]["sha256"], journal
    platform = "x86" if "X86.bin" in backup else "alpha"
    originals = {name.lower(): data for name, data in original_files(platform).items()}
    assert read(backup) == originals[os.path.basename(backup).lower()], "the original is gone"
    monkeypatch.undo()
    rolled = run(state="absent")
    assert not rolled.get("failed"), rolled
    assert {k: v[:2] for k, v in snapshot(folder).items()} == {k: v[:2] for k, v in before.items()}


def test_a_hard_link_in_client_src_is_refused_before_any_backup(world, run):
    secret = os.path.join(str(world["tmp"]), "outside.bin")
    write(secret, b"outside every managed folder")
    os.chmod(secret, 0o600)
    target = os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")
    os.unlink(target)
    os.link(secret, target)
    before = snapshot(world["site"])
    result = run()
    assert_refused(result, target, "2 hard links")
    assert snapshot(world["site"]) == before
    assert not os.path.exists(os.path.join(world["sms"], "Hotfix"))


def test_a_backup_keeps_the_mode_of_a_0600_original_and_the_rollback_gives_it_back(world, run):
    target = os.path.join(client_src(world["sms"]), "SMSRUN32.EXE")
    os.chmod(target, 0o600)
    assert not run().get("failed")
    backup = os.path.join(state_folder(world), "backup", "X86.bin", "SMSRUN32.EXE")
    assert os.stat(backup).st_mode & 0o777 == 0o600
    os.unlink(target)
    assert not run(state="absent").get("failed")
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert read(target) == original_files("x86")["Smsrun32.exe"]


@pytest.mark.parametrize("where", [("backup", "X86.bin"), ("backup", "Alpha.bin"), ()])
def test_stale_temporary_files_anywhere_in_the_state_folder_are_removed(world, run, where):
    assert not run(platforms=["x86"] if where == ("backup", "Alpha.bin") else None).get("failed")
    folder = os.path.join(state_folder(world), *where)
    os.makedirs(folder, exist_ok=True)
    stale = os.path.join(folder, ".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1))
    write(stale, b"half a backup")
    assert stale in run(check_mode=True)["stale_temporary_files"] and os.path.exists(stale)
    result = run()
    assert not result.get("failed") and stale in result["stale_temporary_files"], result
    assert not os.path.exists(stale)
