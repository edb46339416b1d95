"""awx/assets.yml as AWX will take it: what ansible-lint cannot see.

Lint checks awx/configure.yml's module arguments against the real awx.awx
collection (its args rule). It cannot look inside the data the tasks pass
on: the workflow's nodes (a list of dicts the module does not describe in
its argument spec), the survey, the RRULEs, and whether every key of the data
reaches a task. This checks those against awx.awx's own documentation and
AWX's own rules (survey spec and schedule validation in its API)."""

import ast
import datetime
import itertools
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from awx_rehearsal import ASSETS, REPO, SURVEY_TYPES, survey_defaults, survey_errors

AWX_COLLECTIONS = os.environ.get("SMS_AWX_COLLECTIONS", os.path.join(REPO, ".venv", "awx-collections"))
AWX_MODULES = os.path.join(AWX_COLLECTIONS, "ansible_collections", "awx", "awx", "plugins", "modules")
CONFIGURE = os.path.join(REPO, "awx", "configure.yml")


def module_doc(name):
    path = os.path.join(AWX_MODULES, name + ".py")
    assert os.path.exists(path), "awx.awx is not installed in %s: run make awx-deps" % AWX_COLLECTIONS
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    match = re.search(r"^DOCUMENTATION = (r?'''.*?''')", source, re.S | re.M)
    return yaml.safe_load(ast.literal_eval(match.group(1)))


