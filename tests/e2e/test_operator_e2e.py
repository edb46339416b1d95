"""End to end, the operator's view (issue 6): the plan printed before anything
is touched, the report folder (JSON against its schema, JUnit, HTML) written
under ansible-runner with numbers that match the lab's real files, the
compliance playbook before and after a rollout, the maintenance-window guard
and its override, and a report folder that cannot be written.

Every claim of a report is checked against the lab: file hashes against the
manifest's SHA-256, SMS.INI values, copy-list versions, snapshots of the host
folders before and after.
"""

import datetime
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

from sms_testlib import sha  # noqa: E402

pytestmark = pytest.mark.slow

MANIFEST_PATH = os.path.join(REPO, "hotfixes", "Q216552", "manifest.json")
SCHEMA_PATH = os.path.join(REPO, "docs", "report.schema.json")
PLATFORM_DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}
BIN = ("MS", "SMS", "BIN")


# ---- helpers ---------------------------------------------------------------


def manifest():
    with open(MANIFEST_PATH) as handle:
        return json.load(handle)


def manifest_hashes(platform):
    """file name (lower case) -> expected SHA-256 for one platform."""
    return {f["name"].lower(): f["sha256"] for f in manifest()["platforms"][platform]["files"]}


def platforms(lab):
    """client -> platform, from the lab's own spec (the world, not the product)."""
    return {c["name"]: c["platform"] for c in lab.spec["clients"]}


def logon_server_of(lab):
    return {c["name"]: c["logon_server"] for c in lab.spec["clients"]}


def bin_files(lab, client):
    return lab.files(client, *BIN)


def has_hotfix(lab, client, platform):
    found = bin_files(lab, client)
    return all(found.get(name) == digest for name, digest in manifest_hashes(platform).items())


def validate(report):
    with open(SCHEMA_PATH) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)


def junit(run):
    """suite name -> {case name: (outcome, message)}; outcome is pass/failure/skipped.

    Also checks the counters of every <testsuite> and of <testsuites> against
    the cases they hold.
    """
    tree = ET.parse(os.path.join(run.report()["report_dir"], "junit.xml"))
    top = tree.getroot()
    assert top.tag == "testsuites"
    suites = {}
    all_cases = all_failures = all_skipped = 0
    for suite in top.findall("testsuite"):
        cases = {}
        for case in suite.findall("testcase"):
            failure, skipped = case.find("failure"), case.find("skipped")
            assert not (failure is not None and skipped is not None), case.get("name")
            if failure is not None:
                cases[case.get("name")] = ("failure", failure.get("message"))
            elif skipped is not None:
                cases[case.get("name")] = ("skipped", None)
            else:
                cases[case.get("name")] = ("pass", None)
            out = case.find("system-out")
            assert out is not None and out.text.startswith("status: "), case.get("name")
        assert len(cases) == len(suite.findall("testcase")), "duplicate test case in %s" % suite.get("name")
        failures = sum(1 for outcome, _message in cases.values() if outcome == "failure")
        skipped = sum(1 for outcome, _message in cases.values() if outcome == "skipped")
        assert int(suite.get("tests")) == len(cases), suite.get("name")
        assert int(suite.get("failures")) == failures, suite.get("name")
        assert int(suite.get("skipped")) == skipped, suite.get("name")
        all_cases, all_failures, all_skipped = all_cases + len(cases), all_failures + failures, all_skipped + skipped
        suites[suite.get("name")] = cases
    assert int(top.get("tests")) == all_cases
    assert int(top.get("failures")) == all_failures
    assert int(top.get("skipped")) == all_skipped
    return suites


def outcomes(cases, outcome):
    return sorted(name for name, (got, _msg) in cases.items() if got == outcome)


def task_results(run, task_name):
    """host -> (event, res) of every result of the task with this exact name."""
    found = {}
    for event in run.events:
        data = event.get("event_data", {})
        if event.get("event", "").startswith("runner_on_") and data.get("task") == task_name:
            found[data["host"]] = (event["event"], data.get("res") or {})
    return found


