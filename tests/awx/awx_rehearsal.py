# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A rehearsal of AWX's job engine for the workflow in awx/assets.yml.

No AWX server runs here. This module does, from the same data file the
administrator loads into AWX, what AWX does around each playbook run, and
runs every job through ansible-runner (AWX's engine), each as its own
process with its own private data directory:

- templates, the workflow graph, the survey and the schedules come from
  awx/assets.yml, read raw, as awx/configure.yml hands them to AWX;
- a launch's answers checked as AWX checks them (a required question
  needs an answer, its default does not count), then a job's extra vars:
  template extra vars < template survey defaults <
  accepted node prompts < ancestor artifacts (set_stats of earlier nodes) <
  the workflow's extra vars (its survey answers and defaults) < AWX's own
  awx_*/tower_* vars; written as AWX writes them, every value not from the
  template marked !unsafe;
- the environment AWX gives ansible-runner (JOB_ID, the collections and roles
  paths built from the project's ansible.cfg, ...), the project copied into
  the job's folder, the inventory as AWX's inventory script;
- job slicing: a template with job_slice_count K > 1 runs as a workflow of
  min(K, hosts) concurrent jobs, slice i of K holding every K-th host of the
  whole inventory (ordered by name) with every group and its vars;
- the workflow graph: which nodes run on success, failure or always, which
  are never run, approvals (given, denied or timed out by the caller), when a
  workflow job counts as failed; cancel and relaunch.

Read from AWX's source (github.com/ansible/awx, 24.x) for this, in our own
words and code: awx/main/models/inventory.py (Inventory.get_sliced_hosts,
get_script_data), awx/main/models/jobs.py (JobTemplate.create_unified_job,
get_effective_slice_ct, Job.awx_meta_vars), awx/main/models/unified_jobs.py
(UnifiedJob.awx_meta_vars, get_workflow_job), awx/main/models/workflow.py
(WorkflowJobNode.get_job_kwargs), awx/main/models/mixins.py
(SurveyJobTemplateMixin), awx/main/scheduler/dag_workflow.py (WorkflowDAG),
awx/main/tasks/jobs.py (RunJob.build_env, build_extra_vars_file,
build_inventory), awx/main/utils/safe_yaml.py, awx/main/tasks/callback.py
(artifacts from the stats event), awx/api/views/__init__.py (survey spec
rules) and awx/api/serializers.py (schedule RRULE rules).

The project a job sees is what git holds (git ls-files), as AWX's sync
checks it out: the payload is git-ignored, so the hotfix reaches the jobs
only from where sms_hotfix_manifest points (storage the jobs mount).

Not rehearsed: credentials (the lab uses the local connection), the
execution environment's container (jobs run in this virtualenv), instance
capacity (every ready job starts at once), project and inventory syncs (the
project is copied, the inventory exported once with ansible-inventory, as
AWX's inventory import does).
"""

import configparser
import copy
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

from sms_e2e import results_of  # noqa: E402  (one reading of ansible-runner's events for every suite)

ASSETS = os.path.join(REPO, "awx", "assets.yml")
VENV_BIN = os.path.dirname(sys.executable)
RUNNER = os.path.join(VENV_BIN, "ansible-runner")
PREFIXES = ("awx", "tower")
SURVEY_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
DONE = ("successful", "failed", "error", "canceled")
FAILED = ("failed", "error", "canceled")


class LaunchError(Exception):
    """What AWX's API answers with a 400: the launch is refused, nothing runs.
    `errors` is the answer's body (e.g. {"variables_needed_to_start": [...]})."""

    def __init__(self, message, errors=None):
        super().__init__(message)
        self.errors = dict(errors or {})


def load_assets(path=ASSETS):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["sms_awx"]


# ---- extra vars as AWX writes them ----------------------------------------


class _UnsafeDumper(yaml.SafeDumper):
    def represent_data(self, data):
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


def safe_dump(variables, trusted=None):
    """YAML for env/extravars: a top-level entry is written plain only when
    the template itself set it to that value; everything else (survey
    answers, artifacts, AWX's own vars) is !unsafe, so Ansible never
    templates it."""
    trusted = trusted or {}
    parts = []
    for key, value in variables.items():
        plain = key in trusted and trusted[key] == value
        parts.append(
            yaml.dump({key: value}, Dumper=yaml.SafeDumper if plain else _UnsafeDumper, default_flow_style=False)
        )
    return "".join(parts)


# ---- surveys ----------------------------------------------------------------


def survey_errors(spec, answers, validate_required=True):
    """AWX's per-question validation of launch answers."""
    errors = []
    for question in spec.get("spec", []):
        var = question["variable"]
        qtype = question["type"]
        if var not in answers:
            if question.get("required") and validate_required:
                errors.append("'%s' value missing" % var)
            continue
        value = answers[var]
        if qtype in ("text", "textarea", "password"):
            if not isinstance(value, str):
                errors.append("Value %s for '%s' expected to be a string." % (value, var))
                continue
            if question.get("min") not in ("", None) and len(value) < int(question["min"]):
                errors.append(
                    "'%s' value %s is too small (length is %d must be at least %s)."
                    % (var, value, len(value), question["min"])
                )
            if question.get("max") not in ("", None) and len(value) > int(question["max"]):
                errors.append("'%s' value %s is too large (must be no more than %s)." % (var, value, question["max"]))
        elif qtype == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append("Value %s for '%s' expected to be an integer." % (value, var))
                continue
            if question.get("min") not in ("", None) and value < int(question["min"]):
                errors.append("'%s' value %s is too small (must be at least %s)." % (var, value, question["min"]))
            if question.get("max") not in ("", None) and value > int(question["max"]):
                errors.append("'%s' value %s is too large (must be no more than %s)." % (var, value, question["max"]))
        elif qtype in ("multiplechoice", "multiselect"):
            choices = question.get("choices") or []
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            values = value if qtype == "multiselect" else [value]
            if qtype == "multiselect" and not isinstance(value, list):
                errors.append("'%s' value is expected to be a list." % var)
                continue
            for item in values:
                if item not in choices:
                    errors.append("Value %s for '%s' expected to be one of %s." % (item, var, choices))
    return errors


def survey_defaults(spec):
    """The defaults AWX puts in before the answers: only those that pass the
    question's own validation."""
    defaults = {}
    for question in (spec or {}).get("spec", []):
        default = question.get("default")
        if default is None:
            continue
        if not survey_errors({"spec": [question]}, {question["variable"]: default}):
            defaults[question["variable"]] = default
    return defaults


def accept_variables(template, answers, what, validate_required=True):
    """Launch-time extra vars a template takes, or LaunchError (AWX: 400).

    AWX's rule (SurveyJobTemplateMixin._accept_or_ignore_variables): the
    answers are checked as given, a required question without an answer is
    refused ("'<var>' value missing" under variables_needed_to_start) even
    when it has a default; the defaults are filled in later, when the job is
    created (_update_unified_job_kwargs), and only for what was accepted. A
    workflow node's prompts are checked without the required rule
    (validate_required=False: the workflow or its launch may answer);
    a launch, a relaunch and a schedule's extra_data are checked with it."""
    answers = dict(answers or {})
    survey = template.get("survey") if template.get("survey_enabled", bool(template.get("survey"))) else None
    errors = {}
    accepted = {}
    if survey:
        needed = survey_errors(survey, answers, validate_required=validate_required)
        if needed:
            errors["variables_needed_to_start"] = needed
        for question in survey.get("spec", []):
            if question["variable"] in answers:
                accepted[question["variable"]] = answers.pop(question["variable"])
    if template.get("ask_variables_on_launch"):
        accepted.update(answers)
        answers = {}
    for key in list(answers):
        if (template.get("extra_vars") or {}).get(key) == answers[key]:
            answers.pop(key)
    if answers:
        errors["extra_vars"] = [
            "Variables %s provided, but this template cannot accept variables." % ", ".join(sorted(answers))
        ]
    if errors:
        raise LaunchError("%s %r refuses the launch (400): %r" % (what, template["name"], errors), errors)
    return accepted


def template_extra_vars(assets, template):
    """A job template's extra_vars as awx/configure.yml sets them: the
    assets' job_extra_vars, then the template's own."""
    extra_vars = dict(assets.get("job_extra_vars") or {})
    extra_vars.update(template.get("extra_vars") or {})
    return extra_vars


def set_hotfix_manifest(assets, path):
    """Point assets at another hotfix location, as an administrator edits
    assets.yml: the templates' job_extra_vars and the survey's default."""
    assets.setdefault("job_extra_vars", {})["sms_hotfix_manifest"] = path
    for question in assets["workflow"]["survey"]["spec"]:
        if question["variable"] == "sms_hotfix_manifest":
            question["default"] = path


def checkout(project, dest):
    """What AWX's project sync gives a job: the files git holds (the working
    tree's version of every tracked file, so a change under test counts),
    nothing git ignores or does not know (no payload, no .venv, no lab)."""
    listed = subprocess.run(["git", "-C", project, "ls-files", "-z"], capture_output=True, check=True).stdout
    os.makedirs(dest)
    for relative in sorted(set(listed.decode("utf-8").split("\0")) - {""}):
        source = os.path.join(project, relative)
        target = os.path.join(dest, relative)
        if not os.path.lexists(source):
            continue  # deleted in the working tree, not yet committed
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)


# ---- the inventory ------------------------------------------------------------


class Inventory:
    """An AWX inventory imported from inventory files (ansible-inventory
    --list --export, as AWX's inventory import runs it), served back as AWX's
    inventory script, whole or sliced."""

    def __init__(self, sources, inventory_id, name, env=None):
        cmd = [os.path.join(VENV_BIN, "ansible-inventory"), "--list", "--export"]
        for source in sources:
            cmd += ["-i", source]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
        if result.returncode != 0:
            raise LaunchError("inventory import failed: %s" % result.stderr[-2000:])
        data = json.loads(result.stdout)
        self.id = inventory_id
        self.name = name
        self.hostvars = data.get("_meta", {}).get("hostvars", {})
        self.variables = data.get("all", {}).get("vars", {})
        self.groups = {}
        hosts = set(self.hostvars)
        for group, body in data.items():
            if group in ("_meta", "all", "ungrouped"):
                for host in (body or {}).get("hosts", []):
                    hosts.add(host)
                continue
            self.groups[group] = {
                "hosts": list(body.get("hosts", [])),
                "children": list(body.get("children", [])),
                "vars": dict(body.get("vars", {})),
            }
            hosts.update(body.get("hosts", []))
        self.hosts = sorted(hosts)
        self.host_ids = dict((host, index + 1) for index, host in enumerate(self.hosts))

    def slice_hosts(self, slice_number=1, slice_count=1):
        if slice_count > 1 and slice_number > 0:
            return self.hosts[slice_number - 1 :: slice_count]
        return list(self.hosts)

    def script_data(self, slice_number=1, slice_count=1):
        hosts = self.slice_hosts(slice_number, slice_count)
        members = set(hosts)
        data = {"all": {}}
        if self.variables:
            data["all"]["vars"] = self.variables
        grouped = set()
        for name in sorted(self.groups):
            group = self.groups[name]
            info = {}
            in_slice = [h for h in group["hosts"] if h in members]
            if in_slice:
                info["hosts"] = in_slice
                grouped.update(in_slice)
            if group["children"]:
                info["children"] = group["children"]
            if group["vars"]:
                info["vars"] = group["vars"]
            if info:
                data[name] = info
        data["all"]["hosts"] = [h for h in hosts if h not in grouped]
        if self.groups:
            data["all"]["children"] = sorted(self.groups)
        data["_meta"] = {"hostvars": {}}
        for host in hosts:
            hostvars = dict(self.hostvars.get(host, {}))
            for prefix in ("host", "tower"):
                hostvars["remote_%s_enabled" % prefix] = "true"
                hostvars["remote_%s_id" % prefix] = self.host_ids[host]
            data["_meta"]["hostvars"][host] = hostvars
        return data

    def script(self, slice_number=1, slice_count=1):
        return "#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n" % json.dumps(
            self.script_data(slice_number, slice_count)
        )


# ---- jobs -----------------------------------------------------------------------


class Job:
    """One playbook run (AWX: a Job), possibly a slice of a sliced job."""

    kind = "job"

    def __init__(self, job_id, template, workflow=None, slice_number=0, slice_count=1):
        self.id = job_id
        self.template = template
        self.name = template["name"]
        self.workflow = workflow
        self.slice_number = slice_number
        self.slice_count = slice_count
        self.status = "pending"
        self.rc = None
        self.private_data_dir = None
        self.extra_vars = {}
        self.limit = ""
        self.started = self.finished = None
        self.artifacts = {}
        self._events = None
        self.inventory_hosts = []

    def __repr__(self):
        part = " slice %d/%d" % (self.slice_number, self.slice_count) if self.slice_count > 1 else ""
        return "<job %d %s%s %s>" % (self.id, self.name, part, self.status)

    @property
    def artifact_dir(self):
        return os.path.join(self.private_data_dir, "artifacts", str(self.id))

    @property
    def events(self):
        if self._events is None:
            folder = os.path.join(self.artifact_dir, "job_events")
            events = []
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if name.endswith(".json"):
                        with open(os.path.join(folder, name), encoding="utf-8") as handle:
                            try:
                                events.append(json.load(handle))
                            except ValueError:
                                continue
            events.sort(key=lambda event: event.get("counter", 0))
            self._events = events
        return self._events

    @property
    def stdout(self):
        path = os.path.join(self.artifact_dir, "stdout")
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    @property
    def stats(self):
        for event in reversed(self.events):
            if event.get("event") == "playbook_on_stats":
                return event.get("event_data", {})
        return {}

    def results(self, action):
        """host -> the last result of tasks running `action` (short name)."""
        return results_of(self.events, action)

    def effective_artifacts(self):
        return dict(self.artifacts)


class Approval:
    kind = "approval"

    def __init__(self, job_id, spec):
        self.id = job_id
        self.name = spec["name"]
        self.timeout = spec.get("timeout", 0)
        self.status = "pending"
        self.timed_out = False
        self.started = self.finished = None

    def __repr__(self):
        return "<approval %d %s %s>" % (self.id, self.name, self.status)

    def effective_artifacts(self):
        return {}


class Node:
    def __init__(self, spec):
        self.spec = spec
        self.identifier = spec["identifier"]
        self.job = None
        self.do_not_run = False
        self.ancestor_artifacts = {}

    def children(self, kind):
        return [item["identifier"] for item in (self.spec.get("related") or {}).get(kind) or []]

    @property
    def ujt(self):
        return self.spec.get("unified_job_template")


class WorkflowJob:
    """A workflow job: the rollout workflow, or the container AWX makes for
    the slices of a sliced job template."""

    kind = "workflow_job"

    def __init__(
        self,
        job_id,
        name,
        extra_vars,
        created_by,
        launch_type,
        schedule=None,
        sliced=False,
        template=None,
        parent=None,
        limit="",
    ):
        self.id = job_id
        self.name = name
        self.extra_vars = extra_vars
        self.created_by = created_by
        self.launch_type = launch_type
        self.schedule = schedule
        self.is_sliced_job = sliced
        self.template = template
        self.parent = parent
        self.limit = limit
        self.nodes = {}
        self.jobs = []
        self.status = "pending"
        self.started = self.finished = None
        self.canceled = False

    def __repr__(self):
        return "<workflow job %d %s %s>" % (self.id, self.name, self.status)

    def node(self, identifier):
        return self.nodes[identifier]

    def ran(self):
        """Identifiers of the nodes that got a job, in the order they started."""
        return [
            n.identifier for n in sorted((n for n in self.nodes.values() if n.job is not None), key=lambda n: n.job.id)
        ]

    def all_jobs(self):
        """Every playbook job of this workflow job, slices included."""
        out = []
        for job in self.jobs:
            if isinstance(job, WorkflowJob):
                out += job.all_jobs()
            elif isinstance(job, Job):
                out.append(job)
        return out

    def effective_artifacts(self):
        artifacts = {}
        for job in sorted(
            (j for j in self.jobs if j.status in ("successful", "failed")), key=lambda j: (j.finished or 0, j.id)
        ):
            artifacts.update(job.effective_artifacts())
        return artifacts


# ---- the engine --------------------------------------------------------------------


class Awx:
    """Launch job templates, workflows and schedules of awx/assets.yml."""

    def __init__(
        self,
        workdir,
        inventory_sources,
        reports_dir,
        assets=None,
        user="admin",
        task_env=None,
        job_timeout=900,
        project=REPO,
        hotfix_manifest=None,
    ):
        self.assets = copy.deepcopy(assets or load_assets())
        if hotfix_manifest is not None:
            # the administrator's edit of assets.yml: the hotfix where this
            # site's jobs mount it
            set_hotfix_manifest(self.assets, hotfix_manifest)
        self.workdir = str(workdir)
        self.reports_dir = str(reports_dir)
        self.job_timeout = job_timeout
        self.task_env = dict(task_env or {})
        self.user = {"id": 1, "username": user, "email": "%s@example.invalid" % user, "first_name": "", "last_name": ""}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.watchers = []
        os.makedirs(self.workdir, exist_ok=True)
        # Ids of the things the administrator loaded (unified job ids start after them).
        self.organization_id = self._next_id()
        self.project_id = self._next_id()
        self.inventory = Inventory(
            inventory_sources, self._next_id(), self.assets["inventory"]["name"], env=self._process_env()
        )
        self.templates = {}
        for template in self.assets["job_templates"]:
            self.templates[template["name"]] = dict(
                template, id=self._next_id(), type="job_template", extra_vars=template_extra_vars(self.assets, template)
            )
        workflow = self.assets["workflow"]
        self.templates[workflow["name"]] = dict(
            workflow, id=self._next_id(), type="workflow_job_template", survey_enabled=True
        )
        self.schedules = {}
        for schedule in self.assets.get("schedules", []):
            self.create_schedule(schedule)
        self.project_src = os.path.join(self.workdir, "project")
        if not os.path.isdir(self.project_src):
            checkout(project, self.project_src)
        self.revision = self._revision(project)
        self.all = []

    # -- plumbing ---------------------------------------------------------------

    def _next_id(self):
        with self._lock:
            return next(self._ids)

    @staticmethod
    def _revision(project):
        result = subprocess.run(
            ["git", "-C", project, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() or "0" * 40

    @staticmethod
    def _process_env():
        """The execution environment's process environment: nothing of the
        caller's Ansible settings leaks in."""
        env = {
            "PATH": os.pathsep.join([VENV_BIN, "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        return env

    def template(self, name):
        try:
            return self.templates[name]
        except KeyError:
            raise LaunchError("no template named %r in awx/assets.yml" % name)

    def _meta_vars(self, job, inventory=True):
        """UnifiedJob.awx_meta_vars + Job.awx_meta_vars."""
        values = {"job_id": job.id, "job_launch_type": getattr(job, "launch_type", "workflow")}
        workflow = job.workflow
        created_by = workflow.created_by if workflow else getattr(job, "created_by", None)
        if workflow:
            values.update(
                workflow_job_id=workflow.id,
                workflow_job_name=workflow.name,
                workflow_job_launch_type=workflow.launch_type,
            )
            if workflow.schedule:
                values.update(
                    parent_job_schedule_id=workflow.schedule["id"], parent_job_schedule_name=workflow.schedule["name"]
                )
        elif not created_by and getattr(job, "schedule", None):
            values.update(schedule_id=job.schedule["id"], schedule_name=job.schedule["name"])
        if created_by:
            values.update(
                user_id=created_by["id"],
                user_name=created_by["username"],
                user_email=created_by["email"],
                user_first_name=created_by["first_name"],
                user_last_name=created_by["last_name"],
            )
        if inventory:
            values.update(inventory_id=self.inventory.id, inventory_name=self.inventory.name)
        values.update(
            project_revision=self.revision,
            project_scm_branch=self.assets["project"]["scm_branch"],
            job_template_id=job.template["id"],
            job_template_name=job.template["name"],
            execution_node="rehearsal",
        )
        out = {}
        for prefix in PREFIXES:
            for key, value in values.items():
                out["%s_%s" % (prefix, key)] = value
        return out

    def _collection_paths(self, project_dir, private_data_dir):
        """ANSIBLE_COLLECTIONS_PATH(S) and ANSIBLE_ROLES_PATH as RunJob.build_env
        makes them: the job's requirements folder, then what the project's
        ansible.cfg says, then Ansible's defaults."""
        config = configparser.ConfigParser(interpolation=None)
        config.read(os.path.join(project_dir, "ansible.cfg"))
        defaults = config["defaults"] if config.has_section("defaults") else {}
        env = {}
        for env_key, setting, folder, default in (
            (
                "ANSIBLE_COLLECTIONS_PATHS",
                "collections_paths",
                "requirements_collections",
                "~/.ansible/collections:/usr/share/ansible/collections",
            ),
            (
                "ANSIBLE_ROLES_PATH",
                "roles_path",
                "requirements_roles",
                "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles",
            ),
            (
                "ANSIBLE_COLLECTIONS_PATH",
                "collections_path",
                "requirements_collections",
                "~/.ansible/collections:/usr/share/ansible/collections",
            ),
        ):
            paths = default.split(":")
            if setting in defaults:
                for path in defaults[setting].split(":"):
                    if path not in paths:
                        paths = [defaults[setting]] + paths
            paths = [os.path.join(private_data_dir, folder)] + paths
            env[env_key] = os.pathsep.join(paths)
        return env

    # -- one job --------------------------------------------------------------

    def _prepare(self, job, runtime_vars, limit):
        template = job.template
        extra_vars = dict(template.get("extra_vars") or {})
        extra_vars.update(survey_defaults(template.get("survey")) if template.get("survey") else {})
        extra_vars.update(runtime_vars)
        extra_vars.update(self._meta_vars(job))
        job.extra_vars = extra_vars
        job.limit = limit or ""
        pdd = os.path.join(self.workdir, "job_%d" % job.id)
        job.private_data_dir = pdd
        project_dir = os.path.join(pdd, "project")
        shutil.copytree(self.project_src, project_dir, symlinks=True)
        for sub in ("env", "inventory", "cp", "requirements_collections", "requirements_roles"):
            os.makedirs(os.path.join(pdd, sub), exist_ok=True)
        hosts = os.path.join(pdd, "inventory", "hosts")
        with open(hosts, "w", encoding="utf-8") as handle:
            handle.write(self.inventory.script(job.slice_number, job.slice_count))
        os.chmod(hosts, 0o700)
        job.inventory_hosts = self.inventory.slice_hosts(job.slice_number, job.slice_count)
        with open(os.path.join(pdd, "env", "extravars"), "w", encoding="utf-8") as handle:
            handle.write(safe_dump(extra_vars, template.get("extra_vars") or {}))
        env = {
            "JOB_ID": str(job.id),
            "INVENTORY_ID": str(self.inventory.id),
            "PROJECT_REVISION": self.revision,
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "MAX_EVENT_RES": "700000",
            "AWX_HOST": "https://awx.rehearsal.invalid",
            "AWX_PRIVATE_DATA_DIR": pdd,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(pdd, "cp"),
        }
        env.update(self._collection_paths(project_dir, pdd))
        env.update(self.task_env)
        # every job shares one folder, as under AWX: the callback names its
        # folder awx-workflow-<run>/<stamp>-<playbook>-job-<id>
        env["SMS_REPORT_DIR"] = self.reports_dir
        with open(os.path.join(pdd, "env", "envvars"), "w", encoding="utf-8") as handle:
            json.dump(env, handle)
        args = []
        if job.limit:
            args += ["-l", job.limit]
        with open(os.path.join(pdd, "env", "cmdline"), "w", encoding="utf-8") as handle:
            handle.write(" ".join(shlex.quote(a) for a in args))
        with open(os.path.join(pdd, "env", "settings"), "w", encoding="utf-8") as handle:
            json.dump({"job_timeout": self.job_timeout, "suppress_ansible_output": True}, handle)

    def _start(self, job):
        job.status = "running"
        job.started = time.time()
        cmd = [RUNNER, "run", job.private_data_dir, "-p", job.template["playbook"], "--ident", str(job.id)]
        job.process = subprocess.Popen(
            cmd,
            env=self._process_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def _finish(self, job):
        try:
            _out, err = job.process.communicate(timeout=self.job_timeout + 60)
        except subprocess.TimeoutExpired:
            os.killpg(job.process.pid, 9)
            _out, err = job.process.communicate()
        job.finished = time.time()
        status_file = os.path.join(job.artifact_dir, "status")
        rc_file = os.path.join(job.artifact_dir, "rc")
        status = open(status_file).read().strip() if os.path.exists(status_file) else "error"
        job.rc = int(open(rc_file).read().strip()) if os.path.exists(rc_file) else None
        # ansible-runner's timeout is a failed job in AWX
        job.status = {"successful": "successful", "canceled": "canceled"}.get(status, "failed")
        job.runner_stderr = (err or b"").decode("utf-8", "replace")
        job.artifacts = dict(self.stats_artifacts(job))
        del job.process

    @staticmethod
    def stats_artifacts(job):
        return job.stats.get("artifact_data") or {}

    def _run_jobs(self, jobs):
        """Run jobs at once (slices of one node, or nodes ready together)."""
        for job in jobs:
            self._start(job)
        for watcher in self.watchers:
            watcher.started([job.process for job in jobs])
        try:
            for job in jobs:
                self._finish(job)
        finally:
            for watcher in self.watchers:
                watcher.stopped()
        return jobs

    def _new_job(self, template, workflow=None, slice_number=0, slice_count=1):
        job = Job(self._next_id(), template, workflow, slice_number, slice_count)
        self.all.append(job)
        return job

    def _launch_template(
        self,
        template,
        runtime_vars,
        limit,
        workflow=None,
        slice_count=None,
        created_by=None,
        launch_type="manual",
        schedule=None,
    ):
        """JobTemplate.create_unified_job: one job, or a sliced workflow of
        concurrent slice jobs."""
        wanted = slice_count if slice_count is not None else int(template.get("job_slice_count") or 1)
        effective = min(wanted, len(self.inventory.hosts)) if self.inventory.hosts else wanted
        limit = limit if limit is not None else (template.get("limit") or "")
        if effective > 1:
            sliced = WorkflowJob(
                self._next_id(),
                template["name"],
                dict(runtime_vars),
                created_by if workflow is None else workflow.created_by,
                "workflow" if workflow else launch_type,
                schedule=schedule,
                sliced=True,
                template=template,
                parent=workflow,
                limit=limit,
            )
            sliced.started = time.time()
            slices = []
            for number in range(1, effective + 1):
                job = self._new_job(template, sliced, number, effective)
                self._prepare(job, sliced.extra_vars, limit)
                slices.append(job)
                sliced.jobs.append(job)
            self._run_jobs(slices)
            sliced.finished = time.time()
            sliced.status = "failed" if any(job.status in FAILED for job in slices) else "successful"
            return sliced
        job = self._new_job(template, workflow)
        job.created_by = created_by
        job.launch_type = launch_type if workflow is None else "workflow"
        job.schedule = schedule
        self._prepare(job, runtime_vars, limit)
        self._run_jobs([job])
        return job

    # -- launching ----------------------------------------------------------------

    def launch_job_template(self, name, extra_vars=None, limit=None, job_slice_count=None, schedule=None):
        """POST /job_templates/<id>/launch/ (prompts only where the template asks)."""
        template = self.template(name)
        if template["type"] != "job_template":
            raise LaunchError("%r is not a job template" % name)
        if limit is not None and not template.get("ask_limit_on_launch"):
            raise LaunchError("job template %r does not prompt for a limit" % name)
        if job_slice_count is not None and not template.get("ask_job_slice_count_on_launch"):
            raise LaunchError("job template %r does not prompt for a slice count" % name)
        accepted = accept_variables(template, extra_vars, "job template")
        return self._launch_template(
            template,
            accepted,
            limit,
            slice_count=job_slice_count,
            created_by=None if schedule else self.user,
            launch_type="scheduled" if schedule else "manual",
            schedule=schedule,
        )

    def launch_workflow(
        self,
        name=None,
        extra_vars=None,
        approval="approve",
        cancel_after=None,
        schedule=None,
        launch_type=None,
        _extra_vars_as_is=None,
    ):
        """POST /workflow_job_templates/<id>/launch/ and run the graph to its end.

        approval: "approve", "deny", "timeout", or callable(workflow_job, node)
        returning one of them; cancel_after: a node identifier after whose job
        the workflow job is canceled (a person pressing Cancel)."""
        template = self.template(name or self.assets["workflow"]["name"])
        if template["type"] != "workflow_job_template":
            raise LaunchError("%r is not a workflow job template" % template["name"])
        if _extra_vars_as_is is not None:
            variables = dict(_extra_vars_as_is)
        else:
            accepted = accept_variables(template, extra_vars, "workflow job template")
            variables = dict(template.get("extra_vars") or {})
            variables.update(survey_defaults(template.get("survey")))
            variables.update(accepted)
        wj = WorkflowJob(
            self._next_id(),
            template["name"],
            variables,
            None if schedule else self.user,
            launch_type or ("scheduled" if schedule else "manual"),
            schedule=schedule,
            template=template,
        )
        self.all.append(wj)
        for spec in template["nodes"]:
            wj.nodes[spec["identifier"]] = Node(spec)
        self._run_graph(wj, approval, cancel_after)
        return wj

    def relaunch(self, workflow_job, approval="approve", cancel_after=None):
        """POST /workflow_jobs/<id>/relaunch/: a new workflow job with the same variables."""
        return self.launch_workflow(
            workflow_job.name,
            approval=approval,
            cancel_after=cancel_after,
            launch_type="relaunch",
            _extra_vars_as_is=workflow_job.extra_vars,
        )

    def run_schedule(self, name, **kwargs):
        """What the scheduler does when the schedule is due."""
        schedule = self.schedules[name]
        template = self.template(schedule["unified_job_template"])
        if template["type"] == "workflow_job_template":
            return self.launch_workflow(
                template["name"], extra_vars=schedule.get("extra_data") or {}, schedule=schedule, **kwargs
            )
        return self.launch_job_template(
            template["name"], extra_vars=schedule.get("extra_data") or {}, schedule=schedule
        )

    def create_schedule(self, schedule):
        """POST /schedules/ (awx.awx.schedule): AWX checks the schedule's
        extra_data as a launch's answers, the required rule included
        (ScheduleSerializer), and refuses the schedule otherwise."""
        template = self.template(schedule["unified_job_template"])
        try:
            accept_variables(template, schedule.get("extra_data") or {}, "schedule's template")
        except LaunchError as exc:
            raise LaunchError("Unable to create schedule %s: %r" % (schedule["name"], exc.errors), exc.errors)
        self.schedules[schedule["name"]] = dict(schedule, id=self._next_id())
        return self.schedules[schedule["name"]]

    # -- the graph (WorkflowDAG) ----------------------------------------------

    @staticmethod
    def _parents(wj, node, kind=None):
        kinds = (kind,) if kind else ("success_nodes", "failure_nodes", "always_nodes")
        return [other for other in wj.nodes.values() if any(node.identifier in other.children(k) for k in kinds)]

    @staticmethod
    def _followed(wj, node):
        """Children reached from a finished node."""
        job = node.job
        kinds = ("failure_nodes", "always_nodes") if job.status in FAILED else ("success_nodes", "always_nodes")
        return [wj.nodes[c] for k in kinds for c in node.children(k)]

    def _relevant_parents_finished(self, wj, node):
        for parent in self._parents(wj, node):
            if parent.do_not_run:
                continue
            if parent.job is None or parent.job.status not in DONE:
                return False
        return True

    def _all_parents_met(self, wj, node):
        for parent in self._parents(wj, node):
            if parent.job is not None and parent.job.status in ("successful", "failed"):
                kind = "success_nodes" if parent.job.status == "successful" else "failure_nodes"
                if node.identifier not in parent.children(kind) + parent.children("always_nodes"):
                    return False
        return True

    def _roots(self, wj):
        return [node for node in wj.nodes.values() if not self._parents(wj, node)]

    def _nodes_to_run(self, wj):
        queue = self._roots(wj)
        found, seen = [], set()
        for node in queue:
            if node.identifier in seen:
                continue
            seen.add(node.identifier)
            if node.do_not_run:
                continue
            if node.job is not None:
                if node.job.status in DONE:
                    queue.extend(self._followed(wj, node))
                continue
            if self._relevant_parents_finished(wj, node) and (
                not node.spec.get("all_parents_must_converge") or self._all_parents_met(wj, node)
            ):
                found.append(node)
        return found

    def _mark_do_not_run(self, wj):
        changed = True
        roots = set(n.identifier for n in self._roots(wj))
        while changed:
            changed = False
            for node in wj.nodes.values():
                if node.do_not_run or node.job is not None or node.identifier in roots:
                    continue
                parents = self._parents(wj, node)
                if node.spec.get("all_parents_must_converge"):
                    if any(p.do_not_run for p in parents) or not self._all_parents_met(wj, node):
                        if all(p.do_not_run or (p.job is not None and p.job.status in DONE) for p in parents):
                            node.do_not_run = changed = True
                    continue
                if not all(p.do_not_run or (p.job is not None and p.job.status in DONE) for p in parents):
                    continue
                if not any(p.job is not None and node in self._followed(wj, p) for p in parents):
                    node.do_not_run = changed = True

    def _has_failed(self, wj):
        for node in wj.nodes.values():
            if node.job is not None and node.job.status in FAILED:
                if not node.children("failure_nodes") + node.children("always_nodes"):
                    return True
        return False

    def _spawn(self, wj, node, approval):
        artifacts = {}
        for parent in self._parents(wj, node):
            artifacts.update(parent.ancestor_artifacts)
            if parent.job is not None:
                artifacts.update(parent.job.effective_artifacts())
        if self._parents(wj, node):
            node.ancestor_artifacts = artifacts
        ujt = node.ujt
        if ujt.get("type") == "workflow_approval":
            approval_job = Approval(self._next_id(), ujt)
            node.job = approval_job
            wj.jobs.append(approval_job)
            self.all.append(approval_job)
            approval_job.started = time.time()
            decision = approval(wj, node) if callable(approval) else approval
            if decision not in ("approve", "deny", "timeout"):
                raise ValueError("approval must be approve, deny or timeout, not %r" % (decision,))
            if decision == "timeout" and not approval_job.timeout:
                raise AssertionError("approval %r has no timeout: it would wait for ever" % approval_job.name)
            approval_job.timed_out = decision == "timeout"
            approval_job.status = "successful" if decision == "approve" else "failed"
            approval_job.finished = time.time()
            return
        template = self.template(ujt["name"])
        prompts = {}
        if node.spec.get("extra_data") and (template.get("ask_variables_on_launch") or template.get("survey")):
            prompts.update(accept_variables(template, node.spec["extra_data"], "job template", validate_required=False))
        runtime = dict(prompts)
        runtime.update(artifacts)
        runtime.update(wj.extra_vars)
        limit = node.spec.get("limit") if template.get("ask_limit_on_launch") and node.spec.get("limit") else None
        slices = node.spec.get("job_slice_count") if template.get("ask_job_slice_count_on_launch") else None
        job = self._launch_template(template, runtime, limit, workflow=wj, slice_count=slices)
        node.job = job
        wj.jobs.append(job)

    def _run_graph(self, wj, approval, cancel_after):
        wj.status = "running"
        wj.started = time.time()
        while not wj.canceled:
            self._mark_do_not_run(wj)
            ready = self._nodes_to_run(wj)
            if not ready:
                break
            if len(ready) > 1 and any(n.ujt.get("type") != "workflow_approval" for n in ready):
                threads = [threading.Thread(target=self._spawn, args=(wj, n, approval)) for n in ready]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            else:
                for node in ready:
                    self._spawn(wj, node, approval)
            if cancel_after and any(n.identifier == cancel_after for n in ready):
                wj.canceled = True
        wj.finished = time.time()
        if wj.canceled:
            wj.status = "canceled"
        else:
            wj.status = "failed" if self._has_failed(wj) else "successful"


def job_report_folder(awx, job):
    """The report folder a job's callback wrote (its name or a parent's
    carries job-<id>), or None."""
    pattern = re.compile(r"(^|[-_/])job-%d($|/)" % job.id)
    for folder, dirs, files in os.walk(awx.reports_dir):
        dirs.sort()
        if "report.json" in files and pattern.search(os.path.relpath(folder, awx.reports_dir)):
            return folder
    return None
