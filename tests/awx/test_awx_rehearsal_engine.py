"""The rehearsal's model of AWX, piece by piece, on small cases whose AWX
answer is known from AWX's source: slicing an inventory, the extra-vars file,
surveys, the workflow graph's rules. The rehearsal itself runs in
test_awx_workflow.py; this keeps its ground rules from drifting."""

import yaml

import awx_rehearsal as ar


class FakeInventory(ar.Inventory):
    def __init__(self, export):
        # what ansible-inventory --list --export gives, without running it
        self.id, self.name = 9, "site"
        self.hostvars = export["_meta"]["hostvars"]
        self.variables = export["all"].get("vars", {})
        self.groups = dict(
            (name, {"hosts": body.get("hosts", []), "children": body.get("children", []), "vars": body.get("vars", {})})
            for name, body in export.items()
            if name not in ("_meta", "all", "ungrouped")
        )
        self.hosts = sorted(set(self.hostvars) | set(h for g in self.groups.values() for h in g["hosts"]))
        self.host_ids = dict((h, i + 1) for i, h in enumerate(self.hosts))


EXPORT = {
    "_meta": {"hostvars": {"c1": {}, "c2": {}, "c3": {"x": 1}, "logon1": {}, "site": {}}},
    "all": {"children": ["clients", "logon_servers", "site_server", "ungrouped"], "vars": {"sms_drive_root": "/d"}},
    "clients": {"children": ["clients_x86", "clients_alpha"], "vars": {"sms_logon_server_names": ["SITE", "LOGON1"]}},
    "clients_x86": {"hosts": ["c1", "c2"], "vars": {"sms_client_platform": "x86"}},
    "clients_alpha": {"hosts": ["c3"], "vars": {"sms_client_platform": "alpha"}},
    "logon_servers": {"hosts": ["site", "logon1"]},
    "site_server": {"hosts": ["site"]},
}


def test_slice_i_of_k_holds_every_kth_host_by_name_with_every_group_and_its_vars():
    inventory = FakeInventory(EXPORT)
    assert inventory.hosts == ["c1", "c2", "c3", "logon1", "site"]
    assert [inventory.slice_hosts(i, 3) for i in (1, 2, 3)] == [["c1", "logon1"], ["c2", "site"], ["c3"]]
    third = inventory.script_data(3, 3)
    assert sorted(third["_meta"]["hostvars"]) == ["c3"]
    assert third["_meta"]["hostvars"]["c3"]["x"] == 1 and third["_meta"]["hostvars"]["c3"]["remote_tower_id"] == 3
    # groups without a host of this slice keep their vars and children; all groups stay children of all
    assert third["clients_x86"] == {"vars": {"sms_client_platform": "x86"}}
    assert third["clients"]["vars"] == {"sms_logon_server_names": ["SITE", "LOGON1"]}
    assert "site_server" not in third and "site_server" in third["all"]["children"]
    assert third["all"]["vars"] == {"sms_drive_root": "/d"} and third["all"]["hosts"] == []
    assert inventory.script_data()["_meta"]["hostvars"].keys() == set(inventory.hosts)


def test_extra_vars_are_unsafe_unless_the_template_set_them_to_that_value():
    text = ar.safe_dump({"a": "{{ x }}", "b": "from template", "c": 3, "d": ["l"]}, trusted={"b": "from template"})
    assert "!unsafe 'a': !unsafe '{{ x }}'" in text and "b: from template" in text and "!unsafe 'l'" in text
    loaded = yaml.load(text.replace("!unsafe", "!!str"), Loader=yaml.SafeLoader)
    assert loaded == {"a": "{{ x }}", "b": "from template", "c": 3, "d": ["l"]}


SURVEY = {
    "name": "",
    "description": "",
    "spec": [
        {
            "variable": "n",
            "type": "integer",
            "required": True,
            "default": 20,
            "min": 0,
            "max": 100,
            "question_name": "n",
        },
        {"variable": "w", "type": "text", "required": False, "default": "", "min": 0, "max": 5, "question_name": "w"},
        {
            "variable": "m",
            "type": "multiplechoice",
            "required": True,
            "choices": ["stop", "rollback"],
            "default": "stop",
            "question_name": "m",
        },
        {"variable": "r", "type": "text", "required": True, "question_name": "r"},
    ],
}


def test_survey_defaults_and_answers_as_awx_checks_them():
    assert ar.survey_defaults(SURVEY) == {"n": 20, "w": "", "m": "stop"}
    assert ar.survey_errors(SURVEY, {"n": 20, "m": "stop"}) == ["'r' value missing"]
    errors = ar.survey_errors(SURVEY, {"n": "20", "w": "toolong", "m": "undo", "r": "x"})
    assert len(errors) == 3 and "expected to be an integer" in errors[0] and "too large" in errors[1]
    template = {"name": "wf", "survey": SURVEY, "survey_enabled": True}
    assert ar.accept_variables(template, {"n": 5, "r": "x", "m": "rollback"}, "wf") == {
        "n": 5,
        "r": "x",
        "m": "rollback",
    }
    for answers, message in (({"r": "x", "other": 1}, "cannot accept variables"), ({}, "'r' value missing")):
        try:
            ar.accept_variables(template, answers, "wf")
        except ar.LaunchError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("launch accepted %r" % answers)


def refused(template, answers, **kwargs):
    try:
        ar.accept_variables(template, answers, "wf", **kwargs)
    except ar.LaunchError as exc:
        return exc.errors
    return None