@pytest.fixture(scope="module")
def configure_text():
    with open(CONFIGURE, encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def tasks():
    with open(CONFIGURE, encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    return plays[0]["tasks"]


def task_for(tasks, module):
    found = [task for task in tasks if "awx.awx." + module in task]
    assert found, "awx/configure.yml has no awx.awx.%s task" % module
    return found


def nodes_of(assets):
    return dict((node["identifier"], node) for node in assets["workflow"]["nodes"])


# ---- the workflow graph -----------------------------------------------------


def test_workflow_nodes_use_only_the_keys_awx_awx_documents(assets):
    doc = module_doc("workflow_job_template")["options"]["workflow_nodes"]["suboptions"]
    ujt_keys = set(doc["unified_job_template"]["suboptions"])
    related_keys = set(doc["related"]["suboptions"])
    for node in assets["workflow"]["nodes"]:
        assert set(node) <= set(doc), (node["identifier"], set(node) - set(doc))
        assert set(node["unified_job_template"]) <= ujt_keys, node["identifier"]
        assert set(node.get("related") or {}) <= related_keys, node["identifier"]
        for kind, targets in (node.get("related") or {}).items():
            if kind in ("success_nodes", "failure_nodes", "always_nodes"):
                assert all(set(target) == {"identifier"} for target in targets), (node["identifier"], kind)


def test_every_edge_names_a_node_and_every_node_a_template(assets):
    nodes = nodes_of(assets)
    assert len(nodes) == len(assets["workflow"]["nodes"]), "node identifiers are not unique"
    templates = dict((t["name"], t) for t in assets["job_templates"])
    for identifier, node in nodes.items():
        for kind in ("success_nodes", "failure_nodes", "always_nodes"):
            for target in (node.get("related") or {}).get(kind) or []:
                assert target["identifier"] in nodes, "%s %s -> %s: no such node" % (identifier, kind, target)
        ujt = node["unified_job_template"]
        if ujt["type"] == "workflow_approval":
            assert ujt.get("timeout", 0) > 0, "approval %s waits for ever" % identifier
        else:
            assert ujt["type"] == "job_template" and ujt["name"] in templates, identifier
            assert ujt["organization"]["name"] == assets["organization"], identifier


def test_the_graph_is_the_rollout_with_its_canary_approval_and_failure_path(assets):
    nodes = nodes_of(assets)

    def edges(identifier, kind):
        return [t["identifier"] for t in (nodes[identifier].get("related") or {}).get(kind) or []]

    parents = set(
        t["identifier"]
        for n in nodes.values()
        for ts in (n.get("related") or {}).values()
        if isinstance(ts, list)
        for t in ts
        if isinstance(t, dict)
    )
    assert sorted(set(nodes) - parents) == ["plan"], "the workflow must have exactly one start: plan"
    path, here = ["plan"], "plan"
    while edges(here, "success_nodes") or edges(here, "always_nodes"):
        (here,) = edges(here, "success_nodes") or edges(here, "always_nodes")
        assert here not in path, "a cycle through %s" % here
        path.append(here)
    assert path == ["plan", "site", "logon", "canary", "approve", "clients", "unlock", "report"]
    for identifier in ("site", "logon", "canary", "clients"):
        assert edges(identifier, "failure_nodes") == ["on_failure"], identifier
    assert edges("on_failure", "always_nodes") == ["unlock"]
    assert edges("approve", "failure_nodes") == ["unlock"]
    assert edges("unlock", "always_nodes") == ["report"]
    assert edges("plan", "failure_nodes") == ["report"]
    templates = dict((t["name"], t) for t in assets["job_templates"])
    canary = templates[nodes["canary"]["unified_job_template"]["name"]]
    clients = templates[nodes["clients"]["unified_job_template"]["name"]]
    assert canary["playbook"] == clients["playbook"] == "playbooks/clients.yml"
    assert canary["limit"] == "clients_canary" and not canary.get("job_slice_count")
    assert clients["job_slice_count"] > 1 and not clients.get("limit")
    assert "job_slice_count" not in nodes["clients"], "the node would override the template's slice count"
    assert nodes["approve"]["unified_job_template"]["type"] == "workflow_approval"


def test_every_template_runs_a_playbook_of_this_checkout(assets):
    for template in assets["job_templates"]:
        path = os.path.join(REPO, template["playbook"])
        assert os.path.isfile(path), template
        with open(path, encoding="utf-8") as handle:
            plays = yaml.safe_load(handle)
        assert isinstance(plays, list) and plays, template["playbook"]


def test_unified_job_template_names_are_unique(assets):
    # a schedule finds its template among all of them by name alone
    names = [assets["project"]["name"], assets["inventory"]["source"]["name"], assets["workflow"]["name"]]
    names += [t["name"] for t in assets["job_templates"]]
    names += [
        n["unified_job_template"]["name"]
        for n in assets["workflow"]["nodes"]
        if n["unified_job_template"]["type"] == "workflow_approval"
    ]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# ---- the survey (AWX's API rules for a survey spec) --------------------------


def test_the_survey_is_valid_for_awx_and_asks_what_the_issue_asks(assets):
    survey = assets["workflow"]["survey"]
    assert isinstance(survey.get("name"), str) and isinstance(survey.get("description"), str)
    assert isinstance(survey.get("spec"), list) and survey["spec"]
    seen = set()
    for question in survey["spec"]:
        for field in ("type", "question_name", "variable"):
            assert isinstance(question.get(field), str), (question, field)
        assert isinstance(question.get("required"), bool), question
        assert question["variable"] not in seen, question["variable"]
        seen.add(question["variable"])
        assert question["type"] in SURVEY_TYPES, question
        if question.get("default") not in (None, ""):
            assert isinstance(question["default"], SURVEY_TYPES[question["type"]]), question
        for key in ("min", "max"):
            assert question.get(key) is None or isinstance(question[key], int), question
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question.get("choices"), question
            assert question.get("default") in question["choices"], question
    assert survey_errors(survey, survey_defaults(survey)) == [], "a default fails its own question"
    assert seen >= {
        "sms_rollout_waves",
        "sms_rollout_max_fail_percentage",
        "sms_rollout_window",
        "sms_rollout_force",
        "sms_hotfix_manifest",
        "sms_workflow_on_failure",
    }
    # the hotfix is where the jobs mount it (the checkout has no payload): the
    # survey's default is the templates' own
    manifest = survey_defaults(survey)["sms_hotfix_manifest"]
    assert os.path.isabs(manifest) and manifest == assets["job_extra_vars"]["sms_hotfix_manifest"]


# ---- schedules (AWX's API rules for an RRULE, parsed by dateutil) -------------


def awx_rrule_errors(value):
    errors = []
    if not re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", value):
        errors.append("DTSTART required")
    if re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", value):
        errors.append("DTSTART cannot be a naive datetime")
    if len(re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", value)) > 1:
        errors.append("one DTSTART only")
    if "rrule:" not in value.lower():
        errors.append("an RRULE is required")
    for forbidden in ("exdate:", "rdate:"):
        if forbidden in value.lower():
            errors.append("%s is not allowed" % forbidden)
    for rule in re.findall(r".*?(RULE\:[^\s]*)", value):
        if "interval" not in rule.lower():
            errors.append("INTERVAL required in %s" % rule)
        if "secondly" in rule.lower():
            errors.append("SECONDLY is not supported")
        if re.match(r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}", rule):
            errors.append("BYDAY with a numeric prefix is not supported")
        if "COUNT" in rule and "UNTIL" in rule:
            errors.append("COUNT and UNTIL together")
    return errors


def occurrences(value, count):
    from dateutil import rrule  # requirements-awx.txt

    return list(itertools.islice(rrule.rrulestr(value, forceset=True), count))


def test_every_schedule_is_a_valid_awx_rrule_on_a_template_that_takes_its_data(assets):
    templates = dict((t["name"], t) for t in assets["job_templates"])
    templates[assets["workflow"]["name"]] = dict(assets["workflow"], survey_enabled=True)
    assert assets["schedules"]
    for schedule in assets["schedules"]:
        assert awx_rrule_errors(schedule["rrule"]) == [], schedule["name"]
        assert len(occurrences(schedule["rrule"], 20)) == 20, schedule["name"]
        template = templates[schedule["unified_job_template"]]
        asked = set(q["variable"] for q in (template.get("survey") or {}).get("spec", []))
        for key in schedule.get("extra_data") or {}:
            assert template.get("ask_variables_on_launch") or key in asked, (schedule["name"], key)
        if template.get("survey"):
            # AWX's rule: the schedule's data as given, a required question needs an answer
            assert survey_errors(template["survey"], schedule.get("extra_data", {})) == [], schedule["name"]


def test_the_rollout_schedule_starts_inside_its_window_and_compliance_runs_nightly(assets):
    from ansible_collections.sms.hotfix.plugins.filter.sms_rollout import sms_in_window

    by_template = dict((s["unified_job_template"], s) for s in assets["schedules"])
    rollout = by_template[assets["workflow"]["name"]]
    window = rollout["extra_data"]["sms_rollout_window"]
    for moment in occurrences(rollout["rrule"], 20):
        # the controller's clock: UTC in the execution environment
        assert moment.utcoffset() == datetime.timedelta(0), moment
        assert sms_in_window(moment.replace(tzinfo=None), window), (moment, window)
    compliance = by_template["SMS Q216552 compliance"]
    assert compliance["extra_data"] == {"sms_compliance_fail": True}
    nights = occurrences(compliance["rrule"], 3)
    assert [b - a for a, b in zip(nights, nights[1:])] == [datetime.timedelta(days=1)] * 2
    assert compliance["enabled"] is True


# ---- configure.yml passes every key of the data on -----------------------


def test_configure_yml_passes_every_key_of_the_data_to_a_module(assets, tasks, configure_text):
    def referenced(task, prefix):
        text = yaml.safe_dump(task)
        return set(re.findall(re.escape(prefix) + r"\.([a-z_]+)", text))

    (template_task,) = task_for(tasks, "job_template")
    used = referenced(template_task, "item")
    for template in assets["job_templates"]:
        assert set(template) <= used, (template["name"], set(template) - used)
    (schedule_task,) = task_for(tasks, "schedule")
    used = referenced(schedule_task, "item")
    for schedule in assets["schedules"]:
        assert set(schedule) <= used, (schedule["name"], set(schedule) - used)
    everything = yaml.safe_dump(tasks)
    for section in ("project", "execution_environment", "workflow"):
        for key in assets[section]:
            assert "sms_awx.%s.%s" % (section, key) in everything, (section, key)
    for key in assets["inventory"]:
        if key != "source":
            assert "sms_awx.inventory.%s" % key in everything, key
    for key in assets["inventory"]["source"]:
        assert "sms_awx.inventory.source.%s" % key in everything, key
    assert "sms_awx.credentials" in everything and "sms_awx.organization" in configure_text


def test_configure_yml_loads_the_same_data_file(configure_text):
    assert re.search(r"vars_files:\s*\n\s*- assets\.yml", configure_text)
    assert os.path.realpath(os.path.join(os.path.dirname(CONFIGURE), "assets.yml")) == os.path.realpath(ASSETS)


def test_lint_checks_the_awx_module_arguments_against_the_collection(tmp_path):
    """The args rule is on and fatal: a wrong argument to an awx.awx module
    fails ansible-lint (the project's config, the collection of make awx-deps)."""
    shutil.copy(os.path.join(REPO, ".ansible-lint"), tmp_path / ".ansible-lint")
    (tmp_path / "wrong.yml").write_text(
        "---\n- name: A wrong argument\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: A project\n      awx.awx.project:\n        name: x\n        scm_typo: git\n"
    )
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=AWX_COLLECTIONS, NO_COLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    lint = os.path.join(os.path.dirname(sys.executable), "ansible-lint")
    result = subprocess.run(
        [lint, "--profile", "production", "wrong.yml"],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "args[module]" in output and "scm_typo" in output, output


def test_no_template_or_workflow_runs_two_jobs_at_once(tasks):
    # The lock lets its holder (the workflow or template) re-enter after a
    # failed run; AWX keeps a relaunch pending while a job of the same
    # template still runs only when simultaneous jobs are not allowed.
    [template] = task_for(tasks, "job_template")
    assert template["awx.awx.job_template"]["allow_simultaneous"] is False
    [workflow] = task_for(tasks, "workflow_job_template")
    assert (
        str(workflow["awx.awx.workflow_job_template"]["allow_simultaneous"])
        == "{{ sms_awx.workflow.allow_simultaneous }}"
    )
    with open(ASSETS) as handle:
        assets = yaml.safe_load(handle)["sms_awx"]
    assert assets["workflow"]["allow_simultaneous"] is False
    for template in assets["job_templates"]:
        assert not template.get("allow_simultaneous", False), template["name"]
