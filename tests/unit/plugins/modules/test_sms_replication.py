"""The logon tier: sms_copy_list_baseline, sms_logon_wait, sms_logon_push, and the deprecated sms_replication."""

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

import sms_testlib as lib
from sms_testlib import REPO

MODULE = "sms_replication"  # the deprecated name: see test_the_old_name_*
WAIT = "sms_logon_wait"
BASELINE = "sms_copy_list_baseline"
PUSH = "sms_logon_push"


def rel(sms, *parts):
    return os.path.join(sms, "Logon.srv", *parts)


def manifest_files(manifest_path):
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    base = os.path.dirname(manifest_path)
    return {
        p: [(f["name"], os.path.join(base, f["payload"]), f["sha256"]) for f in spec["files"]]
        for p, spec in manifest["platforms"].items()
    }


def replicate(sms, manifest_path, platforms=None):
    """What a Maintenance Manager pass does to the files: copy, keep the on-disk name."""
    for platform, files in manifest_files(manifest_path).items():
        if platforms and platform not in platforms:
            continue
        folder = rel(sms, lib.DIRS[platform])
        for name, payload, _sha in files:
            existing = [e for e in os.listdir(folder) if e.lower() == name.lower()]
            dest = os.path.join(folder, existing[0] if existing else name)
            with open(payload, "rb") as src:
                lib.write(dest, src.read())


def bump(sms, version):
    for name in ("Cl_nt.txt", "Cl_win95.txt"):
        lib.write(rel(sms, name), b"[Copy List]\r\nCopyListVersion=%d\r\n[Files]\r\nSmsrun32.exe\r\n" % version)


@pytest.fixture
def site(tmp_path):
    manifest = lib.make_hotfix(tmp_path)
    sms = lib.make_logon(tmp_path)
    return manifest, sms, tmp_path


class ModuleClock:
    """Stands in for the module's `time`: monotonic() is a counter that sleep() advances, without waiting.

    `at_sleep[n]` runs during the n-th sleep (1-based), as a change on the server between two polls.
    """

    def __init__(self):
        self.now = 0.0
        self.sleeps = []
        self.at_sleep = {}

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        hook = self.at_sleep.get(len(self.sleeps))
        if hook:
            hook()

    @staticmethod
    def time():
        return time.time()


