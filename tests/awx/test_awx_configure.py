"""awx/configure.yml as an administrator runs it, without a live AWX:

- the documented command (awx/README.md, "Load it") finds awx.awx and, with
  no controller in the environment, refuses first, naming what it needs;
- the project's collection requirements (what AWX installs before a sync)
  name nothing from Galaxy; what configure.yml needs is apart;
- the workflow's nodes and edges, rendered from configure.yml's own tasks by
  Ansible's templating, run through awx.awx 24.6.1's real
  workflow_job_template_node module against an in-memory AWX API that keeps
  only the fields AWX's objects have: the second run changes nothing (the
  compare rules that made the workflow_nodes form report changed forever);
- re-runs act on the state they depend on (the project's last sync, the
  inventory's hosts), not on handlers.
"""

import copy
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from awx_rehearsal import REPO, load_assets

AWX_COLLECTIONS = os.environ.get("SMS_AWX_COLLECTIONS", os.path.join(REPO, ".venv", "awx-collections"))
CONFIGURE = os.path.join(REPO, "awx", "configure.yml")
README = os.path.join(REPO, "awx", "README.md")
VENV_BIN = os.path.dirname(sys.executable)


def clean_env(**extra):
    """An administrator's shell: the virtualenv on PATH, no Ansible or
    controller settings of this test run."""
    env = {
        "PATH": os.pathsep.join([VENV_BIN, "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }
    env.update(extra)
    return env


def documented_command():
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("**Load it**", 1)[1].split("```", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in section.splitlines()]
    (command,) = [line for line in lines if "ansible-playbook awx/configure.yml" in line][:1]
    return command


def run_documented(**env):
    words = shlex.split(documented_command())
    assignments = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    assert argv[0] == "ansible-playbook"
    argv[0] = os.path.join(VENV_BIN, "ansible-playbook")
    return subprocess.run(
        argv,
        cwd=REPO,
        env=clean_env(**dict(assignments, **env)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# ---- item 1: the way in -------------------------------------------------------


def test_the_documented_command_finds_awx_awx_and_refuses_without_a_controller():
    assert os.path.isdir(os.path.join(AWX_COLLECTIONS, "ansible_collections", "awx", "awx")), "run make awx-deps"
    result = run_documented()
    output = result.stdout + result.stderr
    assert "couldn't resolve module/action" not in output, output
    assert result.returncode != 0, output
    assert "missing: CONTROLLER_HOST, CONTROLLER_OAUTH_TOKEN or CONTROLLER_USERNAME + CONTROLLER_PASSWORD" in output
    assert "nothing was sent" in output and "Connection refused" not in output, output
    assert re.search(r"localhost\s+: ok=0 ", output), output

    only_host = run_documented(CONTROLLER_HOST="https://awx.example.invalid")
    output = only_host.stdout + only_host.stderr
    assert only_host.returncode != 0 and "missing: CONTROLLER_OAUTH_TOKEN or CONTROLLER_USERNAME" in output, output


def test_the_project_requirements_ask_galaxy_for_nothing_and_configure_yml_needs_are_apart():
    # AWX installs collections/requirements.yml before every project sync by default
    project_requirements = os.path.join(REPO, "collections", "requirements.yml")
    if os.path.exists(project_requirements):
        with open(project_requirements, encoding="utf-8") as handle:
            assert not (yaml.safe_load(handle) or {}).get("collections"), "a project sync would call Galaxy"
    with open(os.path.join(REPO, "awx", "requirements.yml"), encoding="utf-8") as handle:
        wanted = [c["name"] for c in yaml.safe_load(handle)["collections"]]
    assert wanted == ["awx.awx"]


# ---- item 3: the workflow's nodes against awx.awx's compare rules ---------------

NODE_FIELDS = (
    "identifier",
    "unified_job_template",
    "extra_data",
    "inventory",
    "scm_branch",
    "job_type",
    "job_tags",
    "skip_tags",
    "limit",
    "diff_mode",
    "verbosity",
    "execution_environment",
    "forks",
    "job_slice_count",
    "timeout",
    "all_parents_must_converge",
    "workflow_job_template",
)
APPROVAL_FIELDS = ("name", "description", "timeout")  # a workflow approval template: no identifier
EDGES = ("success_nodes", "failure_nodes", "always_nodes")


class FakeAwx:
    """The few endpoints workflow_job_template_node uses, keeping only the
    fields AWX's objects have (awx/api/serializers.py), and counting writes."""

    def __init__(self, assets):
        self.ids = iter(range(1000, 100000))
        self.objects = {}  # (kind, id) -> object
        self.writes = []
        self._add("organizations", name=assets["organization"])
        for template in assets["job_templates"]:
            self._add("unified_job_templates", name=template["name"], organization=1000, type="job_template")
        self._add("workflow_job_templates", name=assets["workflow"]["name"], organization=1000)

    def _add(self, kind, **fields):
        new_id = next(self.ids)
        obj = dict(
            dict(
                type={
                    "workflow_job_template_nodes": "workflow_job_template_node",
                    "workflow_approval_templates": "workflow_approval_template",
                }.get(kind, kind[:-1])
            ),
            **fields,
        )
        obj.update(id=new_id, url="/api/v2/%s/%d/" % (kind, new_id), related={})
        if kind == "workflow_job_template_nodes":
            for field in NODE_FIELDS:
                obj.setdefault(
                    field, {} if field == "extra_data" else False if field == "all_parents_must_converge" else None
                )
            for edge in EDGES:
                obj[edge] = []
                obj["related"][edge] = "%s%s/" % (obj["url"], edge)
        self.objects[(kind, new_id)] = obj
        return obj

    @staticmethod
    def _split(endpoint):
        parts = [p for p in endpoint.split("?")[0].strip("/").split("/") if p]
        if parts[:2] == ["api", "v2"]:
            parts = parts[2:]
        return parts

    @staticmethod
    def _matches(obj, query):
        alternatives = dict((k[4:], v) for k, v in query.items() if k.startswith("or__"))
        plain = dict((k, v) for k, v in query.items() if not k.startswith("or__"))
        if alternatives and not any(str(obj.get(k)) == str(v) for k, v in alternatives.items()):
            return False
        return all(str(obj.get(k)) == str(v) for k, v in plain.items())

    def request(self, method, endpoint, data=None):
        # JSON over the wire: the module never holds the stored objects themselves
        return copy.deepcopy(self._request(method, endpoint, data))

    def _request(self, method, endpoint, data=None):
        parts = self._split(endpoint)
        data = dict(data or {})
        kind = parts[0]
        if method == "GET" and len(parts) == 1:
            found = [o for (k, _key), o in sorted(self.objects.items()) if k == kind and self._matches(o, data)]
            return {"status_code": 200, "json": {"count": len(found), "results": found, "next": None}}
        obj = self.objects.get((kind, int(parts[1])))
        if obj is None:
            return {"status_code": 404, "json": {"detail": "Not found."}}
        if len(parts) == 2:
            if method == "GET":
                return {"status_code": 200, "json": obj}
            if method == "PATCH":
                self.writes.append(("PATCH", obj["url"], data))
                allowed = APPROVAL_FIELDS if obj["type"] == "workflow_approval_template" else NODE_FIELDS
                obj.update((k, v) for k, v in data.items() if k in allowed)
                return {"status_code": 200, "json": obj}
            if method == "DELETE":
                self.writes.append(("DELETE", obj["url"], data))
                del self.objects[(kind, obj["id"])]
                return {"status_code": 204, "json": {}}
        sub = parts[2]
        if sub == "create_approval_template" and method == "POST":
            self.writes.append(("POST", endpoint, data))
            approval = self._add(
                "workflow_approval_templates", **dict((k, data[k]) for k in APPROVAL_FIELDS if k in data)
            )
            obj["unified_job_template"] = approval["id"]
            obj["related"]["unified_job_template"] = approval["url"]
            return {"status_code": 201, "json": approval}
        if sub in EDGES and obj["type"] == "workflow_job_template_node":
            if method == "GET":
                found = [self.objects[("workflow_job_template_nodes", i)] for i in obj[sub]]
                return {"status_code": 200, "json": {"count": len(found), "results": found, "next": None}}
            self.writes.append(("POST", endpoint, data))
            if data.get("disassociate"):
                obj[sub].remove(data["id"])
            else:
                obj[sub].append(data["id"])
            return {"status_code": 204, "json": {}}
        return {"status_code": 404, "json": {"detail": "Not found."}}

    def create_node(self, data):
        self.writes.append(("POST", "workflow_job_template_nodes", data))
        node = self._add("workflow_job_template_nodes", **dict((k, v) for k, v in data.items() if k in NODE_FIELDS))
        if node["unified_job_template"]:
            node["related"]["unified_job_template"] = "/api/v2/unified_job_templates/%d/" % node["unified_job_template"]
        return {"status_code": 201, "json": copy.deepcopy(node)}


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


@pytest.fixture(scope="module")
def node_module():
    import ansible_collections  # the checkout's own (sms.hotfix), imported already by other tests

    awx_root = os.path.join(AWX_COLLECTIONS, "ansible_collections")
    if awx_root not in list(ansible_collections.__path__):
        ansible_collections.__path__.append(awx_root)
    from ansible_collections.awx.awx.plugins.module_utils import controller_api  # pylint: disable=import-error
    from ansible_collections.awx.awx.plugins.modules import workflow_job_template_node  # pylint: disable=import-error

    return controller_api, workflow_job_template_node


def run_module(node_module, fake, args, monkeypatch):
    from ansible.module_utils import basic

    controller_api, module = node_module

    def make_request(self, method, endpoint, *_args, **kwargs):
        if method == "POST" and fake._split(endpoint) == ["workflow_job_template_nodes"]:
            return fake.create_node(kwargs.get("data"))
        return fake.request(method, endpoint, kwargs.get("data"))

    def leave(self, **kwargs):
        raise ModuleExit(kwargs)

    monkeypatch.setattr(controller_api.ControllerAPIModule, "make_request", make_request)
    monkeypatch.setattr(controller_api.ControllerAPIModule, "exit_json", leave)
    monkeypatch.setattr(
        controller_api.ControllerAPIModule, "fail_json", lambda self, **kw: leave(self, failed=True, **kw)
    )
    # a loopback address: the module resolves the name; make_request above answers every call
    full = dict(args, controller_host="https://127.0.0.1", controller_oauthtoken="token")
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": full}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    with pytest.raises(ModuleExit) as leaving:
        module.main()
    assert not leaving.value.result.get("failed"), (args, leaving.value.result)
    return leaving.value.result


def node_tasks():
    """configure.yml's workflow_job_template_node tasks, each rendered for
    every node of assets.yml by Ansible's own templating."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    loader = DataLoader()
    plays = loader.load_from_file(CONFIGURE)
    assets = load_assets()
    variables = {"sms_awx": assets, "__org": assets["organization"]}
    rendered = []
    tasks = [t for t in plays[0]["tasks"] if "awx.awx.workflow_job_template_node" in t]
    for task in tasks:
        runs = []
        for item in Templar(loader=loader, variables=variables).template(trust_as_template(task["loop"])):
            templar = Templar(loader=loader, variables=dict(variables, item=item))
            if "when" in task and not templar.evaluate_conditional(trust_as_template(task["when"])):
                continue
            args = task["awx.awx.workflow_job_template_node"]
            runs.append(
                templar.template(dict((k, trust_as_template(v) if isinstance(v, str) else v) for k, v in args.items()))
            )
        rendered.append((task["name"], runs))
    return rendered


def test_the_workflow_graph_converges_under_awx_awx_compare_rules(node_module, monkeypatch):
    assets = load_assets()
    tasks = node_tasks()
    assert len(tasks) == 2, "nodes first, then edges: %s" % [name for name, _runs in tasks]
    fake = FakeAwx(assets)

    def run_all():
        return [
            (name, args["identifier"], run_module(node_module, fake, args, monkeypatch)["changed"])
            for name, runs in tasks
            for args in runs
        ]

    first = run_all()
    assert all(changed for _name, _identifier, changed in first[: len(assets["workflow"]["nodes"])]), first
    # the graph AWX holds is the graph of assets.yml
    nodes = dict((o["identifier"], o) for (k, _key), o in fake.objects.items() if k == "workflow_job_template_nodes")
    by_id = dict((o["id"], o["identifier"]) for o in nodes.values())
    for spec in assets["workflow"]["nodes"]:
        node = nodes[spec["identifier"]]
        for edge in EDGES:
            want = [t["identifier"] for t in (spec.get("related") or {}).get(edge) or []]
            assert sorted(by_id[i] for i in node[edge]) == sorted(want), (spec["identifier"], edge)
        ujt = spec["unified_job_template"]
        target = [o for (k, i), o in fake.objects.items() if i == node["unified_job_template"]][0]
        assert target["name"] == ujt["name"], spec["identifier"]
        if ujt["type"] == "workflow_approval":
            assert target["type"] == "workflow_approval_template" and target["timeout"] == ujt["timeout"]

    fake.writes = []
    second = run_all()
    assert [(n, i) for n, i, changed in second if changed] == [], "a second run changes %s" % fake.writes
    assert fake.writes == []

    # a changed approval timeout is one change, then none
    assets_edit = [s for s in assets["workflow"]["nodes"] if s["unified_job_template"]["type"] == "workflow_approval"]
    (approval_args,) = [a for _n, runs in tasks[:1] for a in runs if a["identifier"] == assets_edit[0]["identifier"]]
    edited = dict(approval_args, approval_node=dict(approval_args["approval_node"], timeout=60))
    assert run_module(node_module, fake, edited, monkeypatch)["changed"] is True
    assert run_module(node_module, fake, edited, monkeypatch)["changed"] is False


def test_the_workflow_nodes_form_reports_changed_on_every_run_with_awx_awx_24_6_1(node_module, monkeypatch):
    """Why configure.yml does not use workflow_job_template's workflow_nodes:
    its create_workflow_nodes, given the same nodes twice, compares the
    approval's template with fields it has not (identifier, ...)."""
    from ansible.module_utils import basic
    from ansible_collections.awx.awx.plugins.modules import workflow_job_template  # pylint: disable=import-error

    controller_api, _module = node_module
    assets = load_assets()
    fake = FakeAwx(assets)
    monkeypatch.setattr(
        controller_api.ControllerAPIModule,
        "make_request",
        lambda self, method, endpoint, *a, **kw: (
            fake.create_node(kw.get("data"))
            if method == "POST" and fake._split(endpoint) == ["workflow_job_template_nodes"]
            else fake.request(method, endpoint, kw.get("data"))
        ),
    )
    monkeypatch.setattr(
        basic,
        "_ANSIBLE_ARGS",
        json.dumps(
            {"ANSIBLE_MODULE_ARGS": {"controller_host": "https://127.0.0.1", "controller_oauthtoken": "token"}}
        ).encode(),
    )
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    module = controller_api.ControllerAPIModule(argument_spec={})
    (workflow,) = [o for (k, _key), o in fake.objects.items() if k == "workflow_job_templates"]
    changed = []
    for _run in range(2):
        module.json_output["changed"] = False
        fake.writes = []
        workflow_job_template.create_workflow_nodes(
            module, [], copy.deepcopy(assets["workflow"]["nodes"]), workflow["id"]
        )
        changed.append((module.json_output["changed"], [w[1] for w in fake.writes if w[0] == "PATCH"]))
    assert changed[0][0] is True
    # the second run: only the approval's template is patched, and it counts as a change
    assert (
        changed[1][0] is True and changed[1][1] and all("workflow_approval_templates" in url for url in changed[1][1])
    ), changed


# ---- item 3: re-runs repair ------------------------------------------------------


@pytest.fixture(scope="module")
def tasks_by_module():
    with open(CONFIGURE, encoding="utf-8") as handle:
        plays = yaml.safe_load(handle)
    assert "handlers" not in plays[0], "a handler notified by a run that failed never runs again"
    out = {}
    for task in plays[0]["tasks"]:
        module = [k for k in task if k.startswith(("awx.awx.", "ansible.builtin."))][0]
        out.setdefault(module, []).append(task)
    return out


def decide(task, **state):
    """A task's `when` (or an assert's `that`) from configure.yml, evaluated
    by Ansible with the API's answers (the task's query() vars) given."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    assets = load_assets()
    templar = Templar(
        loader=DataLoader(), variables=dict({"sms_awx": assets, "__org": assets["organization"]}, **state)
    )
    conditions = task.get("when") or task["ansible.builtin.assert"]["that"]
    conditions = conditions if isinstance(conditions, list) else [conditions]
    return all(templar.evaluate_conditional(trust_as_template(c)) for c in conditions)


def test_a_rerun_syncs_a_project_whose_last_sync_failed(tasks_by_module):
    (update,) = tasks_by_module["awx.awx.project_update"]
    assert update["awx.awx.project_update"]["wait"] is True
    assert "controller_api" in update["vars"]["__project"] and "'projects'" in update["vars"]["__project"]
    # the project task said ok, its last sync failed: sync again; a good one: nothing
    assert decide(update, __project=[{"name": "p", "status": "failed"}]) is True
    assert decide(update, __project=[{"name": "p", "status": "never updated"}]) is True
    assert decide(update, __project=[]) is True
    assert decide(update, __project=[{"name": "p", "status": "successful"}]) is False


def test_a_rerun_imports_an_inventory_without_hosts_or_a_failed_import(tasks_by_module):
    (update,) = tasks_by_module["awx.awx.inventory_source_update"]
    assert update["awx.awx.inventory_source_update"]["wait"] is True
    good = {
        "__sms_source": {"changed": False},
        "__inventory": [{"total_hosts": 12}],
        "__source": [{"status": "successful"}],
    }
    assert decide(update, **good) is False
    # the earlier run failed after creating the source: no host, never imported
    assert decide(update, **{**good, "__inventory": [{"total_hosts": 0}], "__source": [{"status": "never updated"}]})
    assert decide(update, **{**good, "__source": [{"status": "failed"}]})
    assert decide(update, **{**good, "__sms_source": {"changed": True}})
    # and before the templates, the inventory must have hosts and the canary group
    (check,) = [t for t in tasks_by_module["ansible.builtin.assert"] if "__canary" in (t.get("vars") or {})]
    assert decide(check, __inventory=[{"total_hosts": 12}], __canary=[{"name": "clients_canary"}]) is True
    assert decide(check, __inventory=[{"total_hosts": 0}], __canary=[{"name": "clients_canary"}]) is False
    assert decide(check, __inventory=[{"total_hosts": 12}], __canary=[]) is False
    for tasks in tasks_by_module.values():
        assert all("notify" not in t for t in tasks)


# ---- item 5: the inventory source's image, no sync before every node ----------


def test_the_inventory_source_runs_in_the_projects_ee_and_nothing_syncs_before_every_node(tasks_by_module):
    assets = load_assets()
    (source,) = tasks_by_module["awx.awx.inventory_source"]
    assert source["awx.awx.inventory_source"]["execution_environment"] == "{{ sms_awx.execution_environment.name }}"
    assert assets["project"]["scm_update_on_launch"] is False
    assert assets["inventory"]["source"]["update_on_launch"] is False


# ---- item 5: the example inventory runs the workflow as written ---------------


def test_the_example_inventory_has_what_the_workflow_needs_in_every_slice():
    from awx_rehearsal import Inventory

    assets = load_assets()
    source = os.path.join(REPO, assets["inventory"]["source"]["source_path"])
    assert source.startswith(os.path.join(REPO, "inventories", "example") + os.sep)
    inventory = Inventory([source], 1, "example", env=clean_env())
    groups = inventory.groups

    def members(group):
        hosts = set(groups.get(group, {}).get("hosts", []))
        for child in groups.get(group, {}).get("children", []):
            hosts |= members(child)
        return hosts

    canary = members("clients_canary")
    assert canary and canary <= members("clients"), canary
    names = dict((h, inventory.hostvars.get(h, {}).get("sms_server_name")) for h in members("logon_servers"))
    assert all(names.values()), names
    # every slice's clients know the logon servers by SMS name, without seeing the logon group
    slices = assets["job_templates"][[t["name"] for t in assets["job_templates"]].index("SMS Q216552 clients")]
    for number in range(1, slices["job_slice_count"] + 1):
        data = inventory.script_data(number, slices["job_slice_count"])
        assert sorted(data["clients"]["vars"]["sms_logon_server_names"]) == sorted(names.values())
    # and the README section its comments point at exists
    with open(os.path.join(REPO, "inventories", "example", "group_vars", "all.yml"), encoding="utf-8") as handle:
        pointers = re.findall(r'README\.md, "([^"]+)"', handle.read())
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        headings = re.findall(r"^## (.+)$", handle.read(), re.M)
    assert pointers and pointers[0] in headings, (pointers, headings)
