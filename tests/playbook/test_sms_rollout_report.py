"""The operator report callback, driven by real ansible-playbook runs.

Each test writes a tiny project in a tmp dir: an inventory (local connection,
one host made unreachable), stub modules named like the rollout's modules that
return what a `world.json` says about each host, a playbook shaped like the
rollout (plan, site, logon servers, clients in serial waves), and an
ansible.cfg enabling the callback from this checkout. The report's numbers are
checked against the world the stubs report from.
"""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from sms_html import parse
from sms_testlib import REPO

# the callback as Ansible loads it: from the sms.hotfix collection (tests/conftest.py installs the loader)
from ansible_collections.sms.hotfix.plugins.callback import sms_rollout_report

SCHEMA = os.path.join(REPO, "docs", "report.schema.json")
COLLECTIONS = os.path.join(REPO, "collections")
BIN = os.path.dirname(sys.executable)

STUB = '''#!/usr/bin/python
import json
from ansible.module_utils.basic import AnsibleModule

NAME = %r


def main():
    module = AnsibleModule(argument_spec=dict(world=dict(type="path", required=True),
                                              host=dict(type="str", required=True),
                                              state=dict(type="str")),
                           supports_check_mode=True)
    with open(module.params["world"]) as handle:
        result = json.load(handle)[NAME][module.params["host"]]
    if "by_state" in result:
        result = result["by_state"][module.params["state"]]
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
'''

CLIENTS = ["c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09"]
UNREACHABLE = "c03"


def site_files(changed):
    return [
        {
            "platform": p,
            "name": n,
            "path": "SMS/Site.srv/Maincfg.box/Client.src/%s/%s" % (d, n),
            "before_sha256": "a" * 64,
            "after_sha256": "b" * 64,
            "backup": "/b/%s" % n,
            "changed": changed,
        }
        for p, d in (("x86", "X86.bin"), ("alpha", "Alpha.bin"))
        for n in ("Smsrun32.exe", "Smssrv32.exe")
    ]


def client(status, changed=0, **extra):
    files = [{"name": "Smsrun32.exe", "changed": i < changed} for i in range(2)]
    result = {
        "changed": bool(changed),
        "status": status,
        "files": files,
        "ini": {"changed": bool(changed)},
        "smsrun32": {"hung": False, "stopped": 0, "restarted": False},
        "reboot_required": False,
        "pending_restart": False,
        "logon_server": "LOGON01",
        "skipped": False,
    }
    result.update(extra)
    return result


WORLD = {
    "sms_hotfix_manifest": {
        "localhost": {
            "changed": False,
            "kb": "Q216552",
            "payload_verified": True,
            "manifest": {
                "kb": "Q216552",
                "title": "SMSRUN32 hangs <at> 90% CPU & IE4",
                "platforms": {"x86": {"files": [{"name": "Smsrun32.exe"}, {"name": "Smssrv32.exe"}]}},
            },
        }
    },
    "sms_rollout_lock": {
        "smssite": {
            "changed": True,
            "status": "taken_over",
            "state": "acquired",
            "lock": {"holder": "test", "started": "2026-11-24T22:15:00Z"},
        }
    },
    "sms_hotfix_stage": {
        "smssite": {
            "changed": True,
            "kb": "Q216552",
            "files": site_files(True),
            "system_map": {"path": "SMS/System.map", "bumped": True, "mtime": "2026-11-24T22:15:00Z"},
            "msg": "staged",
        }
    },
    # a baseline says whether the files match too (converged): the report reads its status, not that
    "sms_copy_list_baseline": dict(
        (
            host,
            {
                "changed": True,
                "recorded": True,
                "converged": host == "smssite",
                "elapsed": 0.01,
                "files": [],
                "copy_list": {"baseline": 7, "current": 7, "ok": False},
                "baseline": {"copy_list_version": 7},
                "status": "recorded",
                "state": "present",
            },
        )
        for host in ("smssite", "logon01", "logon02")
    ),
    "sms_logon_wait": {
        "smssite": {
            "changed": False,
            "converged": True,
            "elapsed": 1.2,
            "files": [],
            "missing": [],
            "copy_list": {"baseline": 7, "current": 8, "ok": True},
            "status": "converged",
            "state": "converged",
        },
        "logon01": {
            "changed": False,
            "converged": True,
            "elapsed": 1.3,
            "files": [],
            "missing": [],
            "copy_list": {"baseline": 7, "current": 8, "ok": True},
            "status": "converged",
            "state": "converged",
        },
        "logon02": {
            "failed": True,
            "converged": False,
            "elapsed": 30.0,
            "files": [],
            "missing": ["X86.bin/Smsrun32.exe", "copy list version"],
            "status": "lagging",
            "state": "converged",
            "msg": "logon02: timed out after 30s waiting for X86.bin/Smsrun32.exe",
        },
    },
    "sms_client_upgrade": {
        # serial [1, 2, 4], max_fail_percentage 20: wave 3 fails too much, wave 4 never starts
        # (c03 is unreachable: see the inventory)
        "c01": client("upgraded", 2, reboot_required=True),
        "c02": client("unchanged"),
        "c04": client("deferred", pending_restart=True),
        "c05": {"failed": True, "msg": "c05: SMS.INI not found at /x/SMS.INI; check sms_drive_root"},
        "c06": client("skipped", skipped=True, msg="logon server LOGON02 has not converged"),
        "c07": client("upgraded", 2, reboot_required=True),
        "c08": client("upgraded", 2),
        "c09": client("upgraded", 2),
    },
    "sms_client_info": dict(
        (
            host,
            {
                "changed": False,
                "status": "compliant" if host in ("c01", "c02") else "not_compliant",
                "compliance": {
                    "compliant": host in ("c01", "c02"),
                    "files": [],
                    "setup_phase": "installed",
                    "copy_list_version": 8,
                    "logon_server": "LOGON01",
                    "smsrun32": {"count": 2 if host == "c04" else 1, "hung": host == "c04"},
                    "error": None,
                },
            },
        )
        for host in CLIENTS
        if host != UNREACHABLE
    ),
}
# what the world says each client ends as (c08, c09: the wave that never ran)
EXPECTED_CLIENTS = {
    "c01": ("done", 1),
    "c02": ("done", 2),
    "c03": ("unreachable", 2),
    "c04": ("deferred", 3),
    "c05": ("failed", 3),
    "c06": ("skipped", 3),
    "c07": ("done", 3),
    "c08": ("not_reached", None),
    "c09": ("not_reached", None),
}