@pytest.fixture
def clock(monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_logon

    fake = ModuleClock()
    monkeypatch.setattr(sms_logon, "time", fake)
    return fake


def args(manifest, sms, **extra):
    base = {"sms_root": sms, "manifest": manifest, "server_name": "logon01"}
    base.update(extra)
    return base


# --- baseline ----------------------------------------------------------------


def test_baseline_recorded_once_and_check_mode_writes_nothing(site, module_runner):
    manifest, sms, root = site
    before = lib.snapshot(root)
    checked = module_runner(BASELINE, args(manifest, sms), check_mode=True)
    assert checked["changed"] is True and checked["recorded"] is False
    assert checked["baseline"]["copy_list_version"] == 41
    assert lib.snapshot(root) == before

    first = module_runner(BASELINE, args(manifest, sms))
    assert first["changed"] is True
    path = first["baseline_path"]
    assert os.path.dirname(path) == os.path.join(sms, "Hotfix", "Q216552")
    assert os.path.basename(path).startswith("copylist-baseline-") and len(os.path.basename(path)) == len(
        "copylist-baseline-"
    ) + 12 + len(".json")
    with open(path) as handle:
        recorded = json.load(handle)
    assert recorded["copy_list_version"] == 41 and recorded["files_already_current"] is False

    # staging moves the copy lists on; a re-run must not move the baseline
    bump(sms, 42)
    replicate(sms, manifest)
    after_first = lib.snapshot(root)
    second = module_runner(BASELINE, args(manifest, sms))
    assert second["changed"] is False
    assert second["baseline"]["copy_list_version"] == 41
    assert lib.snapshot(root) == after_first


def test_baseline_notes_files_already_current(site, module_runner):
    manifest, sms, _root = site
    replicate(sms, manifest)
    result = module_runner(BASELINE, args(manifest, sms))
    assert result["baseline"]["files_already_current"] is True
    # no bump will ever come: convergence must not wait for one
    probe = module_runner(WAIT, args(manifest, sms))
    assert probe["converged"] is True and probe["copy_list"]["required"] is False


# --- converged -----------------------------------------------------------------


def test_converged_needs_files_and_bump(site, module_runner, clock):
    manifest, sms, root = site
    module_runner(BASELINE, args(manifest, sms))
    replicate(sms, manifest)
    only_files = module_runner(WAIT, args(manifest, sms))
    assert only_files["converged"] is False and only_files.get("failed") is not True
    assert all(item["ok"] for item in only_files["files"])
    assert only_files["copy_list"] == {
        "baseline": 41,
        "current": 41,
        "required": True,
        "ok": False,
        "files": {"Cl_nt.txt": 41, "Cl_win95.txt": 41},
        "note": only_files["copy_list"]["note"],
    }
    assert only_files["missing"] == [
        "copy lists carry CopyListVersion 41 (Cl_nt.txt=41, Cl_win95.txt=41), need > 41 (seen before staging)"
    ]

    bump(sms, 42)
    before = lib.snapshot(root)
    done = module_runner(WAIT, args(manifest, sms, timeout=5))
    assert done["converged"] is True and done["changed"] is False and done["missing"] == []
    assert done["copy_list"]["current"] == 42 and done["copy_list"]["ok"] is True
    # an already converged server: the first poll returns, without a single sleep
    assert done["polls"] == 1 and clock.sleeps == []
    for item in done["files"]:
        assert lib.sha(open(item["path"], "rb").read()) == item["expected_sha256"] == item["found_sha256"]
    assert lib.snapshot(root) == before


def test_every_copy_list_must_be_bumped(site, module_runner):
    manifest, sms, _root = site
    module_runner(BASELINE, args(manifest, sms))
    replicate(sms, manifest)
    lib.write(rel(sms, "Cl_nt.txt"), b"[Copy List]\r\nCopyListVersion=42\r\n")
    result = module_runner(WAIT, args(manifest, sms))
    assert result["converged"] is False
    assert result["copy_list"]["files"] == {"Cl_nt.txt": 42, "Cl_win95.txt": 41}


def test_no_baseline_means_bump_unknown(site, module_runner):
    manifest, sms, _root = site
    replicate(sms, manifest)
    result = module_runner(WAIT, args(manifest, sms))
    assert result["converged"] is True
    assert result["copy_list"]["ok"] is None and result["copy_list"]["required"] is False
    assert "no baseline" in result["copy_list"]["note"]


def test_timeout_fails_naming_every_stale_file(site, module_runner, clock):
    manifest, sms, root = site
    module_runner(BASELINE, args(manifest, sms))
    # one file replicated, with its on-disk name in upper case
    os.rename(rel(sms, "X86.bin", "Smsrun32.exe"), rel(sms, "X86.bin", "SMSRUN32.EXE"))
    payload = manifest_files(manifest)["x86"][0][1]
    shutil.copyfile(payload, rel(sms, "X86.bin", "SMSRUN32.EXE"))
    before = lib.snapshot(root)
    result = module_runner(WAIT, args(manifest, sms, timeout=1, sleep=0.25))
    assert result["failed"] is True and result["converged"] is False
    # polls at 0, 0.25, 0.5, 0.75 and 1.0 (the module's own clock): gives up at the timeout, not before
    assert result["polls"] == 5 and clock.sleeps == [0.25] * 4 and result["elapsed"] == 1.0
    assert result["msg"].startswith("logon server logon01: not converged after 1s: ")
    assert "Maintenance Manager" in result["msg"] and "sms_replication_mode=push" in result["msg"]
    stale = sorted(m.split(" ")[0] for m in result["missing"])
    assert stale == ["Alpha.bin/Smsrun32.exe", "Alpha.bin/Smssrv32.exe", "X86.bin/Smssrv32.exe", "copy"]
    assert "(unchanged since the baseline)" in result["missing"][0]
    ok = {(i["platform"], i["name"]): i["ok"] for i in result["files"]}
    assert ok[("x86", "Smsrun32.exe")] is True
    assert [i["path"] for i in result["files"] if i["name"] == "Smsrun32.exe" and i["platform"] == "x86"] == [
        rel(sms, "X86.bin", "SMSRUN32.EXE")
    ]
    for name in result["missing"]:
        assert name.split(" ")[0] in result["msg"]
    assert lib.snapshot(root) == before


def test_probe_with_timeout_zero_does_not_fail(site, module_runner):
    manifest, sms, _root = site
    result = module_runner(WAIT, args(manifest, sms))
    assert result["converged"] is False and "failed" not in result
    assert result["polls"] == 1 and len(result["missing"]) == 4


def test_fail_on_timeout_false_returns_instead(site, module_runner):
    manifest, sms, _root = site
    result = module_runner(WAIT, args(manifest, sms, timeout=1, sleep=0.3, fail_on_timeout=False))
    assert result["converged"] is False and "failed" not in result and result["elapsed"] >= 1


def test_polling_sees_a_change_at_the_next_poll(site, module_runner, clock):
    manifest, sms, _root = site
    module_runner(BASELINE, args(manifest, sms))

    def maintenance_pass():
        replicate(sms, manifest)
        bump(sms, 42)

    clock.at_sleep[3] = maintenance_pass  # the pass lands between the third and the fourth poll
    result = module_runner(WAIT, args(manifest, sms, timeout=30, sleep=0.2))
    assert result["converged"] is True and "failed" not in result
    assert result["polls"] == 4 and len(clock.sleeps) == 3
    assert result["copy_list"]["current"] == 42


def test_polling_sees_a_change_made_by_another_thread(site, module_runner):
    """The same with the real clock: the change lands while the module sleeps; it is seen at a later poll."""
    manifest, sms, _root = site
    module_runner(BASELINE, args(manifest, sms))
    done = threading.Event()

    def maintenance_pass():
        time.sleep(0.5)
        replicate(sms, manifest)
        bump(sms, 42)
        done.set()

    worker = threading.Thread(target=maintenance_pass)
    worker.start()
    try:
        result = module_runner(WAIT, args(manifest, sms, timeout=60, sleep=0.1))
    finally:
        worker.join()
    assert done.is_set() and result["converged"] is True and result["polls"] >= 2


def test_check_mode_checks_once_and_does_not_wait(site, module_runner, clock):
    manifest, sms, root = site
    before = lib.snapshot(root)
    result = module_runner(WAIT, args(manifest, sms, timeout=30), check_mode=True)
    assert result["converged"] is False and "failed" not in result
    assert result["polls"] == 1 and clock.sleeps == []
    assert lib.snapshot(root) == before


def test_expect_waits_for_given_files(site, module_runner):
    manifest, sms, _root = site
    originals = lib.original_files("x86")
    expect = {"x86": [{"name": "smsrun32.EXE", "sha256": lib.sha(originals["Smsrun32.exe"])}]}
    result = module_runner(WAIT, {"sms_root": sms, "expect": expect, "kb": "Q216552"})
    assert result["converged"] is True and result["state_dir"] == os.path.join(sms, "Hotfix", "Q216552")
    replicate(sms, manifest)
    result = module_runner(WAIT, {"sms_root": sms, "expect": expect, "kb": "Q216552"})
    assert result["converged"] is False


# --- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("module", [BASELINE, WAIT, PUSH])
def test_bad_input_refused_and_nothing_changed(site, module_runner, module, clock):
    manifest, sms, root = site
    before = lib.snapshot(root)

    missing = module_runner(module, args(os.path.join(str(root), "nope", "manifest.json"), sms))
    assert missing["failed"] is True and "nope" in missing["msg"] and "does not exist" in missing["msg"]

    unknown = module_runner(module, args(manifest, sms, platforms=["vax"]))
    assert unknown["failed"] is True and "'vax' is unknown" in unknown["msg"]

    shutil.rmtree(rel(sms, "Alpha.bin"))
    before_missing_dir = lib.snapshot(root)
    no_dir = module_runner(module, args(manifest, sms, **({"timeout": 30} if module == WAIT else {})))
    assert no_dir["failed"] is True and "Alpha.bin" in no_dir["msg"] and rel(sms) in no_dir["msg"]
    assert clock.sleeps == [], "refused before the first poll, without waiting"
    assert lib.snapshot(root) == before_missing_dir
    del before  # the folder was removed by the test itself


def test_unknown_expect_platform_and_bad_sha_refused(site, module_runner):
    """`expect` is checked once, on the controller; the module refuses what its argument spec does not type."""
    _manifest, sms, root = site
    before = lib.snapshot(root)
    controller = load_controller()
    for expect, said in (
        ({"vax": [{"name": "a.exe", "sha256": "0" * 64}]}, "'vax' is unknown"),
        ({"x86": [{"name": "..\\a.exe", "sha256": "0" * 64}]}, "not a plain name"),
        ({"x86": [{"name": "a.exe", "sha256": "0" * 63}]}, "not 64 hex digits"),
        ({"x86": [{"name": "a.exe", "sha256": "0" * 64}, {"name": "A.EXE", "sha256": "1" * 64}]}, "listed twice"),
    ):
        with pytest.raises(Exception) as info:
            controller.resolve_manifest({"sms_root": sms, "kb": "Q216552", "expect": expect})
        assert said in str(info.value) and "checked on the controller" in str(info.value)
    upper = controller.resolve_manifest({"expect": {"X86": [{"name": "a.exe", "sha256": "AB" * 32}]}})
    assert upper["expect"] == {"x86": [{"name": "a.exe", "sha256": "ab" * 32}]}
    result = module_runner(
        "sms_logon_wait", {"sms_root": sms, "kb": "Q216552", "expect": {"vax": [{"name": "a.exe", "sha256": "0" * 64}]}}
    )
    assert result["failed"] is True and "vax" in result["msg"]
    result = module_runner(
        "sms_logon_wait", {"sms_root": sms, "expect": {"x86": [{"name": "a.exe", "sha256": "0" * 64}]}}
    )
    assert result["failed"] is True and "kb" in result["msg"]
    assert lib.snapshot(root) == before


@pytest.mark.parametrize("job, handler", [("baseline", "run_baseline"), ("wait", "run_converged")])
def test_a_job_without_expected_files_is_refused_by_name(site, job, handler):
    """The modules require manifest or expect for these jobs; called without, the job says so (not a TypeError)."""
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_logon

    _manifest, sms, root = site
    before = lib.snapshot(root)
    params = {
        "sms_root": sms,
        "server_name": "logon01",
        "kb": "Q216552",
        "manifest": None,
        "expect": None,
        "platforms": None,
        "state_dir": None,
        "timeout": 0,
        "sleep": 1,
        "require_copy_list_bump": True,
    }
    module = type("Module", (), {"params": params, "check_mode": False})()
    ctx = sms_logon.Context(module, job)
    with pytest.raises(sms_logon.ReplicationError) as info:
        getattr(sms_logon, handler)(ctx, None)
    assert str(info.value) == "the %s job needs the expected files: give manifest or expect" % job
    assert lib.snapshot(root) == before


def test_not_a_logon_server_refused(tmp_path, module_runner):
    manifest = lib.make_hotfix(tmp_path)
    sms = lib.make_logon(tmp_path)
    for name in ("Cl_nt.txt", "Cl_win95.txt"):
        os.unlink(rel(sms, name))
    result = module_runner(WAIT, args(manifest, sms))
    assert result["failed"] is True and "none of the copy lists" in result["msg"]
    result = module_runner(WAIT, args(manifest, os.path.join(str(tmp_path), "nothing", "SMS")))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_push_refuses_damaged_payload_and_changes_nothing(site, module_runner):
    manifest, sms, root = site
    payload = manifest_files(manifest)["alpha"][1][1]
    with open(payload, "r+b") as handle:
        handle.write(b"X")
    before = lib.snapshot(root)
    result = module_runner(PUSH, args(manifest, sms))
    assert result["failed"] is True and "damaged" in result["msg"]
    assert lib.snapshot(root) == before


# --- push and restore ----------------------------------------------------------


def test_push_backs_up_then_restore_is_byte_identical(site, module_runner):
    manifest, sms, root = site
    os.rename(rel(sms, "X86.bin", "Smsrun32.exe"), rel(sms, "X86.bin", "SMSRUN32.EXE"))
    original = lib.snapshot(rel(sms))
    before = lib.snapshot(root)

    checked = module_runner(PUSH, args(manifest, sms), check_mode=True, diff=True)
    assert checked["changed"] is True and len(checked["pushed"]) == 4
    assert "X86.bin/SMSRUN32.EXE" in checked["diff"]["before"]
    assert lib.snapshot(root) == before

    pushed = module_runner(PUSH, args(manifest, sms), diff=True)
    assert pushed["changed"] is True and pushed["converged"] is True and pushed["copy_list_bumped"] is False
    assert sorted(pushed["pushed"]) == sorted(
        ["X86.bin/SMSRUN32.EXE", "X86.bin/Smssrv32.exe", "Alpha.bin/Smsrun32.exe", "Alpha.bin/Smssrv32.exe"]
    )
    files = manifest_files(manifest)
    for platform, entries in files.items():
        for name, _payload, digest in entries:
            on_disk = [e for e in os.listdir(rel(sms, lib.DIRS[platform])) if e.lower() == name.lower()]
            assert len(on_disk) == 1
            path = rel(sms, lib.DIRS[platform], on_disk[0])
            assert lib.sha(open(path, "rb").read()) == digest
    assert os.path.exists(rel(sms, "X86.bin", "SMSRUN32.EXE"))
    assert not os.path.exists(rel(sms, "X86.bin", "Smsrun32.exe")) or os.path.samefile(
        rel(sms, "X86.bin", "Smsrun32.exe"), rel(sms, "X86.bin", "SMSRUN32.EXE")
    )
    # manifest date kept
    assert int(os.stat(rel(sms, "X86.bin", "SMSRUN32.EXE")).st_mtime) == 916356060
    # originals backed up in the state folder
    backup = os.path.join(sms, "Hotfix", "Q216552", "push", "backup", "X86.bin", "SMSRUN32.EXE")
    assert lib.sha(open(backup, "rb").read()) == lib.sha(lib.original_files("x86")["Smsrun32.exe"])
    # copy lists untouched
    assert lib.snapshot(rel(sms))["Cl_nt.txt"] == original["Cl_nt.txt"]

    after_push = lib.snapshot(root)
    again = module_runner(PUSH, args(manifest, sms))
    assert again["changed"] is False and again["pushed"] == []
    assert module_runner(PUSH, args(manifest, sms), check_mode=True)["changed"] is False
    assert lib.snapshot(root) == after_push

    # the push converges the files (no copy-list bump required of a push)
    probe = module_runner(WAIT, args(manifest, sms, require_copy_list_bump=False, timeout=2))
    assert probe["converged"] is True

    check_restore = module_runner(PUSH, args(manifest, sms, state="absent"), check_mode=True, diff=True)
    assert check_restore["changed"] is True and len(check_restore["restored"]) == 4
    assert lib.snapshot(root) == after_push

    restored = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert restored["changed"] is True
    assert lib.snapshot(rel(sms)) == original
    restored_again = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert restored_again["changed"] is False
    assert lib.snapshot(rel(sms)) == original


def test_push_of_a_new_file_is_removed_on_restore(site, module_runner):
    manifest, sms, _root = site
    os.unlink(rel(sms, "Alpha.bin", "Smssrv32.exe"))
    original = lib.snapshot(rel(sms))
    module_runner(PUSH, args(manifest, sms))
    assert os.path.exists(rel(sms, "Alpha.bin", "Smssrv32.exe"))
    module_runner(PUSH, {"sms_root": sms, "kb": "Q216552", "state": "absent"})
    assert lib.snapshot(rel(sms)) == original


def test_restore_refuses_a_damaged_backup(site, module_runner):
    manifest, sms, root = site
    module_runner(PUSH, args(manifest, sms))
    backup = os.path.join(sms, "Hotfix", "Q216552", "push", "backup", "X86.bin", "Smssrv32.exe")
    with open(backup, "r+b") as handle:
        handle.write(b"X")
    before = lib.snapshot(root)
    result = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert result["failed"] is True and backup in result["msg"] and "nothing was restored" in result["msg"]
    assert lib.snapshot(root) == before


def test_restore_without_push_changes_nothing(site, module_runner):
    manifest, sms, root = site
    before = lib.snapshot(root)
    result = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert result["changed"] is False and "nothing was pushed" in result["msg"]
    assert lib.snapshot(root) == before


def test_push_on_a_read_only_server_fails_cleanly(site, module_runner):
    manifest, sms, root = site
    folder = rel(sms, "X86.bin")
    before = lib.snapshot(root)
    if os.geteuid() == 0:
        # root ignores permissions: a real read-only filesystem holding the same files
        saved = {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
        try:
            for name, data in saved.items():
                lib.write(os.path.join(folder, name), data, lib.ORIGINAL_MTIME)
            subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
            inside_before = lib.snapshot(folder)
            result = module_runner(PUSH, args(manifest, sms, platforms=["x86"]))
            inside_after = lib.snapshot(folder)
        finally:
            subprocess.run(["umount", folder], check=True)
    else:
        os.chmod(folder, 0o555)
        try:
            inside_before = lib.snapshot(folder)
            result = module_runner(PUSH, args(manifest, sms, platforms=["x86"]))
            inside_after = lib.snapshot(folder)
        finally:
            os.chmod(folder, 0o755)
    assert result["failed"] is True and "cannot write in %s" % folder in result["msg"], result["msg"]
    assert "Nothing was changed" in result["msg"] and result["failed_path"] == folder
    assert inside_after == inside_before
    # refused before any change: not even a backup was written in the state folder
    assert lib.snapshot(root) == before
    assert not os.path.exists(os.path.join(sms, "Hotfix"))


def test_push_with_a_read_only_state_folder_is_refused(site, module_runner, tmp_path):
    manifest, sms, root = site
    parent = tmp_path / "state"
    parent.mkdir()
    before = lib.snapshot(root)
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(parent), str(parent)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(parent)], check=True)
            result = module_runner(PUSH, args(manifest, sms, state_dir=str(parent / "Q216552")))
        finally:
            subprocess.run(["umount", str(parent)], check=True)
    else:
        os.chmod(str(parent), 0o555)
        try:
            result = module_runner(PUSH, args(manifest, sms, state_dir=str(parent / "Q216552")))
        finally:
            os.chmod(str(parent), 0o755)
    assert result["failed"] is True and "cannot write in %s" % parent in result["msg"], result["msg"]
    assert lib.snapshot(root) == before and os.listdir(str(parent)) == []


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB filesystem: a real tmpfs as root, else a plain folder (space is then simulated)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    yield str(mnt)
    if os.geteuid() == 0:
        subprocess.run(["umount", str(mnt)], check=False)