def plan_lines(run):
    results = task_results(run, "Main | Show the plan")
    assert list(results) == ["localhost"], "the plan was not printed: %s" % list(results)
    event, res = results["localhost"]
    assert event == "runner_on_ok"
    return res["msg"]


def event_index(run, predicate):
    for index, event in enumerate(run.events):
        if predicate(event):
            return index
    return None


def summary(run):
    """The callback's lines after PLAY RECAP, from the report's heading on."""
    lines = run.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("SMS rollout ") and " — report: " in line)
    return [line for line in lines[start:] if line.strip()]


def by_host(entries):
    return {entry["host"]: entry for entry in entries}


def assert_report_written_by_runner(run):
    """The callback was loaded under ansible-runner and wrote its folder where SMS_REPORT_DIR says."""
    assert "unable to load" not in run.stdout, run.stdout[-2000:]
    report = run.report()
    assert report is not None, "no report folder under %s" % run.report_dir
    assert os.path.dirname(report["report_dir"]) == os.path.abspath(run.report_dir)
    assert sorted(os.listdir(report["report_dir"])) == ["junit.xml", "report.html", "report.json"]
    assert summary(run)[0].split(" — report: ")[1].startswith(report["report_dir"])
    validate(report)
    return report


def expected_waves(count, serial):
    """The batch sizes Ansible makes (ints and "N%" of the play's hosts; the last repeats)."""
    sizes, left, index = [], count, 0
    while left > 0:
        value = serial[min(index, len(serial) - 1)]
        if isinstance(value, str) and value.endswith("%"):
            size = max(1, int(count * int(value[:-1]) / 100.0))
        else:
            size = int(value)
        size = min(size, left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def window_excluding_now():
    """A one-hour window starting two hours from now (controller local time)."""
    now = datetime.datetime.now()
    start, end = now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3)
    return "%s-%s" % (start.strftime("%H:%M"), end.strftime("%H:%M"))


def window_including_now():
    now = datetime.datetime.now()
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)
    return "%s-%s" % (start.strftime("%H:%M"), end.strftime("%H:%M"))


# ---- the full rollout: plan, reports vs. the lab, compliance before/after ----


def compliance(run_playbook, lab):
    """The compliance playbook as a schedule runs it: non-zero exit while non-compliant clients remain."""
    return run_playbook(lab, "playbooks/compliance.yml", extravars={"sms_compliance_fail": True})


def check_compliance(lab, comp, compliant, fail_flag):
    """A compliance run's console, report, JUnit and exit code against the lab's real files."""
    clients = lab.clients()
    noncompliant = sorted(set(clients) - set(compliant))
    report = assert_report_written_by_runner(comp)
    assert report["playbook"] == "compliance.yml"

    # the console view
    shown = task_results(comp, "Compliance | Show compliant and non-compliant clients")["localhost"][1]["msg"]
    assert shown[0] == "compliant: %d/%d" % (len(compliant), len(clients))
    listed = shown[1].split(": ", 1)[1]
    assert (sorted(listed.split(", ")) if noncompliant else listed) == (noncompliant or "none")
    assert "compliance    %d/%d compliant" % (len(compliant), len(clients)) in summary(comp)

    # the exit code (and the message that names the clients) with -e sms_compliance_fail=true
    guard = task_results(comp, "Compliance | Fail while non-compliant clients remain")["localhost"]
    if fail_flag and noncompliant:
        assert comp.rc != 0
        assert guard[0] == "runner_on_failed"
        head, names = guard[1]["msg"].split(": ", 1)
        assert head == "%d client(s) do not have the hotfix" % len(noncompliant)
        assert sorted(names.split(". ")[0].split(", ")) == noncompliant
    else:
        assert comp.rc == 0, comp.stdout[-3000:]
        assert guard[0] in ("runner_on_ok", "runner_on_skipped")
    assert comp.changed() == 0

    # report.json: one entry per client, each one's hashes as they really are
    entries = by_host(report["compliance"])
    assert sorted(entries) == clients
    assert sorted(h for h, e in entries.items() if e["compliant"]) == sorted(compliant)
    assert report["totals"]["compliance"] == {
        "hosts": len(clients),
        "compliant": len(compliant),
        "not_compliant": len(noncompliant),
    }
    kinds = platforms(lab)
    for host, entry in entries.items():
        real = bin_files(lab, host)
        expected = manifest_hashes(kinds[host])
        assert entry["compliant"] == has_hotfix(lab, host, kinds[host]), host
        for item in entry["files"]:
            assert item["found_sha256"] == real[item["name"].lower()], (host, item)
            assert item["expected_sha256"] == expected[item["name"].lower()], (host, item)
        assert entry["setup_phase"] == lab.ini_value(host, "SetupPhase")
        assert str(entry["copy_list_version"]) == lab.ini_value(host, "CopyListVersion")

    # junit.xml: a compliance suite, failures exactly for the non-compliant clients
    cases = junit(comp)["compliance"]
    assert sorted(cases) == clients
    assert outcomes(cases, "failure") == noncompliant
    assert outcomes(cases, "pass") == sorted(compliant)
    return report