ROLLOUT = """
- name: Plan
  hosts: localhost
  gather_facts: false
  tasks:
    - name: plan | Load the manifest
      ansible.legacy.sms_hotfix_manifest: {world: "{{ world }}", host: "{{ inventory_hostname }}"}

- name: Site server
  hosts: "{{ site_group | default('sms_site') }}"
  gather_facts: false
  tasks:
    - name: site | Take the rollout lock
      sms_rollout_lock: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
    - name: site | Stage the hotfix
      ansible.legacy.sms_hotfix_stage: {world: "{{ world }}", host: "{{ inventory_hostname }}"}

- name: Logon servers
  hosts: sms_logon
  gather_facts: false
  tasks:
    - name: logon | Record the baseline
      sms_copy_list_baseline: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
    - name: logon | Wait for convergence
      sms_logon_wait: {world: "{{ world }}", host: "{{ inventory_hostname }}"}

- name: Clients
  hosts: sms_clients
  gather_facts: false
  serial: [1, 2, 4]
  max_fail_percentage: 20
  tasks:
    - name: client | Upgrade
      ansible.legacy.sms_client_upgrade: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
"""

COMPLIANCE = """
- name: Compliance
  hosts: sms_clients
  gather_facts: false
  tasks:
    - name: compliance | Read the client state
      sms_client_info: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
"""

SIMPLE = """
- name: Site server
  hosts: sms_site
  gather_facts: false
  tasks:
    - name: site | Stage the hotfix
      sms_hotfix_stage: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
"""


@pytest.fixture
def project(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    for name in WORLD:
        (library / ("%s.py" % name)).write_text(STUB % name)
    (tmp_path / "world.json").write_text(json.dumps(WORLD))
    hosts = [
        "all:",
        "  vars:",
        "    ansible_connection: local",
        "    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"",
        "    world: %s" % (tmp_path / "world.json"),
        "  children:",
        "    sms_site:",
        "      hosts:",
        "        smssite:",
        "    sms_logon:",
        "      hosts:",
        "        smssite:",
        "        logon01:",
        "        logon02:",
        "    sms_clients:",
        "      hosts:",
    ]
    for host in CLIENTS:
        hosts.append("        %s:" % host)
        if host == UNREACHABLE:
            hosts += [
                "          ansible_connection: ssh",
                "          ansible_host: 127.0.0.1",
                "          ansible_port: 1",
                "          ansible_user: nobody",
            ]
    (tmp_path / "hosts.yml").write_text("\n".join(hosts) + "\n")
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\ninventory = %s\nlibrary = %s\ncollections_path = %s\n"
        "callbacks_enabled = sms.hotfix.sms_rollout_report\nstdout_callback = ansible.builtin.default\n"
        "gathering = explicit\nretry_files_enabled = false\nhost_key_checking = false\n"
        "local_tmp = %s\nforks = 5\n[ssh_connection]\nssh_args = -o ConnectTimeout=3\n"
        % (tmp_path / "hosts.yml", library, COLLECTIONS, tmp_path / ".ansible-tmp")
    )
    (tmp_path / "rollout.yml").write_text(ROLLOUT)
    (tmp_path / "compliance.yml").write_text(COMPLIANCE)
    (tmp_path / "simple.yml").write_text(SIMPLE)
    return tmp_path