def test_push_without_enough_free_space_is_refused(tmp_path, tiny_fs, module_runner, monkeypatch):
    manifest = lib.make_hotfix(tmp_path)
    sms = lib.make_logon(tiny_fs)
    if os.geteuid() == 0:
        st = os.statvfs(tiny_fs)
        lib.write(os.path.join(tiny_fs, "filler.bin"), b"\0" * ((st.f_bavail - 2) * st.f_frsize))
    else:
        real = os.fstatvfs

        class Small:
            def __init__(self, st):
                self.f_frsize, self.f_bavail = st.f_frsize, 2

        monkeypatch.setattr(os, "fstatvfs", lambda fd: Small(real(fd)))
    before = lib.snapshot(tiny_fs)
    result = module_runner(PUSH, args(manifest, sms))
    assert result["failed"] is True and "not enough free space" in result["msg"], result["msg"]
    assert "need" in result and "have" in result and result["need"] > result["have"]
    assert "Nothing was changed" in result["msg"]
    assert lib.snapshot(tiny_fs) == before
    assert not os.path.exists(os.path.join(sms, "Hotfix"))


def _enospc_on(monkeypatch, count):
    """Make the `count`-th copy into Logon.srv fail with ENOSPC, as a full disk would."""
    return lib.enospc_on(monkeypatch, "Logon.srv", count)