def test_rollout_plan_reports_and_compliance_match_the_lab(make_lab, run_playbook):
    lab = make_lab(cycle=2)
    clients = lab.clients()
    kinds = platforms(lab)
    logons = lab.logon_servers()
    before = {client: bin_files(lab, client) for client in clients}
    canary_old = {}  # the pre-hotfix Smsrun32.exe of client05, to put back later
    for name in os.listdir(lab.host("client05", *BIN)):
        if name.lower() == "smsrun32.exe":
            with open(lab.host("client05", *BIN, name), "rb") as handle:
                canary_old = {"name": name, "data": handle.read()}
    assert canary_old

    # -- compliance before the rollout: nobody has it, the schedule's run fails
    check_compliance(lab, compliance(run_playbook, lab), compliant=[], fail_flag=True)

    # -- the rollout
    site_map_before = os.stat(lab.host("smssite", "SMS", "System.map")).st_mtime_ns
    roll = run_playbook(lab, "rollout.yml")
    assert roll.rc == 0, roll.stdout[-4000:]
    report = assert_report_written_by_runner(roll)

    # the plan, printed before anything was changed
    plan = plan_lines(roll)
    hotfix = manifest()
    assert plan[0] == "%s: %s (%s %s)" % (hotfix["kb"], hotfix["title"], hotfix["product"], hotfix["version"])
    assert plan[1] == "payload: verified, x86 Smsrun32.exe Smssrv32.exe; alpha Smsrun32.exe Smssrv32.exe"
    assert "site server: smssite" in plan
    assert (
        "logon servers (%d): %s (SMS names: %s)"
        % (len(logons), ", ".join(["smssite", "logon01", "logon02"]), "smssite, logon01, logon02")
        in plan
    )
    assert "platforms: every platform of the manifest" in plan
    counts = {p: sum(1 for c in clients if kinds[c] == p) for p in ("alpha", "x86")}
    assert counts == {"alpha": 2, "x86": 10}
    assert "clients: 12 (alpha 2, x86 10)" in plan
    assert (
        "waves: 1, 1, 6, 4 (serial 1, 10%, 50%, 100%; a wave stops the rollout above 20% failed or unreachable)"
    ) in plan
    assert "window: any time" in plan
    plan_at = event_index(roll, lambda e: e.get("event_data", {}).get("task") == "Main | Show the plan")
    first_change = event_index(roll, lambda e: (e.get("event_data", {}).get("res") or {}).get("changed") is True)
    assert plan_at is not None and first_change is not None and plan_at < first_change

    # the console: each tier announced, one summary line per tier
    for line in (
        "SMS rollout: site server — smssite",
        "SMS rollout: logon servers — 3 hosts: smssite, logon01, logon02",
        "SMS rollout: clients — 12 hosts in 4 waves: 1, 1, 6, 4",
        "SMS rollout: client wave 4 of 4 starting",
    ):
        assert line in roll.stdout.splitlines(), line
    lines = summary(roll)
    assert lines[1].split() == [
        "site",
        "server",
        "smssite",
        "staged",
        "(4",
        "files",
        "changed,",
        "System.map",
        "bumped)",
    ]
    assert lines[2].startswith("logon servers 3/3 converged  smssite ")
    assert lines[3] == (
        "clients       wave 1: 1 done | wave 2: 1 done | wave 3: 6 done | wave 4: 4 done | not reached: 0 | skipped: 0"
    )

    # site server: what the report says it staged is what Client.src holds
    site = report["site"]
    assert report["site_servers"] == [site] and site["status"] == "staged" and site["action"] == "stage"
    assert site["files_changed"] == sum(1 for f in site["files"] if f["changed"]) == 4
    for platform, folder in PLATFORM_DIRS.items():
        real = lab.files("smssite", "SMS", "Site.srv", "Maincfg.box", "Client.src", folder)
        for name, digest in manifest_hashes(platform).items():
            assert real[name] == digest, (platform, name)
    for item in site["files"]:
        with open(item["path"], "rb") as handle:
            assert sha(handle.read()) == item["after_sha256"] == manifest_hashes(item["platform"])[item["name"].lower()]
        with open(item["backup"], "rb") as handle:
            assert sha(handle.read()) == item["before_sha256"]
    assert site["system_map"]["bumped"] is True
    assert os.stat(lab.host("smssite", "SMS", "System.map")).st_mtime_ns != site_map_before

    # logon servers reported converged really serve the hotfix and the new copy lists
    logon = by_host(report["logon_servers"])
    assert sorted(logon) == logons
    for server, entry in logon.items():
        assert entry["status"] == "converged" and entry["missing"] == [], entry
        for platform, folder in PLATFORM_DIRS.items():
            real = lab.files(server, "SMS", "Logon.srv", folder)
            for name, digest in manifest_hashes(platform).items():
                assert real[name] == digest, (server, platform, name)
        assert lab.copy_list_version(server) == entry["copy_list"]["current"] > entry["copy_list"]["baseline"]

    # clients: every one reported done has the manifest's bytes and a consistent SMS.INI
    entries = by_host(report["clients"])
    assert sorted(entries) == clients
    done = sorted(h for h, e in entries.items() if e["status"] == "done")
    changed = sorted(c for c in clients if bin_files(lab, c) != before[c])
    assert done == changed == clients
    servers = logon_server_of(lab)
    for client in done:
        entry = entries[client]
        assert has_hotfix(lab, client, kinds[client]), client
        assert lab.ini_value(client, "SetupPhase") == "installed", client
        assert int(lab.ini_value(client, "CopyListVersion")) == lab.copy_list_version(servers[client]), client
        assert entry["logon_server"] == servers[client].upper()
        assert entry["files_changed"] == 2 and entry["reboot_required"] is False, entry  # restarted, so no reboot
        assert entry["restart"]["how"] == "service" and entry["restart"]["done"] is True, entry
        assert entry["verify"]["result"] == "healthy" and entry["verify"]["instances"] == 1, entry
    assert entries["client01"]["smsrun32"]["hung"] is True  # the lab's hung client, cured
    assert [(e["wave"], len([c for c in entries.values() if c["wave"] == e["wave"]])) for e in report["waves"]] == [
        (1, 1),
        (2, 1),
        (3, 6),
        (4, 4),
    ]
    assert [w["planned"] for w in report["waves"]] == [1, 1, 6, 4] == expected_waves(12, [1, "10%", "50%", "100%"])
    assert report["client_plan"][0]["waves"] == [1, 1, 6, 4]
    assert report["totals"]["clients"]["done"] == 12 and report["totals"]["clients"]["hosts"] == 12
    assert report["ok"] is True and report["check_mode"] is False
    assert report["lock"]["ok"] is True and "lock holder: %s" % report["lock"]["holder"] in plan
    assert report["lock"]["released"] is True and "rollout lock  still held" not in roll.stdout
    assert not os.path.exists(lab.host("smssite", "SMS", "Hotfix", "rollout.lock"))

    # ansible's own recap, as ansible-runner saw it
    for host, counters in report["ansible_stats"].items():
        for key in ("ok", "changed", "failures", "skipped"):
            assert counters[key] == (roll.stats.get(key) or {}).get(host, 0), (host, key)

    # junit.xml: one test case per host of each tier, no failures
    suites = junit(roll)
    assert sorted(suites) == ["clients", "logon servers", "site server"]
    assert sorted(suites["clients"]) == clients and outcomes(suites["clients"], "pass") == clients
    assert sorted(suites["logon servers"]) == logons and outcomes(suites["logon servers"], "pass") == logons
    assert outcomes(suites["site server"], "pass") == ["smssite"]

    # report.html: self-contained (one inline script, the client filter; nothing loaded), names every host
    with open(os.path.join(report["report_dir"], "report.html"), encoding="utf-8") as handle:
        page = handle.read()
    assert page.lower().count("<script") == 1 and "<script>" in page and "<link" not in page.lower()
    assert " src=" not in page.lower() and "url(" not in page.lower()
    for host in clients + logons:
        assert host in page

    # -- compliance after the rollout: everyone, and the scheduled run passes
    check_compliance(lab, compliance(run_playbook, lab), compliant=clients, fail_flag=True)

    # -- one client's Smsrun32.exe back to the old bytes: exactly that one is listed
    with open(lab.host("client05", *BIN, canary_old["name"]), "wb") as handle:
        handle.write(canary_old["data"])
    assert not has_hotfix(lab, "client05", "x86")
    check_compliance(
        lab, compliance(run_playbook, lab), compliant=[c for c in clients if c != "client05"], fail_flag=True
    )


