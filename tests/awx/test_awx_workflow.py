"""The AWX workflow of awx/assets.yml rehearsed on AWX's engine against the
lab: every node an ansible-runner job with AWX's variables, the clients node
as concurrent slices of the inventory, the approval given, refused or timed
out here, the failure path, relaunch. Asserts on the lab's files, the jobs'
events and the workflow's one report.

The lab (conftest.py): client01 (x86, hung; the canary), client02 (x86),
client03 (Alpha); 4 slices of 6 hosts: [client01, logon02],
[client02, smssite], [client03], [logon01].
"""

import collections
import json
import os

import jsonschema
import pytest

from awx_lab import CANARY
from awx_rehearsal import REPO, job_report_folder

pytestmark = pytest.mark.slow

WORKFLOW = "SMS Q216552 rollout"
HOLDER = "awx workflow " + WORKFLOW
COMPLIANCE_SCHEDULE = "SMS Q216552 compliance, nightly"
FULL_PATH = ["plan", "site", "logon", "canary", "approve", "clients", "unlock", "report"]
with open(os.path.join(REPO, "docs", "report.schema.json"), encoding="utf-8") as _handle:
    SCHEMA = json.load(_handle)


def describe(workflow_job):
    """What ran, for assertion messages: each job's status and, for the
    failed ones, the end of its output."""
    lines = ["%r ran %s" % (workflow_job, workflow_job.ran())]
    for job in workflow_job.all_jobs():
        lines.append("  %r" % job)
        if job.status != "successful":
            lines.append("    " + job.stdout[-2500:].replace("\n", "\n    "))
    return "\n".join(lines)


def merged_report(site, workflow_job):
    path = os.path.join(site.reports, "awx-workflow-%d" % workflow_job.id, "workflow", "report.json")
    assert os.path.exists(path), "no workflow report at %s\n%s" % (path, describe(workflow_job))
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    jsonschema.validate(report, SCHEMA)
    return report


def statuses(report):
    return dict((entry["host"], entry["status"]) for entry in report["clients"])


def upgrades(workflow_job):
    """host -> how many jobs of the workflow upgraded it (changed files)."""
    count = collections.Counter()
    for job in workflow_job.all_jobs():
        for host, result in job.results("sms_client_upgrade").items():
            if result.get("status") == "upgraded":
                count[host] += 1
    return dict(count)


def test_the_workflow_converges_every_client_in_concurrent_slices(fresh):
    site, awx = fresh, fresh.awx
    clients = site.clients()

    # the nightly compliance schedule fails while clients lack the hotfix
    compliance = awx.run_schedule(COMPLIANCE_SCHEDULE)
    assert compliance.status == "failed", compliance.stdout[-2000:]
    assert compliance.extra_vars["sms_compliance_fail"] is True
    assert compliance.extra_vars["awx_schedule_name"] == COMPLIANCE_SCHEDULE
    assert "3 client(s) do not have the hotfix: client01, client02, client03" in compliance.stdout

    asked = []
    workflow = awx.launch_workflow(approval=lambda wj, node: asked.append(node.identifier) or "approve")
    assert workflow.status == "successful", describe(workflow)
    assert workflow.ran() == FULL_PATH
    assert asked == ["approve"]
    assert all(site.has_hotfix(client) for client in clients), describe(workflow)

    # the canary's clients are upgraded by the canary job, once: the sliced
    # job only finds them done
    canary = workflow.node("canary").job
    assert sorted(canary.results("sms_client_upgrade")) == CANARY
    assert upgrades(workflow) == dict((client, 1) for client in clients)
    assert all(canary.results("sms_client_upgrade")[c]["status"] == "upgraded" for c in CANARY)

    # AWX's slicing: min(4, 6 hosts) concurrent jobs, slice i = every 4th host from the i-th
    sliced = workflow.node("clients").job
    assert sliced.is_sliced_job and [job.slice_number for job in sliced.jobs] == [1, 2, 3, 4]
    hosts = awx.inventory.hosts
    assert hosts == sorted(clients + site.lab.logon_servers())
    for job in sliced.jobs:
        assert job.inventory_hosts == hosts[job.slice_number - 1 :: 4]
        assert job.status == "successful", describe(workflow)
    assert max(job.started for job in sliced.jobs) < min(job.finished for job in sliced.jobs), "slices ran one by one"
    # a slice of servers only, and slices without a client of one platform, pass cleanly
    by_hosts = dict((tuple(job.inventory_hosts), job) for job in sliced.jobs)
    assert by_hosts[("logon01",)].results("sms_client_upgrade") == {}
    assert set(by_hosts[("client03",)].results("sms_client_upgrade")) == {"client03"}  # Alpha only
    assert set(by_hosts[("client02", "smssite")].results("sms_client_upgrade")) == {"client02"}  # x86 only

    # a slice's own awx_workflow_job_id is the slicing's inner workflow; the
    # plan node's artifact tells it the run it belongs to
    for job in sliced.jobs:
        assert job.extra_vars["awx_workflow_job_id"] == sliced.id != workflow.id
        assert job.extra_vars["sms_awx_workflow_job_id"] == workflow.id
    # survey defaults reached every node, as AWX merges them
    assert canary.extra_vars["sms_rollout_waves"] == "1,10%,50%,100%"
    assert canary.extra_vars["sms_workflow_on_failure"] == "stop"

    # the lock: taken by the workflow, never touched by the slices, released by unlock
    lock = workflow.node("site").job.results("sms_rollout_lock")["smssite"]
    assert lock["lock"]["holder"] == HOLDER
    for job in sliced.jobs:
        assert job.results("sms_rollout_lock") == {}
    assert workflow.node("unlock").job.results("sms_rollout_lock")["smssite"]["released"] is True
    assert site.lock() is None

    # every slice wrote its own report folder
    folders = [job_report_folder(awx, job) for job in sliced.jobs]
    assert all(folders) and len(set(folders)) == 4, folders
    for job in sliced.jobs:
        assert "could not write the report folder" not in job.stdout

    # and the run ends with one report for the whole workflow
    report = merged_report(site, workflow)
    assert report["ok"] is True
    assert statuses(report) == dict((client, "done") for client in clients)
    details = dict((entry["host"], entry["detail"]) for entry in report["clients"])
    assert details == {"client01": "unchanged", "client02": "upgraded", "client03": "upgraded"}
    # each client counted once, though the canary ran twice (its own job and its slice)
    assert sum(row["done"] for row in report["waves"]) == 3
    assert report["lock"]["holder"] == HOLDER and report["lock"]["released"] is True
    assert report["site"]["status"] == "staged"
    assert sorted(e["host"] for e in report["logon_servers"] if e["status"] == "converged") == site.lab.logon_servers()
    summary = workflow.node("report").job.stdout
    assert "clients       3: 3 done" in summary and "every client done" in summary

    # and the nightly compliance job passes
    compliance = awx.run_schedule(COMPLIANCE_SCHEDULE)
    assert compliance.status == "successful", compliance.stdout[-2000:]