def test_push_failing_on_the_second_file_leaves_the_server_byte_identical(site, module_runner, monkeypatch):
    manifest, sms, root = site
    os.unlink(rel(sms, "X86.bin", "Smssrv32.exe"))  # the push creates one file: that one must go again
    before = lib.snapshot(root)
    calls = _enospc_on(monkeypatch, 2)
    result = module_runner(PUSH, args(manifest, sms))
    assert calls["n"] == 2
    assert result["failed"] is True and "no space left" in result["msg"], result["msg"]
    assert "put back" in result["msg"] and len(result["restored"]) == 1
    assert lib.snapshot(root) == before, "the logon server must end byte-identical"
    assert not os.path.exists(os.path.join(sms, "Hotfix")), "the backups of a failed push are removed"


def test_push_failing_on_a_second_push_keeps_the_first_pushs_backups(site, module_runner, monkeypatch):
    manifest, sms, root = site
    module_runner(PUSH, args(manifest, sms, platforms=["x86"]))
    journal = os.path.join(sms, "Hotfix", "Q216552", "push", "journal.json")
    os.utime(journal, (lib.ORIGINAL_MTIME, lib.ORIGINAL_MTIME))  # a rewrite of the journal would show
    before = lib.snapshot(root)
    _enospc_on(monkeypatch, 2)
    result = module_runner(PUSH, args(manifest, sms))
    assert result["failed"] is True and "put back" in result["msg"]
    assert lib.snapshot(root) == before
    with open(journal) as handle:
        assert sorted(json.load(handle)["entries"]) == ["X86.bin/smsrun32.exe", "X86.bin/smssrv32.exe"]


