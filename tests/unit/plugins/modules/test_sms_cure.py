"""sms_client_upgrade's cure (sms_cure): the restart after the upgrade and the watch of SMSRUN32.

Same harness as test_sms_client_upgrade: a client and a logon server in tmp
dirs, SMSRUN32 stand-ins that are real processes of ours in the real process
table. "The old binary under IE 4.01 setup" is a start command that starts
two instances (the KB's symptom); the hotfix's is one that starts one.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

import sms_testlib as lab
from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the upgrade's harness, beside this file
from test_sms_client_upgrade import (  # noqa: E402,F401  # pylint: disable=unused-import,wrong-import-position
    CHILD,
    MODULE,
    Site,
    assert_upgraded,
    image,
    site,
    smsrun,
    wait_for,
)

# Starts `count` detached SMSRUN32 stand-ins of a mode and returns, like `net start`.
MULTI_LAUNCHER = (
    "import subprocess, sys\n"
    "for _n in range(int(sys.argv[4])):\n"
    "    subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], sys.argv[3]], stdin=subprocess.DEVNULL,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"
)


def launch(drive, mode="idle", count=1):
    return [sys.executable, "-c", MULTI_LAUNCHER, CHILD, mode, image(drive), str(count)]


def cmd(code):
    return [sys.executable, "-c", code]


def marker_service(tmp_path, fail_start=False):
    """A client service stand-in: a state file; start fails when asked."""
    state = str(tmp_path / "service.state")
    start = "import sys; open(%r, 'w').write('running')" % state
    if fail_start:
        start = "import sys; sys.stderr.write('Smssrv32 failed to start: error 1067'); sys.exit(1)"
    return dict(
        service_stop_argv=cmd("open(%r, 'w').write('stopped')" % state),
        service_start_argv=cmd(start),
        service_status_argv=cmd("import sys; sys.exit(0 if open(%r).read() == 'running' else 3)" % state),
    )


def instances(drive):
    return sms_proc.list_processes("SMSRUN32", scope="drive", drive_root=drive)


def test_the_hotfix_verifies_healthy_after_the_service_restart(site, smsrun, tmp_path, module_runner):
    smsrun.drives.add(site.client)
    result = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1.0,
            verify_interval=0.25,
            **marker_service(tmp_path),
        ),
    )
    assert result.get("failed") is not True and result["status"] == "upgraded", result
    assert result["state"] == "present"
    assert result["restart"] == {"how": "service", "done": True, "service": "the client service"}
    verify = result["verify"]
    assert verify["result"] == "healthy" and verify["instances"] == 1 and verify["service"] == "running", verify
    assert verify["elapsed"] >= 1.0 and verify["looks"] >= 3 and verify["highest_cpu"] < 90, verify
    assert "verified healthy" in result["msg"] and result["reboot_required"] is False
    assert (tmp_path / "service.state").read_text() == "running"
    assert len(wait_for(lambda: instances(site.client))) == 1
    assert_upgraded(site)


def test_the_old_binary_hanging_again_fails_verification_and_names_the_client(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    # the binary now installed still hangs under IE 4.01's per-user setup: two instances
    result = module_runner(
        MODULE, site.args(smsrun_argv=launch(site.client, count=2), verify_seconds=5.0, verify_interval=0.25)
    )
    assert result["failed"] is True and result["status"] == "verify_failed", result
    assert result["changed"] is True
    verify = result["verify"]
    assert verify["result"] == "hung" and verify["instances"] == 2, verify
    assert verify["elapsed"] < 4.0, verify  # the first unhealthy look ends the watch
    assert result["msg"].startswith("client01: ") and "the cure did not hold: 2 instances of SMSRUN32" in result["msg"]
    assert len(instances(site.client)) == 2  # left as found, for the operator (or the rollback) to see


def test_one_instance_above_the_threshold_during_the_watch_is_hung(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    result = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client, mode="busy"), verify_seconds=3.0, verify_interval=0.3, hung_cpu_threshold=5
        ),
    )
    assert result["status"] == "verify_failed" and result["verify"]["result"] == "hung", result
    assert result["verify"]["instances"] == 1 and result["verify"]["highest_cpu"] > 5, result
    assert "above the hung threshold of 5 %" in result["msg"]


def test_a_client_service_that_fails_to_start_fails_the_client_by_name(site, smsrun, tmp_path, module_runner):
    smsrun.drives.add(site.client)
    result = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1,
            **marker_service(tmp_path, fail_start=True),
        ),
    )
    assert result["failed"] is True and result["status"] == "restart_failed", result
    assert result["msg"].startswith("client01: ") and "the client service failed to start" in result["msg"]
    assert "error 1067" in result["restart"]["error"] and result["restart"]["done"] is False
    assert "verify" not in result
    assert_upgraded(site)  # the files stay (a rollback, if asked, puts them back)


def test_restart_none_reports_a_reboot_pending_with_the_service_file(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    result = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=0.5, verify_interval=0.25))
    assert result["status"] == "upgraded" and result["reboot_required"] is True, result
    assert result["restart"]["how"] == "none" and result["restart"]["pending"] == ["Smssrv32.exe"], result
    assert "reboot pending" in result["restart"]["note"] and "reboot pending (restart=none)" in result["msg"]
    assert result["verify"]["result"] == "healthy"


def test_restart_reboot_asks_for_the_reboot_and_watches_after_it(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), restart="reboot", verify_seconds=1))
    assert first["status"] == "upgraded" and first["restart"]["needed"] is True, first
    assert first["verify"] == {"result": "not_watched", "reason": "watched after the reboot"}
    assert instances(site.client) == []  # nothing started: the reboot does that
    subprocess.run(launch(site.client), check=True)  # the boot starts SMSRUN32
    after = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="none",
            rebooted=True,
            verify_when="always",
            verify_seconds=0.5,
            verify_interval=0.25,
        ),
    )
    assert after["status"] == "verified" and after["changed"] is False, after
    assert after["restart"] == {"how": "reboot", "done": True} and after["verify"]["instances"] == 1


def test_an_up_to_date_client_is_not_watched_again(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    assert module_runner(MODULE, site.args(smsrun_argv=launch(site.client)))["status"] == "upgraded"
    again = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=30))
    assert again["status"] == "unchanged" and again["changed"] is False, again
    assert again["verify"]["result"] == "not_watched"


def test_check_mode_restarts_and_watches_nothing(site, smsrun, tmp_path, module_runner):
    before = site.snap()
    result = module_runner(
        MODULE, site.args(restart="service", verify_seconds=30, **marker_service(tmp_path)), check_mode=True
    )
    assert result["changed"] is True and result["verify"]["result"] == "not_watched", result
    assert result["restart"]["note"].startswith("would restart the client service")
    assert site.snap() == before and not (tmp_path / "service.state").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (dict(restart="service"), "restart=service needs the client service"),
        (dict(restart="service", service_name="sms", service_start_argv=["x"]), "not both"),
        (dict(restart="service", service_start_argv=["x"]), "needs service_stop_argv"),
        (dict(verify_seconds=-1), "verify_seconds must be 0 or more"),
    ],
)
def test_bad_cure_options_are_refused_before_anything_changes(site, module_runner, extra, needle):
    before = site.snap()
    result = module_runner(MODULE, site.args(**extra))
    assert result["failed"] is True and result["status"] == "refused" and needle in result["msg"], result
    assert site.snap() == before


def test_the_old_words_still_work_with_a_deprecation(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    up = module_runner(MODULE, site.args(state="upgraded", start_argv=launch(site.client)))
    # start_argv (the old name of smsrun_argv) started SMSRUN32 after the upgrade
    assert up["status"] == "upgraded" and up["state"] == "present" and up["smsrun32"]["restarted"] is True, up
    said = " ".join(str(d) for d in up.get("deprecations", []))
    assert "state=upgraded is renamed to state=present" in said and "start_argv" in said, up.get("deprecations")
    back = module_runner(MODULE, site.args(state="rolled_back"))
    assert back["status"] == "rolled_back" and back["state"] == "absent", back
    assert os.path.exists(os.path.join(site.bin, "Smsrun32.exe"))
    assert lab.sha(open(os.path.join(site.bin, "Smsrun32.exe"), "rb").read()) != lab.sha(
        open(os.path.join(os.path.dirname(site.manifest), "payload", "X86.bin", "Smsrun32.exe"), "rb").read()
    )


# -- the cure is owed until it held (a re-run finds the files in place) ----------------------------------


def kill_instances(drive):
    for entry in instances(drive):
        try:
            os.kill(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not instances(drive))


def owed_record(result):
    path = os.path.join(result["state_dir"], "cure_owed.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_a_canary_that_failed_its_watch_is_watched_again_on_the_re_run(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE, site.args(smsrun_argv=launch(site.client, count=2), verify_seconds=2.0, verify_interval=0.25)
    )
    assert first["status"] == "verify_failed", first
    record = owed_record(first)
    assert record is not None and record["last_status"] == "verify_failed" and record["watch_owed"] is True, record
    assert record["kb"] == "Q216552" and first["cure_owed"]["path"].endswith("cure_owed.json"), first
    # the hang is gone (the operator ended it); the re-run finds the files in place
    kill_instances(site.client)
    again = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=1.0, verify_interval=0.25))
    assert again.get("failed") is not True and again["status"] == "verified", again
    assert again["verify"]["result"] == "healthy" and again["verify"]["elapsed"] >= 1.0, again
    assert again["cure_owed"]["cleared"] is True and owed_record(again) is None
    assert "the cure an earlier run left owed now holds" in again["msg"]
    # held: the next run owes nothing and watches nothing
    third = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=30))
    assert third["status"] == "unchanged" and third["changed"] is False, third
    assert third["verify"]["result"] == "not_watched" and "cure_owed" not in third


def test_a_re_run_with_the_hang_still_there_fails_again_and_stays_owed(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE, site.args(smsrun_argv=launch(site.client, count=2), verify_seconds=2.0, verify_interval=0.25)
    )
    assert first["status"] == "verify_failed", first
    kill_instances(site.client)
    # nothing runs when the re-run looks (the upgrade sees nothing to do); SMSRUN32 started again still hangs
    again = module_runner(
        MODULE, site.args(smsrun_argv=launch(site.client, count=2), verify_seconds=2.0, verify_interval=0.25)
    )
    assert again["failed"] is True and again["status"] == "verify_failed", again
    assert again["verify"]["result"] == "hung" and again["verify"]["instances"] == 2, again
    assert "the cure did not hold" in again["msg"]
    record = owed_record(again)
    assert record is not None and record["last_status"] == "verify_failed", record


def test_a_restart_that_failed_is_done_on_the_re_run_then_watched(site, smsrun, tmp_path, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1,
            **marker_service(tmp_path, fail_start=True),
        ),
    )
    assert first["status"] == "restart_failed", first
    record = owed_record(first)
    assert record["restart_owed"] is True and record["service_files"] == ["Smssrv32.exe"], record
    assert (tmp_path / "service.state").read_text() == "stopped"  # stopped, never started
    # the service is repaired; the re-run restarts it (files unchanged), then watches
    again = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1.0,
            verify_interval=0.25,
            **marker_service(tmp_path),
        ),
    )
    assert again.get("failed") is not True and again["status"] == "verified", again
    assert again["changed"] is True and again["restart"]["done"] is True, again
    assert again["verify"]["service"] == "running" and again["verify"]["instances"] == 1, again
    assert (tmp_path / "service.state").read_text() == "running"
    assert owed_record(again) is None and again["reboot_required"] is False


def test_a_restart_done_but_a_watch_failed_owes_the_watch_only(site, smsrun, tmp_path, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client, count=2),
            restart="service",
            verify_seconds=2.0,
            verify_interval=0.25,
            **marker_service(tmp_path),
        ),
    )
    assert first["status"] == "verify_failed" and first["restart"]["done"] is True, first
    assert owed_record(first)["restart_owed"] is False
    (tmp_path / "service.state").write_text("stopped-by-test")  # a restart on the re-run would overwrite it
    kill_instances(site.client)
    again = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1.0,
            verify_interval=0.25,
            **marker_service(tmp_path),
        ),
    )
    assert again["status"] == "verified" and again["changed"] is False, again
    assert (tmp_path / "service.state").read_text() == "stopped-by-test"


def test_check_mode_on_an_owed_client_says_what_it_would_do_and_writes_nothing(site, smsrun, tmp_path, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE,
        site.args(
            smsrun_argv=launch(site.client),
            restart="service",
            verify_seconds=1,
            **marker_service(tmp_path, fail_start=True),
        ),
    )
    assert first["status"] == "restart_failed", first
    before = site.snap()
    preview = module_runner(
        MODULE,
        site.args(smsrun_argv=launch(site.client), restart="service", verify_seconds=1, **marker_service(tmp_path)),
        check_mode=True,
    )
    assert preview["changed"] is True and preview["verify"]["result"] == "not_watched", preview
    assert "still owed" in preview["msg"] and "restart the client service, then watch" in preview["msg"], preview
    assert site.snap() == before and (tmp_path / "service.state").read_text() == "stopped"


def test_nothing_is_owed_with_restart_none_and_no_watch(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    result = module_runner(MODULE, site.args(smsrun_argv=launch(site.client)))
    assert result["status"] == "upgraded" and owed_record(result) is None, result


def test_a_rollback_removes_the_record_of_the_cure_owed(site, smsrun, module_runner):
    smsrun.drives.add(site.client)
    first = module_runner(
        MODULE, site.args(smsrun_argv=launch(site.client, count=2), verify_seconds=2.0, verify_interval=0.25)
    )
    assert first["status"] == "verify_failed" and owed_record(first) is not None, first
    back = module_runner(MODULE, site.args(state="absent"))
    assert back["status"] == "rolled_back", back
    assert owed_record(first) is None and back["cure_owed_removed"].endswith("cure_owed.json"), back
    kill_instances(site.client)
    # a re-run upgrades again (the record did not survive to confuse it)
    again = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=0.5, verify_interval=0.25))
    assert again["status"] == "upgraded" and owed_record(again) is None, again


def test_the_record_is_written_before_the_files_are_replaced(site, smsrun, module_runner):
    # SMSRUN32 is stopped for the work and cannot be started again: the run fails after the replacement,
    # before the restart and the watch; the cure is still owed
    smsrun(site.client)
    first = module_runner(
        MODULE,
        site.args(
            smsrun_argv=cmd("import sys; sys.exit(1)"),
            running_policy="restart",
            verify_seconds=1.0,
            verify_interval=0.25,
        ),
    )
    assert first["failed"] is True, first
    assert_upgraded(site)
    record = owed_record(first)
    assert record is not None and record["watch_owed"] is True and record["last_status"] is None, record
    again = module_runner(MODULE, site.args(smsrun_argv=launch(site.client), verify_seconds=1.0, verify_interval=0.25))
    assert again.get("failed") is not True and again["status"] == "verified", again
    assert again["smsrun32"]["restarted"] is True and again["verify"]["instances"] == 1, again
    assert owed_record(again) is None