# ---- some clients fail: failed entries, a wave stops the run, later waves not reached ----


def test_failed_clients_and_a_stopped_wave_are_reported_as_they_are(make_lab, run_playbook):
    lab = make_lab(cycle=2, logon_servers=3, alpha=3)
    clients = lab.clients()
    kinds = platforms(lab)
    broken = ["client05", "client07"]  # both in wave 2 of [4, 4, 4]: 50% > 20% stops the rollout
    for client in broken:
        os.rename(lab.host(client, "SMS.INI"), lab.host(client, "SMS.INI.moved"))
    before = {client: lab.snapshot(client) for client in clients}
    before_bin = {client: bin_files(lab, client) for client in clients}

    roll = run_playbook(
        lab, "rollout.yml", extravars={"sms_rollout_waves": [4, 4, 4], "sms_rollout_max_fail_percentage": 20}
    )
    assert roll.rc != 0
    report = assert_report_written_by_runner(roll)

    plan = plan_lines(roll)
    assert (
        "logon servers (4): smssite, logon01, logon02, logon03 (SMS names: smssite, logon01, logon02, logon03)"
    ) in plan
    assert "clients: 12 (alpha 3, x86 9)" in plan
    assert "waves: 4, 4, 4 (serial 4, 4, 4; a wave stops the rollout above 20% failed or unreachable)" in plan
    # the run stopped before the unlock step: the summary says the lock is still held
    assert report["lock"]["released"] is False
    assert "rollout lock  still held by %s" % report["lock"]["holder"] in roll.stdout

    wave1, wave2, wave3 = clients[0:4], clients[4:8], clients[8:12]
    entries = by_host(report["clients"])
    assert sorted(entries) == clients
    status = {host: entry["status"] for host, entry in entries.items()}
    assert sorted(h for h, s in status.items() if s == "failed") == broken
    assert sorted(h for h, s in status.items() if s == "done") == sorted(wave1 + ["client06", "client08"])
    assert sorted(h for h, s in status.items() if s == "not_reached") == wave3
    for client in broken:
        assert entries[client]["wave"] == 2 and entries[client]["detail"] == "failed", entries[client]
        assert entries[client]["files_changed"] == 0 and entries[client]["reboot_required"] is False
        assert "SMS.INI" in entries[client]["msg"] and client in entries[client]["msg"], entries[client]["msg"]
    assert [entries[c]["wave"] for c in wave1 + wave2] == [1] * 4 + [2] * 4
    for client in wave3:
        assert entries[client]["wave"] is None and entries[client]["detail"] == "not_reached"
    assert report["waves"] == [
        {
            "wave": 1,
            "planned": 4,
            "done": 4,
            "failed": 0,
            "skipped": 0,
            "deferred": 0,
            "unreachable": 0,
            "not_reached": 0,
        },
        {
            "wave": 2,
            "planned": 4,
            "done": 2,
            "failed": 2,
            "skipped": 0,
            "deferred": 0,
            "unreachable": 0,
            "not_reached": 0,
        },
    ]
    totals = report["totals"]["clients"]
    assert (totals["done"], totals["failed"], totals["not_reached"], totals["hosts"]) == (6, 2, 4, 12)
    assert report["ok"] is False

    # the lab: done clients have the hotfix, the others were not touched at all
    done = sorted(h for h, s in status.items() if s == "done")
    changed = sorted(c for c in clients if bin_files(lab, c) != before_bin[c])
    assert changed == done
    for client in done:
        assert has_hotfix(lab, client, kinds[client]), client
        assert lab.ini_value(client, "SetupPhase") == "installed"
    for client in broken + wave3:
        assert lab.snapshot(client) == before[client], client

    # what Ansible itself counted agrees
    assert roll.failed_hosts() == broken
    for client in broken:
        assert report["ansible_stats"][client]["failures"] == 1
    for client in wave3:
        assert client not in report["ansible_stats"] or report["ansible_stats"][client]["ok"] == 0

    # junit.xml: one case per client, failures exactly the failed ones, the unreached skipped
    cases = junit(roll)["clients"]
    assert sorted(cases) == clients
    assert outcomes(cases, "failure") == broken
    assert outcomes(cases, "skipped") == wave3
    assert outcomes(cases, "pass") == done
    for client in broken:
        assert "SMS.INI" in cases[client][1]

    # the console summary says the same
    assert "clients       wave 1: 4 done | wave 2: 2 done, 2 failed | not reached: 4 | skipped: 0" in summary(roll)