SERVICE_PACK_MTIME = 946684800  # 2000-01-01T00:00:00Z


def test_push_restore_service_pack_push_restore_keeps_the_newer_file(site, module_runner):
    manifest, sms, root = site
    state = os.path.join(sms, "Hotfix", "Q216552", "push")
    target = rel(sms, "X86.bin", "Smsrun32.exe")
    assert module_runner(PUSH, args(manifest, sms))["changed"] is True

    checked = module_runner(PUSH, args(manifest, sms, state="absent"), check_mode=True)
    assert checked["changed"] is True and os.path.isfile(os.path.join(state, "journal.json"))

    restored = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert restored["changed"] is True and len(restored["restored"]) == 4
    assert open(target, "rb").read() == lib.original_files("x86")["Smsrun32.exe"]
    assert not os.path.exists(os.path.join(state, "journal.json"))
    assert not os.path.exists(os.path.join(state, "backup"))
    assert restored["retired"].startswith(os.path.join(state, "retired") + os.sep)
    assert os.path.isfile(os.path.join(restored["retired"], "journal.json"))

    after = lib.snapshot(root)
    again = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert again["changed"] is False and again["restored"] == []
    assert lib.snapshot(root) == after

    # a service pack reaches the logon server
    service_pack = lib.blob("service pack 3:x86:Smsrun32.exe", 5000)
    lib.write(target, service_pack, SERVICE_PACK_MTIME)
    before_second = lib.snapshot(rel(sms))
    assert module_runner(PUSH, args(manifest, sms))["changed"] is True
    assert module_runner(PUSH, args(manifest, sms, state="absent"))["changed"] is True
    assert open(target, "rb").read() == service_pack, "the restore must put back the newer file"
    assert lib.snapshot(rel(sms)) == before_second
    assert len(os.listdir(os.path.join(state, "retired"))) == 2