def test_a_required_question_without_an_answer_is_refused_though_it_has_a_default():
    # AWX checks the answers as given (variables_needed_to_start, a 400);
    # defaults are filled in only when the job is created
    template = {"name": "wf", "survey": SURVEY, "survey_enabled": True}
    assert refused(template, {"n": 1, "m": "stop", "r": "x"}) is None
    errors = refused(template, {})
    assert errors == {"variables_needed_to_start": ["'n' value missing", "'m' value missing", "'r' value missing"]}, (
        errors
    )
    # a workflow node's prompts are checked without the required rule
    assert refused(template, {}, validate_required=False) is None
    # a non-required question without an answer is let through, its default filled in later
    optional = {
        "name": "wf",
        "survey_enabled": True,
        "survey": {"name": "", "description": "", "spec": [dict(q, required=False) for q in SURVEY["spec"]]},
    }
    assert refused(optional, {}) is None


def test_a_schedule_whose_data_leaves_a_required_question_unanswered_is_refused():
    awx = ar.Awx.__new__(ar.Awx)  # the schedule's check alone: no lab, no inventory import
    awx._ids, awx._lock = iter(range(100, 1000)), __import__("threading").Lock()
    awx.templates = {"wf": {"name": "wf", "survey": SURVEY, "type": "workflow_job_template", "survey_enabled": True}}
    awx.schedules = {}
    try:
        awx.create_schedule({"name": "nightly", "unified_job_template": "wf", "extra_data": {"n": 5}})
    except ar.LaunchError as exc:
        assert str(exc).startswith("Unable to create schedule nightly")
        assert exc.errors == {"variables_needed_to_start": ["'m' value missing", "'r' value missing"]}
    else:
        raise AssertionError("the schedule was created")
    assert awx.schedules == {}
    created = awx.create_schedule(
        {"name": "full", "unified_job_template": "wf", "extra_data": {"n": 5, "m": "stop", "r": "x"}}
    )
    assert awx.schedules == {"full": created}


def test_every_schedule_of_the_assets_and_an_api_launch_without_answers_are_accepted(assets):
    # what AWX refused on the first day: the rollout schedule, and POST .../launch/ with {}
    workflow = dict(assets["workflow"], type="workflow_job_template", survey_enabled=True)
    templates = dict((t["name"], dict(t, type="job_template")) for t in assets["job_templates"])
    templates[workflow["name"]] = workflow
    assert refused(workflow, {}) is None
    for schedule in assets["schedules"]:
        template = templates[schedule["unified_job_template"]]
        assert refused(template, schedule.get("extra_data") or {}) is None, schedule["name"]
    # and the defaults still reach the job (filled in when it is created)
    assert ar.survey_defaults(workflow["survey"])["sms_rollout_waves"] == "1,10%,50%,100%"


class GraphAwx(ar.Awx):
    """The graph rules alone: every template job ends as `outcomes` says."""

    def __init__(self, nodes, outcomes):
        self.templates = {}
        self._ids = iter(range(100, 1000))
        self.all = []
        self.outcomes = outcomes
        self.nodes_spec = nodes

    def _next_id(self):
        return next(self._ids)

    def _launch_template(self, template, runtime_vars, limit, workflow=None, slice_count=None, **kwargs):
        job = ar.Job(self._next_id(), template, workflow)
        job.status = self.outcomes.get(template["name"], "successful")
        job.started = job.finished = job.id
        return job

    def template(self, name):
        return {"name": name, "type": "job_template", "playbook": name}

    def run(self, approval="approve"):
        wj = ar.WorkflowJob(self._next_id(), "wf", {}, None, "manual")
        for spec in self.nodes_spec:
            wj.nodes[spec["identifier"]] = ar.Node(spec)
        self._run_graph(wj, approval, None)
        return wj


def node(identifier, success=(), failure=(), always=(), approval=False):
    related = {}
    for kind, targets in (("success_nodes", success), ("failure_nodes", failure), ("always_nodes", always)):
        if targets:
            related[kind] = [{"identifier": t} for t in targets]
    ujt = (
        {"name": identifier, "type": "workflow_approval", "timeout": 60}
        if approval
        else {"name": identifier, "type": "job_template"}
    )
    return {"identifier": identifier, "unified_job_template": ujt, "related": related}


GRAPH = [
    node("a", success=["b"], failure=["fix"]),
    node("b", success=["ok"], failure=["fix"]),
    node("fix", always=["end"]),
    node("ok", success=["end"], approval=True),
    node("end"),
]


def test_the_graph_follows_success_failure_and_always_edges_and_marks_the_rest_do_not_run():
    done = GraphAwx(GRAPH, {}).run()
    assert done.ran() == ["a", "b", "ok", "end"] and done.status == "successful"
    assert done.node("fix").do_not_run

    failed_b = GraphAwx(GRAPH, {"b": "failed"}).run()
    assert failed_b.ran() == ["a", "b", "fix", "end"] and failed_b.node("ok").do_not_run
    # a failure with a path to follow does not fail the workflow job (AWX's rule)
    assert failed_b.status == "successful"

    denied = GraphAwx(GRAPH, {}).run(approval="deny")
    # the approval's failure has no path: the workflow job failed, "end" never ran
    assert denied.ran() == ["a", "b", "ok"] and denied.status == "failed" and denied.node("end").do_not_run

    unhandled = GraphAwx(GRAPH, {"end": "failed"}).run()
    assert unhandled.status == "failed"