# ---- the maintenance-window guard and its override ----


def test_window_guard_refuses_outside_the_window_and_force_overrides(make_lab, run_playbook):
    lab = make_lab(cycle=2, clients=4, alpha=1, hung=0)
    clients = lab.clients()
    kinds = platforms(lab)
    window = window_excluding_now()
    before = lab.snapshot()

    refused = run_playbook(lab, "rollout.yml", extravars={"sms_rollout_window": window})
    assert refused.rc != 0
    guard = task_results(refused, "window | Refuse to go on outside the maintenance window")["localhost"]
    assert guard[0] == "runner_on_failed"
    message = guard[1]["msg"]
    assert "'%s'" % window in message and "sms_rollout_window" in message
    assert "Nothing more was changed" in message and "sms_rollout_force=true" in message
    assert "outside the maintenance window '%s'" % window in " ".join(refused.stdout.split())
    assert lab.snapshot() == before, "the refused run changed the lab"
    assert not task_results(refused, "Main | Show the plan")
    assert refused.changed() == 0
    report = assert_report_written_by_runner(refused)
    assert report["plan"] is None and report["lock"] is None
    assert report["ansible_stats"]["localhost"]["failures"] == 1
    assert report["site"] is None or report["site"]["status"] == "not_reached"
    # the tier plays' hosts are templated, so the refused run lists no clients (or lists them unreached)
    assert all(entry["status"] == "not_reached" for entry in report["clients"])
    assert all(not has_hotfix(lab, c, kinds[c]) for c in clients)

    # inside the window, without force: the guard lets a (check mode) run through, which changes nothing
    inside = window_including_now()
    preview = run_playbook(lab, "rollout.yml", extravars={"sms_rollout_window": inside}, check=True)
    assert preview.rc == 0, preview.stdout[-3000:]
    assert "window: %s" % inside in plan_lines(preview)
    assert "check mode: True" in plan_lines(preview)
    preview_report = assert_report_written_by_runner(preview)
    assert preview_report["check_mode"] is True
    assert summary(preview)[0].endswith("[CHECK MODE: nothing was changed]")
    assert lab.snapshot() == before, "the check-mode run changed the lab"

    forced = run_playbook(lab, "rollout.yml", extravars={"sms_rollout_window": window, "sms_rollout_force": True})
    assert forced.rc == 0, forced.stdout[-4000:]
    assert "window: %s (forced)" % window in plan_lines(forced)
    report = assert_report_written_by_runner(forced)
    assert report["ok"] is True and report["site"]["status"] == "staged"
    assert sorted(e["host"] for e in report["clients"] if e["status"] == "done") == clients
    for client in clients:
        assert has_hotfix(lab, client, kinds[client]), client


