"""The plan's guard rails (plugins/action/sms_rollout_check.py), one function at a time.

End to end (a real --limit, a live second run, a run from another folder)
in tests/e2e/test_guard_rails_e2e.py.
"""

import os

import yaml
from ansible import constants as C

from ansible_collections.sms.hotfix.plugins.action import sms_rollout_check as check
from sms_testlib import REPO


def test_an_unsupported_ansible_core_is_refused_naming_found_supported_and_the_install(monkeypatch):
    import ansible.release

    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        wanted = yaml.safe_load(handle)["requires_ansible"]
    monkeypatch.setattr(C, "CALLBACKS_ENABLED", [check.CALLBACK])
    assert check.core_problems() == [], "the running ansible-core is refused"
    monkeypatch.setattr(ansible.release, "__version__", "2.18.19")
    [problem] = check.core_problems()
    assert "ansible-core 2.18.19 is not supported by the sms.hotfix collection (supported: %s" % wanted in problem
    assert "make venv" in problem and "-m pip install 'ansible-core%s'" % wanted in problem


def test_a_run_without_the_report_callback_is_refused_saying_how_to_enable_it(monkeypatch):
    monkeypatch.setattr(C, "CALLBACKS_ENABLED", [])
    monkeypatch.setattr(C, "CONFIG_FILE", None)
    [problem] = check.core_problems()
    assert "no ansible.cfg was read" in problem
    assert "ANSIBLE_CONFIG=%s" % os.path.join(os.path.realpath(REPO), "ansible.cfg") in problem
    assert "ANSIBLE_CALLBACKS_ENABLED=sms.hotfix.sms_rollout_report" in problem


def test_a_limit_must_keep_the_site_server_and_the_refusal_gives_the_command_that_does():
    groups = {"site_server": ["smssite"], "clients": ["c1", "c2"]}
    needs = [{"group": "site_server", "label": "the site server"}]
    assert check.limit_problems("", ["c1"], needs, groups) == []
    assert check.limit_problems("smssite,c1", ["smssite", "c1"], needs, groups) == []
    [problem] = check.limit_problems("c1", ["c1"], needs, groups)
    assert problem.startswith("--limit c1 leaves out the site server (smssite)")
    assert "--limit site_server,c1" in problem
    assert check.limit_problems("c1", ["c1"], [], groups) == []  # no lock follows (clients.yml, plan.yml alone)
    [problem] = check.limit_problems("c1", ["c1"], needs, groups, awx=True)  # AWX's Limit field
    assert problem.endswith("launch it again with Limit site_server,c1")


def test_known_names_are_read_from_the_roles_and_playbooks_not_kept_by_hand():
    known = check.known_names()
    for role in os.listdir(os.path.join(REPO, "roles")):
        with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry in specs.values():
            assert set(entry.get("options") or {}) <= known, role
    # playbook-level settings and the host model
    for name in (
        "sms_rollout_waves",
        "sms_rollout_window",
        "sms_rollout_holder",
        "sms_hotfix_manifest",
        "sms_drive_root",
        "sms_access",
        "sms_module_bytecode",
        "sms_unlock_force",
    ):
        assert name in known, name


def test_an_unknown_name_gets_where_and_the_nearest_known_one():
    known = frozenset(["sms_rollout_waves", "sms_rollout_window", "sms_client_stop_timeout"])
    problems = check.unknown_problems(
        {
            "sms_rollout_wave": {"with -e"},
            "sms_rollout_waves": {"with -e"},
            "sms_lab_root": {"in the inventory for group all"},
            "sms_zzz": {"in the inventory for host c1"},
        },
        known,
    )
    assert problems == [
        "sms_rollout_wave is not a variable the rollout knows (set with -e); a misspelt setting would be ignored, "
        "so the rollout does not start: correct or remove it. Did you mean sms_rollout_waves?",
        "sms_zzz is not a variable the rollout knows (set in the inventory for host c1); a misspelt setting would "
        "be ignored, so the rollout does not start: correct or remove it",
    ]


def run_check(args, task_vars=None, deprecations=None):
    from types import SimpleNamespace

    task = SimpleNamespace(args=args, async_val=0, check_mode=False, action="sms.hotfix.sms_rollout_check")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    plugin = check.ActionModule(task, connection, None, None, None)
    if deprecations is not None:
        plugin._display = SimpleNamespace(deprecated=lambda msg, **kw: deprecations.append(dict(kw, msg=msg)))
    return plugin.run(task_vars=task_vars or {})


def test_status_says_whether_the_inputs_hold():
    passed = run_check({"waves": [1, "10%"], "max_fail_percentage": 20})
    assert passed["status"] == "passed" and not passed.get("failed"), passed
    refused = run_check({"waves": [0], "max_fail_percentage": 20})
    assert refused["status"] == "refused" and refused["failed"] is True and refused["problems"], refused
    # refused before any other check: a --limit that leaves out the site server
    needs = [{"group": "site_server", "label": "the site server"}]
    early = run_check(
        {"limit": {"value": "c1", "kept": ["c1"], "needs": needs}},
        {"groups": {"site_server": ["smssite"], "clients": ["c1"]}},
    )
    assert early["status"] == "refused" and early["failed"] is True, early
    assert early["problems"][0].startswith("--limit c1 leaves out the site server")


def test_check_controller_is_the_new_name_of_core_which_still_works_with_a_deprecation(monkeypatch):
    monkeypatch.setattr(check, "core_problems", lambda: ["ansible-core checked"])
    said = []
    new = run_check({"check_controller": True}, deprecations=said)
    assert new["status"] == "refused" and new["problems"] == ["ansible-core checked"] and said == [], new
    assert run_check({"check_controller": False}, deprecations=said)["status"] == "passed" and said == []
    old = run_check({"core": True}, deprecations=said)
    assert old["status"] == "refused" and old["problems"] == ["ansible-core checked"], old
    assert said == [
        {
            "msg": "sms_rollout_check: the option core is now called check_controller; use that name",
            "version": "2.0.0",
            "collection_name": "sms.hotfix",
        }
    ]
    both = run_check({"core": True, "check_controller": True}, deprecations=said)
    assert both["failed"] is True and both["status"] == "refused" and "not both" in both["msg"], both
    # the playbooks use the new name
    for name in ("plan.yml", "compliance.yml", "logon.yml", "clients.yml"):
        with open(os.path.join(REPO, "playbooks", name)) as handle:
            text = handle.read()
        assert "check_controller: true" in text and "core: true" not in text, name