def test_restore_of_some_platforms_retires_only_their_entries(site, module_runner):
    manifest, sms, _root = site
    original = lib.snapshot(rel(sms))
    state = os.path.join(sms, "Hotfix", "Q216552", "push")
    module_runner(PUSH, args(manifest, sms))
    x86 = module_runner(PUSH, {"sms_root": sms, "kb": "Q216552", "state": "absent", "platforms": ["x86"]})
    assert x86["changed"] is True and len(x86["restored"]) == 2
    with open(os.path.join(state, "journal.json")) as handle:
        assert sorted(json.load(handle)["entries"]) == ["Alpha.bin/smsrun32.exe", "Alpha.bin/smssrv32.exe"]
    again = module_runner(PUSH, {"sms_root": sms, "kb": "Q216552", "state": "absent", "platforms": ["x86"]})
    assert again["changed"] is False
    rest = module_runner(PUSH, {"sms_root": sms, "kb": "Q216552", "state": "absent"})
    assert rest["changed"] is True and len(rest["restored"]) == 2
    assert lib.snapshot(rel(sms)) == original
    assert not os.path.exists(os.path.join(state, "journal.json"))


# --- reset ---------------------------------------------------------------------------


def test_reset_removes_the_baselines(site, module_runner):
    manifest, sms, root = site
    module_runner(BASELINE, args(manifest, sms))
    state_dir = os.path.join(sms, "Hotfix", "Q216552")
    assert len(os.listdir(state_dir)) == 1
    before = lib.snapshot(root)
    checked = module_runner(BASELINE, {"sms_root": sms, "kb": "Q216552", "state": "absent"}, check_mode=True)
    assert checked["changed"] is True and lib.snapshot(root) == before
    result = module_runner(BASELINE, {"sms_root": sms, "kb": "Q216552", "state": "absent"})
    assert result["changed"] is True and os.listdir(state_dir) == []
    again = module_runner(BASELINE, {"sms_root": sms, "kb": "Q216552", "state": "absent"})
    assert again["changed"] is False


# --- the action plugin's slicing -----------------------------------------------------


def load_controller():
    from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_logon_controller as sms_logon_controller

    return sms_logon_controller


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def stale_result():
    return {
        "converged": False,
        "polls": 30,
        "missing": ["X86.bin/Smsrun32.exe has sha256 ab.., expects cd.."],
        "files": [
            {"platform": "x86", "name": "Smsrun32.exe", "found_sha256": "ab", "ok": False},
            {"platform": "x86", "name": "Smssrv32.exe", "found_sha256": "cd", "ok": True},
        ],
        "copy_list": {"baseline": 41, "current": 41, "required": True, "ok": False},
    }


def test_action_prints_one_line_per_slice_then_converges():
    action = load_controller()
    clock = FakeClock()
    calls, lines = [], []

    def run_slice(seconds):
        calls.append(seconds)
        clock.now += seconds if len(calls) < 3 else 4.4
        if len(calls) < 3:
            return stale_result()
        return {"converged": True, "polls": 5, "files": [], "copy_list": {}}

    result = action.wait_in_slices(run_slice, "logon02", 600, 30, lines.append, clock=clock)
    # the first line within a few seconds, then one per interval
    assert calls == [5, 30, 30]
    assert lines == [
        "sms_logon_wait: logon02 waiting 5s/600s: X86.bin/Smsrun32.exe old, copy list 41 (needs > 41)",
        "sms_logon_wait: logon02 waiting 35s/600s: X86.bin/Smsrun32.exe old, copy list 41 (needs > 41)",
        "sms_logon_wait: logon02 converged after 39.4s",
    ]
    assert result["elapsed"] == 39.4 and result["slices"] == 3 and "failed" not in result


def test_action_times_out_with_the_operator_message():
    action = load_controller()
    clock = FakeClock()
    calls, lines = [], []

    def run_slice(seconds):
        calls.append(seconds)
        clock.now += seconds
        return stale_result()

    result = action.wait_in_slices(run_slice, "logon02", 70, 30, lines.append, clock=clock)
    assert calls == [5, 30, 30, 5]
    assert len(lines) == 3
    assert result["failed"] is True and result["elapsed"] == 70
    assert result["msg"] == (
        "logon server logon02: not converged after 70s: X86.bin/Smsrun32.exe has sha256 ab.., expects cd..; "
        "check that the Maintenance Manager runs on the site server (SMS Service Manager), trigger a pass, "
        "or use push mode (sms_replication_mode=push)"
    )


def test_action_quiet_when_converged_at_once_and_passes_failures_through():
    action = load_controller()
    lines = []
    result = action.wait_in_slices(
        lambda s: {"converged": True, "polls": 1}, "logon01", 600, 30, lines.append, clock=FakeClock()
    )
    assert lines == [] and result["slices"] == 1
    failed = action.wait_in_slices(
        lambda s: {"failed": True, "msg": "no Logon.srv"}, "logon01", 600, 30, lines.append, clock=FakeClock()
    )
    assert failed["failed"] is True and failed["msg"] == "no Logon.srv" and lines == []