# ---- a report folder that cannot be written never breaks the run ----


def test_unwritable_report_folder_warns_and_the_run_goes_on(make_lab, run_playbook):
    lab = make_lab(cycle=2, clients=3, alpha=1, hung=0)
    clients = lab.clients()
    kinds = platforms(lab)
    nowhere = "/dev/null/reports"  # not creatable, even by root

    roll = run_playbook(lab, "rollout.yml", envvars={"SMS_REPORT_DIR": nowhere})
    assert roll.rc == 0, roll.stdout[-4000:]
    flat = " ".join(roll.stdout.split())
    assert "sms_rollout_report: could not write the report folder under '%s'" % nowhere in flat
    assert "the run is not affected" in flat
    assert summary(roll)[0] == "SMS rollout Q216552 — report: not written"
    assert "clients       wave 1: 1 done | wave 2: 1 done | wave 3: 1 done | not reached: 0 | skipped: 0" in summary(
        roll
    )
    assert not os.path.exists(roll.report_dir)
    for client in clients:
        assert has_hotfix(lab, client, kinds[client]), client

    # and a failing run keeps its own exit code: the compliance check of a broken client still fails
    shutil.move(lab.host("client01", "SMS.INI"), lab.host("client01", "SMS.INI.moved"))
    comp = run_playbook(
        lab, "playbooks/compliance.yml", extravars={"sms_compliance_fail": True}, envvars={"SMS_REPORT_DIR": nowhere}
    )
    assert comp.rc != 0
    assert "could not write the report folder" in " ".join(comp.stdout.split())
    guard = task_results(comp, "Compliance | Fail while non-compliant clients remain")["localhost"]
    assert guard[0] == "runner_on_failed" and "1 client(s) do not have the hotfix: client01." in guard[1]["msg"]