def test_a_failing_canary_stops_the_workflow_before_the_approval(fresh):
    site, awx = fresh, fresh.awx
    site.break_client("client01")
    others = dict((c, site.client_state(c)) for c in site.clients() if c not in CANARY)

    asked = []
    workflow = awx.launch_workflow(approval=lambda wj, node: asked.append(node.identifier) or "approve")
    assert workflow.ran() == ["plan", "site", "logon", "canary", "on_failure", "unlock", "report"], describe(workflow)
    assert asked == [], "the approval was asked for after a failed canary"
    assert workflow.node("approve").do_not_run and workflow.node("clients").do_not_run
    assert workflow.status == "failed"
    canary = workflow.node("canary").job.results("sms_client_upgrade")["client01"]
    assert canary["_event"] == "runner_on_failed" and "SMS.INI" in canary["msg"]

    # stop was the answer: nothing rolled back, the lock released, no other client touched
    failure_path = workflow.node("on_failure").job
    assert failure_path.status == "successful"
    assert [r["_event"] for r in failure_path.results("sms_hotfix_stage").values()] == ["runner_on_skipped"]
    assert not any((failure_path.stats.get("changed") or {}).values())
    assert "stopping here, nothing is rolled back" in failure_path.stdout
    assert site.lock() is None
    for client, state in others.items():
        assert site.client_state(client) == state, client

    report = merged_report(site, workflow)
    assert report["ok"] is False
    assert statuses(report) == {"client01": "failed", "client02": "not_reached", "client03": "not_reached"}
    summary = workflow.node("report").job.stdout
    assert "failed: client01" in summary and "not reached: client02, client03" in summary


def test_a_refused_or_timed_out_approval_leaves_every_other_client_untouched(fresh):
    site, awx = fresh, fresh.awx
    others = dict((c, site.client_state(c)) for c in site.clients() if c not in CANARY)

    refused = awx.launch_workflow(approval="deny")
    assert refused.ran() == ["plan", "site", "logon", "canary", "approve", "unlock", "report"], describe(refused)
    assert refused.node("approve").job.status == "failed"
    assert refused.node("clients").do_not_run and refused.node("on_failure").do_not_run
    assert all(site.has_hotfix(c) for c in CANARY)
    for client, state in others.items():
        assert site.client_state(client) == state, client
    assert site.lock() is None
    assert statuses(merged_report(site, refused)) == {
        "client01": "done",
        "client02": "not_reached",
        "client03": "not_reached",
    }
    assert refused.status == "failed"  # the report node: not every client done

    timed_out = awx.relaunch(refused, approval="timeout")
    assert timed_out.ran() == refused.ran(), describe(timed_out)
    assert timed_out.node("approve").job.timed_out
    assert timed_out.node("canary").job.results("sms_client_upgrade")["client01"]["status"] == "unchanged"
    for client, state in others.items():
        assert site.client_state(client) == state, client
    assert site.lock() is None