def run_playbook(project, playbook, *args, **env_extra):
    env = dict(os.environ)
    env.pop("SMS_REPORT_DISABLE", None)
    env.update(
        {
            "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
            "SMS_REPORT_DIR": str(project / "reports"),
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    env.update(env_extra)
    return subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), str(project / playbook)] + list(args),
        cwd=str(project),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def report_folders(base):
    """Every report folder under base (AWX runs nest theirs in a workflow's folder)."""
    return sorted(folder for folder, _dirs, names in os.walk(str(base)) if "report.json" in names)


def load_checked(folder):
    """report.json valid against the schema, junit.xml parsed, report.html present."""
    with open(os.path.join(folder, "report.json")) as handle:
        report = json.load(handle)
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(report)
    junit = ET.parse(os.path.join(folder, "junit.xml")).getroot()
    with open(os.path.join(folder, "report.html"), encoding="utf-8") as handle:
        page = handle.read()
    return report, junit, page


def test_rollout_report_matches_the_world(project):
    proc = run_playbook(project, "rollout.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out  # c05 failed, c03 unreachable, logon02 timed out
    folders = report_folders(project / "reports")
    assert len(folders) == 1, out
    assert os.path.basename(folders[0]).endswith("Z-rollout")
    report, junit, page = load_checked(folders[0])

    assert report["playbook"] == "rollout.yml"
    assert report["hotfix"] == {
        "kb": "Q216552",
        "title": WORLD["sms_hotfix_manifest"]["localhost"]["manifest"]["title"],
    }
    assert report["plan"]["platforms"] == {"x86": ["Smsrun32.exe", "Smssrv32.exe"]}
    assert report["plan"]["payload_verified"] is True
    assert report["check_mode"] is False
    assert report["lock"]["holder"] == "test" and report["lock"]["ok"] is True

    site = report["site"]
    assert site["host"] == "smssite" and site["status"] == "staged"
    assert site["files_changed"] == sum(1 for f in WORLD["sms_hotfix_stage"]["smssite"]["files"] if f["changed"]) == 4
    assert site["system_map"]["bumped"] is True

    logon = {entry["host"]: entry for entry in report["logon_servers"]}
    assert list(logon) == ["smssite", "logon01", "logon02"]
    assert (logon["smssite"]["status"], logon["smssite"]["elapsed"]) == ("converged", 1.2)
    assert (logon["logon01"]["status"], logon["logon01"]["elapsed"]) == ("converged", 1.3)
    assert logon["logon02"]["status"] == "failed"
    assert logon["logon02"]["missing"] == WORLD["sms_logon_wait"]["logon02"]["missing"]
    assert "timed out" in logon["logon02"]["msg"]

    clients = {entry["host"]: entry for entry in report["clients"]}
    assert {h: (c["status"], c["wave"]) for h, c in clients.items()} == EXPECTED_CLIENTS
    assert clients["c01"]["detail"] == "upgraded" and clients["c01"]["files_changed"] == 2
    assert clients["c02"]["detail"] == "unchanged" and clients["c02"]["files_changed"] == 0
    assert clients["c07"]["reboot_required"] is True and clients["c04"]["pending_restart"] is True
    assert clients["c06"]["detail"] == "skipped" and "has not converged" in clients["c06"]["msg"]
    assert "SMS.INI not found" in clients["c05"]["msg"]
    totals = report["totals"]["clients"]
    for status in ("done", "failed", "skipped", "deferred", "unreachable", "not_reached"):
        assert totals[status] == sum(1 for s, _wave in EXPECTED_CLIENTS.values() if s == status), status
    assert totals["hosts"] == len(CLIENTS)
    assert [
        (w["wave"], w["planned"], w["done"], w["failed"], w["skipped"], w["deferred"], w["unreachable"])
        for w in report["waves"]
    ] == [(1, 1, 1, 0, 0, 0, 0), (2, 2, 1, 0, 0, 0, 1), (3, 4, 1, 1, 1, 1, 0)]
    assert report["client_plan"][0]["waves"] == [1, 2, 4, 2]
    assert report["totals"]["logon_servers"]["converged"] == 2 and report["totals"]["logon_servers"]["failed"] == 1
    assert report["ok"] is False
    assert report["ansible_stats"]["c05"]["failures"] == 1 and report["ansible_stats"]["c03"]["unreachable"] == 1

    suites = {suite.get("name"): suite for suite in junit.findall("testsuite")}
    assert set(suites) == {"site server", "logon servers", "clients"}
    cases = {suite: {case.get("name"): case for case in suites[suite].findall("testcase")} for suite in suites}
    assert sorted(cases["clients"]) == CLIENTS
    assert sorted(cases["logon servers"]) == ["logon01", "logon02", "smssite"]
    assert list(cases["site server"]) == ["smssite"]
    assert cases["clients"]["c05"].find("failure") is not None
    assert "SMS.INI not found" in cases["clients"]["c05"].find("failure").get("message")
    assert cases["clients"]["c03"].find("failure") is not None
    for host in ("c04", "c06", "c08", "c09"):
        assert cases["clients"][host].find("skipped") is not None, host
    for host in ("c01", "c02", "c07"):
        assert cases["clients"][host].find("failure") is None and cases["clients"][host].find("skipped") is None
    assert cases["logon servers"]["logon02"].find("failure") is not None
    assert suites["clients"].get("failures") == "2" and suites["clients"].get("skipped") == "4"

    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "&lt;at&gt; 90% CPU &amp; IE4" in page and "<at>" not in page  # escaped text
    for host in CLIENTS:
        assert ">%s<" % host in page

    # the picture: the outcome first, a bar per wave (wave 4 never ran), the timeline of the tiers
    dom = parse(page)
    assert dom.by_id("outcome").attrs["data-level"] == "red"
    bars = dom.by_id("wave-chart").find_all("g", cls="wave")
    assert [
        (g.attrs["data-wave"], g.attrs["data-done"], g.attrs["data-failed"], g.attrs["data-not-reached"]) for g in bars
    ] == [("1", "1", "0", "0"), ("2", "1", "0", "0"), ("3", "1", "1", "0"), ("4", "0", "0", "2")]
    spans = [(s["kind"], s["label"] if s["kind"] != "wave" else s["wave"]) for s in report["timeline"]]
    assert [span for span in spans if span[0] != "host"] == [
        ("play", "plan"),
        ("play", "stage"),
        ("play", "logon wait"),
        ("wave", 1),
        ("wave", 2),
        ("wave", 3),
    ]
    # each logon server's wait, in whichever order the forks started them
    assert sorted(span[1] for span in spans if span[0] == "host") == ["logon01", "logon02", "smssite"]
    assert [s["start"] for s in report["timeline"]] == sorted(s["start"] for s in report["timeline"])
    assert [r.attrs["data-status"] for r in dom.by_id("clients").find("tbody").find_all("tr")][:2] == [
        "failed",
        "unreachable",
    ]

    # the operator's summary, after the recap
    assert "SMS rollout: clients — 9 hosts in 4 waves: 1, 2, 4, 2" in out
    assert "SMS rollout Q216552 — report: reports/" in out
    assert "site server   smssite    staged (4 files changed, System.map bumped)" in out
    assert "logon servers 2/3 converged  smssite 1.2s  logon01 1.3s  logon02 FAILED" in out
    assert (
        "clients       wave 1: 1 done | wave 2: 1 done, 1 unreachable | wave 3: 1 done, 1 failed, 1 skipped, "
        "1 deferred | not reached: 2 | skipped: 1 | deferred: 1 | unreachable: 1"
    ) in out
    # the clients that need a look, by name, and the command that goes on
    for line in (
        "              failed (1): c05",
        "              unreachable (1): c03",
        "              not reached (2): c08, c09",
    ):
        assert line in out.splitlines(), line
    # why the waves stopped, with the arithmetic ansible-core's max_fail_percentage applied
    assert report["stop"] == {
        "wave": 3,
        "waves": 4,
        "failed_or_unreachable": 1,
        "size": 4,
        "percent": 25.0,
        "threshold": 20.0,
        "hosts": ["c05"],
        "not_reached": 2,
    }
    assert (
        "stopped       wave 3: 1 of 4 failed or unreachable = 25 % > 20 % (sms_rollout_max_fail_percentage): "
        "wave 4 of 4 not started, 2 clients not reached"
    ) in out.splitlines()
    assert "wave 3: 1 of 4 failed or unreachable = 25 % > 20 %" in dom.by_id("outcome").text
    # the next step: fix, then the exact command, with the ansible-playbook that ran (not a bare name:
    # outside the virtualenv that is not on PATH)
    last = proc.stdout.rstrip().splitlines()[-1]
    assert last == (
        "go on         fix c05 (why: above and in report.html), then run again: %s %s  (a re-run goes "
        "on where this one stopped; what is done reports no change)"
        % (os.path.join(BIN, "ansible-playbook"), "rollout.yml")
    ), last
    assert report["next_step"] == {"label": "go on", "text": last[len("go on         ") :]}
    assert dom.by_id("next-step").text.startswith("go on: fix c05")
    # one line per wave as its results arrive, in the logon waiter's voice
    for line in (
        r"wave 1/4 finished after \d+\.\ds: 1 done, 0 failed of 1",
        r"wave 2/4 finished after \d+\.\ds: 1 done, 0 failed, 1 unreachable of 2",
        r"wave 3/4 finished after \d+\.\ds: 1 done, 1 failed, 1 skipped, 1 deferred of 4",
    ):
        assert re.search(r"^sms_client_upgrade: %s$" % line, out, re.M), line
    assert "wave 4/4" not in out


def test_compliance_report(project):
    proc = run_playbook(project, "compliance.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out  # c03 unreachable
    report, junit, _page = load_checked(report_folders(project / "reports")[0])
    comp = {entry["host"]: entry for entry in report["compliance"]}
    expected = WORLD["sms_client_info"]
    assert sorted(comp) == sorted(expected)
    for host, entry in comp.items():
        assert entry["compliant"] is expected[host]["compliance"]["compliant"]
        assert entry["copy_list_version"] == 8
    assert report["totals"]["compliance"] == {"hosts": 8, "compliant": 2, "not_compliant": 6}
    assert report["clients"] == [] and report["site"] is None
    suite = [s for s in junit.findall("testsuite") if s.get("name") == "compliance"][0]
    assert len(suite.findall("testcase")) == 8 and suite.get("failures") == "6"
    assert "compliance    2/8 compliant" in out
    # by name, sorted, with the hung SMSRUN32 state the JSON has
    assert [entry["host"] for entry in report["compliance"]] == sorted(comp)
    missing = sorted(h for h in comp if not comp[h]["compliant"])
    assert "              not compliant (6): %s" % ", ".join(missing) in out.splitlines()
    hung = sorted(h for h in comp if (comp[h].get("smsrun32") or {}).get("hung"))
    assert hung, "the world has a hung client"
    assert "              SMSRUN32 hung (%d): %s" % (len(hung), ", ".join(hung)) in out.splitlines()


def test_check_mode_and_limit(project):
    proc = run_playbook(project, "rollout.yml", "--check", "--limit", "localhost,sms_site,sms_logon,c01,c02")
    out = proc.stdout + proc.stderr
    report, junit, _page = load_checked(report_folders(project / "reports")[0])
    assert report["check_mode"] is True
    assert "CHECK MODE" in out and "would stage" in out
    # --limit is honoured: only the limited clients are targets
    assert sorted(c["host"] for c in report["clients"]) == ["c01", "c02"]
    assert report["client_plan"][0]["waves"] == [1, 1]
    # and the summary says the run was limited, and to what
    assert report["limit"] == "localhost,sms_site,sms_logon,c01,c02"
    assert (
        "limited to    localhost,sms_site,sms_logon,c01,c02 (--limit): hosts outside it were not part of this run"
    ) in out.splitlines()
    assert "LIMITED to localhost,sms_site,sms_logon,c01,c02" in _page
    # a preview says what would happen, not what was done
    assert "reboot required" not in out
    assert any(
        line.strip().startswith("would need a reboot (client service would change): ") for line in out.splitlines()
    ), out


def test_templated_hosts_are_resolved(project):
    # the play's hosts keyword is a template; the callback sees it templated
    proc = run_playbook(project, "rollout.yml", "-e", "site_group=sms_logon", "--limit", "localhost,sms_logon")
    report, _junit, _page = load_checked(report_folders(project / "reports")[0])
    assert sorted(s["host"] for s in report["site_servers"]) == ["logon01", "logon02", "smssite"], (
        proc.stdout + proc.stderr
    )


def test_unwritable_report_dir_warns_and_does_not_change_the_run(project):
    good = run_playbook(project, "simple.yml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(report_folders(project / "reports")) == 1
    bad = run_playbook(project, "simple.yml", SMS_REPORT_DIR="/dev/null/x")
    out = bad.stdout + bad.stderr
    assert bad.returncode == 0, out
    assert "could not write the report folder under '/dev/null/x'" in out
    assert "report: not written" in out
    assert "site server   smssite    staged" in out
    assert not os.path.exists("/dev/null/x")


AWX = {
    "awx_job_id": 123,
    "awx_workflow_job_id": 45,
    "awx_workflow_job_name": "SMS rollout",
    "awx_job_template_name": "SMS site",
    "awx_user_name": "alice",
    "tower_job_id": 999,
}


def test_an_awx_job_names_its_folder_and_the_header(project):
    proc = run_playbook(project, "simple.yml", "-e", json.dumps(AWX))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    folders = report_folders(project / "reports")
    assert len(folders) == 1, out
    parent, name = os.path.split(folders[0])
    # every job of one workflow in the workflow's folder; each job (each slice) in its own
    assert os.path.basename(parent) == "awx-workflow-45" and re.match(r"^\d{8}T\d{6}Z-simple-job-123$", name)
    report, _junit, page = load_checked(folders[0])
    assert report["awx"] == {
        "job_id": 123,
        "workflow_job_id": 45,
        "workflow_job_name": "SMS rollout",
        "job_template_name": "SMS site",
        "user_name": "alice",
    }
    header = parse(page).find("p", cls="awx").text
    assert "AWX workflow job 45" in header and "launched by alice" in header and "job template SMS site" in header
    assert proc.stdout.rstrip().splitlines()[-1] == (
        "undo          launch the rollback job template (playbooks/rollback.yml)"
    )

    # the tower_* twins alone (older AWX and Tower)
    proc = run_playbook(
        project, "simple.yml", "-e", json.dumps({"tower_job_id": 7, "tower_job_template_name": "legacy"})
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = [f for f in report_folders(project / "reports") if "job-7" in f][0]
    assert os.path.dirname(folder) == str(project / "reports")
    report, _junit, _page = load_checked(folder)
    assert report["awx"] == {"job_id": 7, "job_template_name": "legacy"}


def test_a_slice_files_its_report_under_the_run_the_plan_handed_it(project):
    # A slice of a sliced node runs in an inner workflow (awx_workflow_job_id 46);
    # the plan node's set_stats named the run (sms_awx_workflow_job_id 45).
    slice_vars = dict(AWX, awx_workflow_job_id=46, awx_job_id=124, sms_awx_workflow_job_id=45)
    proc = run_playbook(project, "simple.yml", "-e", json.dumps(slice_vars))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = report_folders(project / "reports")
    assert len(folders) == 1 and os.path.basename(os.path.dirname(folders[0])) == "awx-workflow-45", folders
    assert folders[0].endswith("-simple-job-124")
    report, _junit, _page = load_checked(folders[0])
    assert report["awx"]["workflow_job_id"] == 45


def test_disabled_report_writes_nothing(project):
    proc = run_playbook(project, "simple.yml", SMS_REPORT_DISABLE="true")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert report_folders(project / "reports") == []
    assert "report: disabled" in out


def test_report_dir_from_ini_is_relative_to_the_cfg(project):
    cfg = project / "ansible.cfg"
    cfg.write_text(cfg.read_text() + "[callback_sms_rollout_report]\nreport_dir = ini-reports\n")
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_CONFIG=str(cfg))
    env.pop("SMS_REPORT_DIR", None)
    env.pop("SMS_REPORT_DISABLE", None)
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), str(project / "simple.yml")],
        cwd=str(elsewhere),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(report_folders(project / "ini-reports")) == 1
    assert os.listdir(str(elsewhere)) == []


def test_site_failure_leaves_later_tiers_not_reached(project):
    world = json.loads((project / "world.json").read_text())
    world["sms_hotfix_stage"]["smssite"] = {
        "failed": True,
        "msg": "smssite: X86.bin/Smsrun32.exe is read-only; nothing was changed",
    }
    (project / "world.json").write_text(json.dumps(world))
    proc = run_playbook(project, "rollout.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    report, junit, _page = load_checked(report_folders(project / "reports")[0])
    assert report["site"]["status"] == "failed" and "read-only" in report["site"]["msg"]
    assert [e["status"] for e in report["logon_servers"]] == ["not_reached"] * 3
    assert [e["status"] for e in report["clients"]] == ["not_reached"] * len(CLIENTS)
    assert report["waves"] == [] and report["ok"] is False
    assert len(junit.findall("testsuite/testcase/skipped")) == 3 + len(CLIENTS)
    assert "site server   smssite    failed (smssite: X86.bin/Smsrun32.exe is read-only" in out
    assert "logon servers 0/3 converged  smssite NOT REACHED" in out
    assert "not reached: 9" in out


def test_report_under_ansible_runner(project, monkeypatch):
    ansible_runner = pytest.importorskip("ansible_runner")
    # ansible-runner sets ANSIBLE_CALLBACK_PLUGINS to its own folder; the
    # callback is enabled by its FQCN (sms.hotfix.sms_rollout_report) and
    # found in the collection, so no callback folder beside the playbook is
    # needed (what AWX projects rely on).
    private = project / "runner"
    (private / "project").mkdir(parents=True)
    (private / "project" / "rollout.yml").write_text(ROLLOUT)
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.delenv("SMS_REPORT_DISABLE", raising=False)
    result = ansible_runner.run(
        private_data_dir=str(private),
        playbook="rollout.yml",
        quiet=True,
        envvars={"ANSIBLE_CONFIG": str(project / "ansible.cfg"), "SMS_REPORT_DIR": str(project / "runner-reports")},
    )
    stdout = result.stdout.read()
    assert result.rc == 2, stdout
    folders = report_folders(project / "runner-reports")
    assert len(folders) == 1, stdout
    report, junit, _page = load_checked(folders[0])
    assert {c["host"]: (c["status"], c["wave"]) for c in report["clients"]} == EXPECTED_CLIENTS
    assert len(junit.findall("testsuite/testcase")) == 1 + 3 + len(CLIENTS)
    assert "logon servers 2/3 converged" in stdout


# ---- the callback object itself ---------------------------------------------


class Boom:
    def __getattr__(self, name):
        raise RuntimeError("broken object")


class Display:
    verbosity = 0

    def __init__(self):
        self.warnings, self.lines = [], []

    def warning(self, msg, *args, **kwargs):
        self.warnings.append(msg)

    def display(self, msg, *args, **kwargs):
        self.lines.append(msg)

    def vvv(self, msg, *args, **kwargs):
        pass


def test_callback_methods_never_raise():
    callback = sms_rollout_report.CallbackModule(display=Display())
    callback._display = Display()
    for method in (
        "v2_playbook_on_start",
        "v2_playbook_on_play_start",
        "v2_runner_on_ok",
        "v2_runner_on_skipped",
        "v2_runner_on_unreachable",
        "v2_playbook_on_stats",
    ):
        getattr(callback, method)(Boom())
    callback.v2_runner_on_failed(Boom(), ignore_errors=False)
    callback.v2_playbook_on_task_start(Boom(), False)
    callback.v2_runner_on_start(Boom(), Boom())
    assert len(callback._display.warnings) == 9
    assert all("the run goes on" in w for w in callback._display.warnings)


def test_serial_batches_match_the_filter():
    from ansible_collections.sms.hotfix.plugins.filter.sms_rollout import sms_waves

    for count in (0, 1, 5, 12, 100):
        for serial in ([], [1], [1, "10%", "50%", "100%"], [2, "30%"], ["0"], [3]):
            assert sms_rollout_report.serial_batches(count, serial) == sms_waves(count, serial), (count, serial)


def test_baseline_alone_is_not_convergence(project):
    (project / "baseline.yml").write_text(
        ROLLOUT.split("- name: Clients", maxsplit=1)[0].replace(
            """    - name: logon | Wait for convergence
      sms_logon_wait: {world: "{{ world }}", host: "{{ inventory_hostname }}"}
""",
            "",
        )
    )
    proc = run_playbook(project, "baseline.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    report, _junit, _page = load_checked(report_folders(project / "reports")[0])
    assert [(e["host"], e["status"]) for e in report["logon_servers"]] == [
        ("smssite", "baseline"),
        ("logon01", "baseline"),
        ("logon02", "baseline"),
    ]
    assert report["clients"] == [] and report["totals"]["logon_servers"]["baseline"] == 3
    assert "logon servers 0/3 converged  smssite BASELINE  logon01 BASELINE  logon02 BASELINE" in out


# ---- the model reads what a module returned (status, state), never the task's arguments ----

from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_report_model as report_model  # noqa: E402


def lock_model(*results):
    m = report_model.RunModel(playbook="rollout.yml")
    m.open_span("Site server", None)
    for data, task_state in results:
        m.record(
            "sms_rollout_lock", "smssite", data, failed=bool(data.get("failed")), task_state=task_state, tiers={"site"}
        )
    return m


def test_lock_direction_is_the_state_the_module_returned():
    taken = {"changed": False, "status": "acquired", "state": "acquired", "lock": {"holder": "me", "started": "x"}}
    released = {"changed": False, "status": "released", "state": "released", "lock": {"holder": "me"}}
    # the task's own `state` says nothing: an acquire run with state=released in its args is still an acquire
    m = lock_model((taken, "released"))
    assert m.lock["holder"] == "me" and m.lock["released"] is False and m.unlock is None
    m = lock_model((taken, None), (released, None))
    assert m.lock["released"] is True and m.unlock["ok"] is True
    # a refused release is a release that failed, whatever the task's args said
    refused = {"failed": True, "status": "refused", "state": "released", "msg": "held by bob"}
    m = lock_model((taken, None), (refused, "acquired"))
    assert m.lock["released"] is False and m.unlock["ok"] is False
    assert m.run_failures["smssite"] == "lock not released: held by bob"
    # refused arguments (the module never ran, no state): a failure, neither taken nor released
    m = lock_model(({"failed": True, "msg": "Unsupported parameters"}, "released"))
    assert m.lock is None and m.unlock is None
    assert m.run_failures["smssite"] == "rollout lock: Unsupported parameters"
    assert m.results["site"]["smssite"]["status"] == "failed"


def test_wave_gate_stop_is_read_from_its_status():
    gate = {"wave": 2, "waves": 3, "threshold": 20, "stopped": True, "not_reached": ["c02", "c03"]}
    m = report_model.RunModel(playbook="rollout.yml")
    m.record("sms_wave_gate", "c02", {"failed": True, "status": "stopped", "wave_gate": gate, "msg": "no"}, failed=True)
    assert m.gate["not_reached"] == ["c02", "c03"] and m.max_fail_percentage == 20
    m = report_model.RunModel(playbook="rollout.yml")
    m.record(
        "sms_wave_gate",
        "c02",
        {"failed": True, "status": "outside_window", "msg": "outside", "wave_gate": dict(gate, outside_window=True)},
        failed=True,
    )
    assert m.gate is None and m.run_failures["wave gate"] == "outside"


@pytest.mark.parametrize("action", ["sms_client_info", "sms_client_facts"])
def test_compliance_is_recorded_under_the_new_and_the_old_name(action):
    m = report_model.RunModel(playbook="compliance.yml")
    m.record(action, "c01", {"status": "not_compliant", "compliance": {"compliant": False, "kb": "Q216552"}})
    assert m.compliance["c01"]["compliant"] is False and m.hotfix["kb"] == "Q216552"


def site_model(data, task_state=None):
    m = report_model.RunModel(playbook="rollout.yml")
    m.open_span("Site server", None)
    m.record(
        "sms_hotfix_stage", "smssite", data, failed=bool(data.get("failed")), task_state=task_state, tiers={"site"}
    )
    return m.results["site"]["smssite"]


@pytest.mark.parametrize(
    "data, task_state, status, action",
    [
        # state=absent is the rollback: read from what the module returned, whatever the task said
        (
            {"changed": True, "status": "rolled_back", "state": "absent", "files": []},
            "absent",
            "rolled_back",
            "rollback",
        ),
        (
            {"changed": True, "status": "would_roll_back", "state": "absent", "files": []},
            None,
            "rolled_back",
            "rollback",
        ),
        (
            {"changed": False, "status": "nothing_to_roll_back", "state": "absent", "files": []},
            None,
            "unchanged",
            "rollback",
        ),
        ({"changed": True, "status": "staged", "state": "present", "files": []}, "rolled_back", "staged", "stage"),
        ({"changed": True, "status": "would_stage", "state": "present", "files": []}, None, "staged", "stage"),
        ({"changed": False, "status": "unchanged", "state": "present", "files": []}, None, "unchanged", "stage"),
        # refused arguments: the module never ran; the task's own state names the job
        ({"failed": True, "msg": "Unsupported parameters"}, "absent", "failed", "rollback"),
    ],
)
def test_the_site_tier_is_read_from_the_stage_modules_status(data, task_state, status, action):
    site = site_model(data, task_state)
    assert (site["status"], site["action"]) == (status, action)