# ---- failures outside the three tiers make the report red too ---------------


def test_a_run_refused_by_the_window_guard_is_reported_as_failed(make_lab, run_playbook):
    lab = make_lab(cycle=2, clients=2, alpha=0, hung=0)
    refused = run_playbook(lab, "rollout.yml", extravars={"sms_rollout_window": window_excluding_now()})
    assert refused.rc != 0
    report = refused.report()
    validate(report)
    assert report["ansible_stats"]["localhost"]["failures"] == 1
    # docs/REPORTS.md: "ok: false when any host failed or was unreachable"
    assert report["ok"] is False
    # a CI dashboard must not show a refused rollout as 0 tests, 0 failures
    top = ET.parse(os.path.join(report["report_dir"], "junit.xml")).getroot()
    assert int(top.get("failures")) + int(top.get("errors")) >= 1
    assert [f["host"] for f in report["failures"]] == ["localhost"]
    assert "maintenance window" in report["failures"][0]["msg"]
    assert "run failed    localhost:" in refused.stdout and "Q216552" not in refused.stdout.split("run failed")[0][-0:]


def test_a_failed_compliance_run_is_reported_as_failed(make_lab, run_playbook):
    lab = make_lab(cycle=2, clients=2, alpha=0, hung=0)
    comp = run_playbook(lab, "playbooks/compliance.yml", extravars={"sms_compliance_fail": True})
    assert comp.rc != 0
    report = comp.report()
    validate(report)
    assert report["totals"]["compliance"]["not_compliant"] == 2
    assert report["ansible_stats"]["localhost"]["failures"] == 1
    assert report["ok"] is False