def test_a_failed_slice_takes_the_failure_path_and_the_rollback_restores_every_tier(fresh):
    site, awx = fresh, fresh.awx
    before = site.tiers()
    site.break_client("client03")

    workflow = awx.launch_workflow(extra_vars={"sms_workflow_on_failure": "rollback"})
    assert workflow.ran() == [
        "plan",
        "site",
        "logon",
        "canary",
        "approve",
        "clients",
        "on_failure",
        "unlock",
        "report",
    ], describe(workflow)
    sliced = workflow.node("clients").job
    assert sliced.status == "failed"
    failed = [job for job in sliced.jobs if job.status != "successful"]
    assert [job.inventory_hosts for job in failed] == [["client03"]], describe(workflow)
    assert upgrades(workflow) == {"client01": 1, "client02": 1}, "the other slices ran to their end"

    rollback = workflow.node("on_failure").job
    assert rollback.status == "successful", describe(workflow)
    stage = rollback.results("sms_hotfix_stage")["smssite"]
    assert stage["changed"] and stage["state"] == "absent" and stage["status"] == "rolled_back", stage
    assert workflow.status == "failed"

    site.repair_client("client03")
    after = site.tiers()
    assert after["site"] == before["site"], "Client.src is not byte for byte (and date) the original"
    for key in before:
        assert after[key] == before[key], key
    assert site.lock() is None
    report = merged_report(site, workflow)
    assert report["ok"] is False
    assert report["site"]["status"] == "rolled_back"


def test_relaunching_a_stopped_workflow_goes_on_where_it_stopped_under_the_same_holder(fresh):
    site, awx = fresh, fresh.awx
    site.break_client("client03")

    # the run stops after the failed clients node (canceled there): the lock stays
    first = awx.launch_workflow(cancel_after="clients")
    assert first.status == "canceled" and first.ran() == FULL_PATH[:6], describe(first)
    assert first.node("clients").job.status == "failed"
    assert HOLDER in (site.lock() or ""), site.lock()

    # anyone else is refused while the lock is live, and changes nothing
    state = site.tiers()
    other = awx.launch_job_template("SMS Q216552 site")
    assert other.status == "failed"
    assert "held by " + HOLDER in other.stdout, other.stdout[-2000:]
    assert site.tiers() == state

    site.repair_client("client03")
    second = awx.relaunch(first)
    assert second.status == "successful", describe(second)
    assert second.extra_vars == first.extra_vars
    stage = second.node("site").job.results("sms_hotfix_stage")["smssite"]
    assert stage["changed"] is False, "the relaunch staged the site again"
    assert upgrades(second) == {"client03": 1}, "the relaunch did not go on where the first run stopped"
    assert all(site.has_hotfix(client) for client in site.clients())
    # the report node writes the run's report, but changes nothing the rollout manages
    report_job = second.node("report").job
    assert report_job.status == "successful" and not any((report_job.stats.get("changed") or {}).values()), (
        report_job.stats
    )
    lock = merged_report(site, second)["lock"]
    assert lock["holder"] == HOLDER and lock["released"] is True
    assert site.lock() is None


def test_the_hotfix_reaches_the_jobs_from_the_mounted_store_not_from_the_checkout(fresh):
    site, awx = fresh, fresh.awx
    # the job's project is what git holds: the manifest, no payload
    assert os.path.isfile(os.path.join(awx.project_src, "hotfixes", "Q216552", "manifest.json"))
    assert not os.path.exists(os.path.join(awx.project_src, "hotfixes", "Q216552", "payload"))
    assert os.path.isdir(os.path.join(site.hotfix_store, "payload"))

    # the templates point every job at the store (assets' job_extra_vars)
    plan = awx.launch_job_template("SMS Q216552 plan")
    assert plan.status == "successful", plan.stdout[-2500:]
    assert plan.extra_vars["sms_hotfix_manifest"] == site.hotfix_manifest
    assert os.path.realpath(plan.private_data_dir) not in os.path.realpath(site.hotfix_manifest)

    # the manifest of the checkout alone (the old survey default) has no payload
    # in AWX: the plan fails and touches nothing
    state = site.tiers()
    alone = awx.launch_job_template(
        "SMS Q216552 plan", extra_vars={"sms_hotfix_manifest": "hotfixes/Q216552/manifest.json"}
    )
    assert alone.status == "failed"
    assert "payload" in alone.stdout and "is missing" in alone.stdout, alone.stdout[-2500:]
    assert site.tiers() == state