def test_action_reads_the_manifest_on_the_controller(site, module_runner):
    manifest, sms, _root = site
    action = load_controller()
    resolved = action.resolve_manifest({"sms_root": sms, "manifest": manifest, "timeout": 5})
    assert "manifest" not in resolved and resolved["kb"] == "Q216552"
    assert sorted(resolved["expect"]) == ["alpha", "x86"]
    # the module reaches the same verdict and the same baseline either way
    by_path = module_runner(BASELINE, args(manifest, sms))
    by_expect = module_runner(BASELINE, {k: v for k, v in resolved.items() if k != "timeout"})
    assert by_expect["baseline_path"] == by_path["baseline_path"] and by_expect["changed"] is False
    # a push keeps the path (the payload is read on the server); so does a path the controller lacks
    assert action.resolve_manifest({"manifest": manifest}, "push") == {"manifest": manifest}
    # an undo or a reset needs only the KB
    assert action.resolve_manifest({"manifest": manifest, "state": "absent"}, "restore") == {
        "state": "absent",
        "kb": "Q216552",
    }
    assert action.resolve_manifest({"manifest": "/nonexistent/manifest.json"}) == {
        "manifest": "/nonexistent/manifest.json"
    }
    # an explicit expect (rollback) wins over the manifest's files
    expect = {"x86": [{"name": "Smsrun32.exe", "sha256": "0" * 64}]}
    assert action.resolve_manifest({"manifest": manifest, "expect": expect})["expect"] == expect


def test_action_refuses_a_broken_manifest(tmp_path):
    action = load_controller()
    broken = tmp_path / "manifest.json"
    broken.write_text('{"kb": "Q216552"}')
    with pytest.raises(Exception) as info:
        action.resolve_manifest({"manifest": str(broken)})
    assert str(broken) in str(info.value) and "sms_hotfix_manifest" in str(info.value)


# --- issue 23: nothing lost, for real -------------------------------------------------


def push_state(sms, *parts):
    return os.path.join(sms, "Hotfix", "Q216552", "push", *parts)


def test_a_push_whose_put_back_fails_keeps_the_backup_and_a_restore_finishes_it(site, module_runner, monkeypatch):
    manifest, sms, root = site
    before = lib.snapshot(rel(sms))
    lib.disk_fills_at(monkeypatch, "Logon.srv", 2)  # full after the first file is replaced
    result = module_runner(PUSH, args(manifest, sms))
    assert result["failed"] is True and "could not all be put back" in result["msg"], result["msg"]
    assert len(result["backups_kept"]) == 1
    backup = result["backups_kept"][0]
    assert backup in result["msg"] and os.path.exists(backup)
    with open(push_state(sms, "journal.json")) as handle:
        entries = json.load(handle)["entries"]
    assert [e["sha256"] for e in entries.values() if e.get("backup")] == [lib.sha256_file(backup)]
    monkeypatch.undo()
    restored = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert not restored.get("failed"), restored
    assert {k: v[:2] for k, v in lib.snapshot(rel(sms)).items()} == {k: v[:2] for k, v in before.items()}


def test_a_push_refuses_a_served_file_with_a_second_hard_link(site, module_runner, tmp_path):
    manifest, sms, root = site
    served = rel(sms, "X86.bin", "Smsrun32.exe")
    os.link(served, str(tmp_path / "outside.exe"))
    before = lib.snapshot(root)
    result = module_runner(PUSH, args(manifest, sms))
    assert result["failed"] is True and served in result["msg"] and "2 hard links" in result["msg"], result
    assert lib.snapshot(root) == before


def test_a_push_backup_keeps_the_mode_of_a_0600_original(site, module_runner):
    manifest, sms, root = site
    os.chmod(rel(sms, "X86.bin", "Smsrun32.exe"), 0o600)
    assert not module_runner(PUSH, args(manifest, sms)).get("failed")
    assert os.stat(push_state(sms, "backup", "X86.bin", "Smsrun32.exe")).st_mode & 0o777 == 0o600
    os.unlink(rel(sms, "X86.bin", "Smsrun32.exe"))
    assert not module_runner(PUSH, args(manifest, sms, state="absent")).get("failed")
    assert os.stat(rel(sms, "X86.bin", "Smsrun32.exe")).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("where", [("backup", "X86.bin"), ()])
def test_stale_temporary_files_in_the_push_state_folder_are_removed(site, module_runner, where):
    manifest, sms, root = site
    assert not module_runner(PUSH, args(manifest, sms, platforms=["x86"])).get("failed")
    stale = push_state(sms, *(where + (".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1),)))
    lib.write(stale, b"half a backup")
    result = module_runner(PUSH, args(manifest, sms))
    assert not result.get("failed") and stale in result["stale_temporary_files"], result
    assert not os.path.exists(stale)


def test_a_restore_removes_stale_temporary_files_of_a_killed_push(site, module_runner):
    manifest, sms, root = site
    assert not module_runner(PUSH, args(manifest, sms)).get("failed")
    stale = [
        push_state(sms, "backup", "X86.bin", ".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1)),
        rel(sms, "X86.bin", ".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1)),
    ]
    for path in stale:
        lib.write(path, b"half a file")
    result = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert not result.get("failed") and sorted(result["stale_temporary_files"]) == sorted(stale), result
    assert not any(os.path.exists(p) for p in stale)


# --- issue 26: a module per job, each says what it did; the old name still works ------------------


def test_every_module_returns_its_status_and_state(site, module_runner):
    manifest, sms, _root = site
    kb = {"sms_root": sms, "kb": "Q216552", "server_name": "logon01"}
    steps = [
        (BASELINE, args(manifest, sms), True, ("would_record", "present")),
        (BASELINE, args(manifest, sms), False, ("recorded", "present")),
        (BASELINE, args(manifest, sms), False, ("kept", "present")),
        (WAIT, args(manifest, sms), False, ("lagging", "converged")),
        (PUSH, args(manifest, sms), True, ("would_push", "present")),
        (PUSH, args(manifest, sms), False, ("pushed", "present")),
        (PUSH, args(manifest, sms), False, ("unchanged", "present")),
        (WAIT, args(manifest, sms, require_copy_list_bump=False), False, ("converged", "converged")),
        (PUSH, dict(kb, state="absent"), True, ("would_restore", "absent")),
        (PUSH, dict(kb, state="absent"), False, ("restored", "absent")),
        (PUSH, dict(kb, state="absent"), False, ("unchanged", "absent")),
        (BASELINE, dict(kb, state="absent"), True, ("would_remove", "absent")),
        (BASELINE, dict(kb, state="absent"), False, ("removed", "absent")),
        (BASELINE, dict(kb, state="absent"), False, ("unchanged", "absent")),
    ]
    for module, module_args, check_mode, expected in steps:
        result = module_runner(module, module_args, check_mode=check_mode)
        assert not result.get("failed"), (module, result["msg"])
        assert (result["status"], result["state"]) == expected, (module, module_args, check_mode)
    shutil.rmtree(rel(sms, "Alpha.bin"))
    failed = module_runner(PUSH, args(manifest, sms))
    assert failed["failed"] is True and (failed["status"], failed["state"]) == ("failed", "present")
    os.symlink(rel(sms, "X86.bin"), rel(sms, "Alpha.bin"))
    refused = module_runner(WAIT, args(manifest, sms))
    assert refused["failed"] is True and (refused["status"], refused["state"]) == ("refused", "converged")


OLD_STATES = [  # old state, the module and arguments that replaced it
    ("baseline", BASELINE, {}),
    ("converged", WAIT, {}),
    ("pushed", PUSH, {}),
    ("restored", PUSH, {"state": "absent"}),
    ("reset", BASELINE, {"state": "absent"}),
]


def comparable(result):
    return {k: v for k, v in result.items() if k not in ("elapsed", "state", "baseline", "invocation", "msg")}


def test_the_old_name_runs_each_state_as_the_new_module_does(site, module_runner):
    """sms_replication dispatches each old state to the new code: same changes, same results."""
    manifest, sms, root = site
    for state, module, extra in OLD_STATES:
        before = lib.snapshot(root)
        old = module_runner(MODULE, args(manifest, sms, state=state), check_mode=True, diff=True)
        new = module_runner(module, args(manifest, sms, **extra), check_mode=True, diff=True)
        assert lib.snapshot(root) == before
        assert old["state"] == state
        assert new["state"] == extra.get("state", "converged" if module == WAIT else "present")
        assert comparable(old) == comparable(new), state
        # the real run changes the server as the new module would
        done = module_runner(MODULE, args(manifest, sms, state=state))
        assert not done.get("failed") and done["changed"] == old["changed"], (state, done["msg"])
        again = module_runner(module, args(manifest, sms, **extra))
        assert again["changed"] is False, (state, again["msg"])


def test_the_old_name_is_routed_with_a_deprecation(site, tmp_path):
    """A playbook task with sms.hotfix.sms_replication still runs, and Ansible warns that it goes away."""
    manifest, sms, _root = site
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        import yaml

        runtime = yaml.safe_load(handle)
    routing = runtime["plugin_routing"]["modules"]["sms_replication"]["deprecation"]
    assert routing["removal_version"] == "2.0.0"
    for name in (WAIT, BASELINE, PUSH, MODULE):
        assert name in runtime["action_groups"]["smb"]
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "old",
                    "sms.hotfix.sms_replication": {"sms_root": sms, "manifest": manifest, "state": "baseline"},
                    "register": "old",
                },
                {
                    "name": "new",
                    "sms.hotfix.sms_copy_list_baseline": {"sms_root": sms, "manifest": manifest},
                    "register": "new",
                },
                {
                    "name": "same",
                    "ansible.builtin.assert": {
                        "that": [
                            "old.status == 'recorded' and old.state == 'baseline'",
                            "new.status == 'kept' and new.state == 'present'",
                            "old.baseline_path == new.baseline_path",
                        ]
                    },
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        SMS_REPORT_DISABLE="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TMP=str(tmp_path / "local-tmp"),
    )
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(os.sys.executable), "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % os.sys.executable,
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    flat = " ".join(out.split())
    assert "[DEPRECATION WARNING]: sms.hotfix.sms_replication has been deprecated." in flat, out
    assert "sms.hotfix.sms_logon_wait (state=converged)" in flat, out
    assert "will be removed from collection 'sms.hotfix' version 2.0.0" in flat, out
    assert "sms_copy_list_baseline has been deprecated" not in flat, out


def test_a_restore_failing_half_way_leaves_the_push_in_place_and_a_rerun_finishes(site, module_runner, monkeypatch):
    """The undo goes through the replacement engine too: a failure puts back what it had changed."""
    manifest, sms, root = site
    original = lib.snapshot(rel(sms))
    module_runner(PUSH, args(manifest, sms))
    pushed = lib.snapshot(rel(sms))
    assert pushed != original
    calls = _enospc_on(monkeypatch, 2)
    result = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert calls["n"] >= 2
    assert result["failed"] is True and "no space left" in result["msg"].lower(), result["msg"]
    assert "put back as the push left them" in result["msg"] and "run the restore again" in result["msg"]
    assert lib.snapshot(rel(sms)) == pushed, "a failed restore leaves the server as the push left it"
    assert os.path.exists(push_state(sms, "journal.json")), "the push journal is kept"
    monkeypatch.undo()
    again = module_runner(PUSH, args(manifest, sms, state="absent"))
    assert again["status"] == "restored" and lib.snapshot(rel(sms)) == original
    del root
