"""The client task's arguments: templated as ansible-core does, without a Jinja
compile for an argument that only names a variable (issue 12).

ansible-core 2.19 compiles every template again in every worker, and each
client is a worker: the role's "{{ sms_client_<option> }}" arguments were
most of what a client cost beyond one ping. The client action plugins follow
such a bare variable to its value themselves (plugin_utils/sms_controller.py,
`finalize_task_arg`); these tests hold that to give exactly what ansible-core's
own templating gives, case by case, and count the compiles it saves.
"""

import pytest

import sms_testlib

sms_testlib.install_collection_loader()

from ansible.errors import AnsibleError  # noqa: E402
from ansible.module_utils.datatag import deprecate_value  # noqa: E402
from ansible.plugins.action import ActionBase  # noqa: E402
from ansible.template import trust_as_template  # noqa: E402
from ansible.utils.display import Display  # noqa: E402
from ansible._internal._templating._engine import TemplateEngine  # noqa: E402
from ansible_collections.sms.hotfix.plugins.plugin_utils import sms_controller  # noqa: E402
from ansible_collections.sms.hotfix.plugins.action.sms_client_upgrade import ActionModule  # noqa: E402

T = trust_as_template


class MyList(list):
    """A list ansible-core does not template as one (it converts it, with a warning)."""


VARIABLES = {
    "inventory_hostname": "client07",
    "ansible_playbook_python": "/usr/bin/python3",
    "sms_client_state": T("upgraded"),
    "sms_client_cpu_window": 1.0,
    "sms_client_stop_timeout": 10,
    "sms_client_flag": True,
    "sms_client_nothing": None,
    "sms_client_graceful_signals": [T("TERM")],
    # a chain of bare variables ending in an expression
    "sms_client_manifest": T("{{ __sms_manifest }}"),
    "__sms_manifest": T("{{ sms_hotfix_manifest | default('/opt/hotfix/manifest.json') }}"),
    # a list whose items are bare variables and literals
    "sms_client_smsrun_argv": [T("{{ ansible_playbook_python }}"), T("smsrun"), T("--host"),
                               T("{{ inventory_hostname }}")],
    "sms_client_settings": {"who": T("{{ inventory_hostname }}"), "n": 3},
    # the string a client wrote on its disk: data, never a template
    "sms_client_untrusted": "{{ inventory_hostname }}",
    # a variable that is not the rollout's: left to Jinja
    "foreign": T("{{ sms_client_state }}"),
    "sms_client_to_foreign": T("{{ foreign }}"),
    "sms_client_omitted": T("{{ omit }}"),
    "sms_client_loop_a": T("{{ sms_client_loop_b }}"),
    "sms_client_loop_b": T("{{ sms_client_loop_a }}"),
    # deprecated values (a vars plugin may tag one): Jinja warns where they are used
    "sms_client_old": deprecate_value("old", "sms_client_old is deprecated", version="2.0.0", collection_name="sms.hotfix"),
    "sms_client_to_old": T("{{ sms_client_old }}"),
    "sms_client_list_with_old": [T("{{ inventory_hostname }}"),
                                 deprecate_value("x", "an old item", version="2.0.0", collection_name="sms.hotfix")],
    "sms_client_dict_with_old": {"a": {"b": deprecate_value("y", "a deep old value", version="2.0.0", collection_name="sms.hotfix")}},
    "sms_client_mylist": MyList([T("{{ inventory_hostname }}")]),
}

SAME_AS_ANSIBLE = [
    "{{ sms_client_state }}",
    "{{sms_client_state}}",
    "{{ sms_client_cpu_window }}",
    "{{ sms_client_stop_timeout }}",
    "{{ sms_client_flag }}",
    "{{ sms_client_nothing }}",
    "{{ sms_client_graceful_signals }}",
    "{{ sms_client_manifest }}",
    "{{ sms_client_smsrun_argv }}",
    "{{ sms_client_settings }}",
    "{{ sms_client_untrusted }}",
    "{{ sms_client_to_foreign }}",
    "{{ foreign }}",
    "{{ inventory_hostname }}",
    "{{ sms_client_state }}-{{ inventory_hostname }}",
    "{{ sms_client_state | upper }}",
    "literal",
    ["{{ sms_client_state }}", "x", "{{ inventory_hostname }}"],
    "{{ sms_client_old }}",
    "{{ sms_client_to_old }}",
    "{{ sms_client_list_with_old }}",
    "{{ sms_client_dict_with_old }}",
    "{{ sms_client_mylist }}",
    ["{{ sms_client_state }}", "{{ sms_client_old }}"],
    ["{{ sms_client_state }}", deprecate_value("z", "an old literal", version="2.0.0", collection_name="sms.hotfix")],
]


class Counting(TemplateEngine):
    """A template engine that notes every template it compiles."""

    compiled = []

    def _compile_template(self, template, options):
        Counting.compiled.append(str(template))
        return super()._compile_template(template, options)


def engine():
    return Counting(variables=dict(VARIABLES))


def trusted(value):
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return T(value)


def ours(value):
    return ActionModule.finalize_task_arg("arg", trusted(value), engine(), None)


def ansibles(value):
    return ActionBase.finalize_task_arg("arg", trusted(value), engine(), None)


@pytest.fixture
def said(monkeypatch):
    """Every warning and deprecation ansible-core's Display is given."""
    notes = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *a, **k: notes.append(("warning", str(msg))))
    monkeypatch.setattr(Display, "deprecated", lambda self, msg, *a, **k: notes.append(("deprecated", str(msg))))
    monkeypatch.setattr(Display, "_deprecated_with_plugin_info",
                        lambda self, *a, **k: notes.append(("deprecated", str(k.get("msg")))))
    return notes


@pytest.mark.parametrize("value", SAME_AS_ANSIBLE, ids=[str(v) for v in SAME_AS_ANSIBLE])
def test_an_argument_resolves_to_what_ansible_core_resolves_it_to(value, said):
    expected = ansibles(value)
    theirs = list(said)
    del said[:]
    got = ours(value)
    assert got == expected and type(got) is type(expected), (got, expected)
    assert said == theirs  # the same warnings and deprecations


def test_a_deprecated_value_still_warns_and_a_foreign_list_type_is_converted(said):
    assert ours("{{ sms_client_to_old }}") == "old"
    assert said and all("sms_client_old is deprecated" in text for _kind, text in said), said
    del said[:]
    # ansible-core converts a list subclass and leaves its templates alone
    assert ours("{{ sms_client_mylist }}") == ["{{ inventory_hostname }}"]
    assert any("MyList" in text for _kind, text in said), said


def test_the_values_are_the_variables_own():
    assert ours("{{ sms_client_manifest }}") == "/opt/hotfix/manifest.json"
    assert ours("{{ sms_client_smsrun_argv }}") == ["/usr/bin/python3", "smsrun", "--host", "client07"]
    assert ours("{{ sms_client_cpu_window }}") == 1.0
    # a string from a client's disk stays data, as in ansible-core
    assert ours("{{ sms_client_untrusted }}") == "{{ inventory_hostname }}"


def test_a_bare_variable_costs_no_compile_and_a_chain_only_its_last_expression():
    Counting.compiled = []
    ours("{{ sms_client_state }}")
    ours("{{ sms_client_smsrun_argv }}")
    ours("{{ sms_client_graceful_signals }}")
    assert Counting.compiled == []
    ours("{{ sms_client_manifest }}")
    assert Counting.compiled == ["{{ sms_hotfix_manifest | default('/opt/hotfix/manifest.json') }}"]
    # ansible-core's own: one compile per template on the way
    Counting.compiled = []
    ansibles("{{ sms_client_manifest }}")
    ansibles("{{ sms_client_smsrun_argv }}")
    assert Counting.compiled == [
        "{{ sms_client_manifest }}", "{{ __sms_manifest }}", "{{ sms_hotfix_manifest | default('/opt/hotfix/manifest.json') }}",
        "{{ sms_client_smsrun_argv }}", "{{ ansible_playbook_python }}", "{{ inventory_hostname }}"]


def test_a_foreign_variable_is_left_to_jinja():
    Counting.compiled = []
    assert ours("{{ sms_client_to_foreign }}") == "upgraded"
    # sms_client_to_foreign followed; {{ foreign }} and what it names compiled by Jinja
    assert Counting.compiled == ["{{ foreign }}", "{{ sms_client_state }}"]


@pytest.mark.parametrize("value", ["{{ sms_client_undefined }}", "{{ sms_client_loop_a }}"])
def test_an_undefined_or_endless_variable_fails_as_in_ansible_core(value):
    with pytest.raises(AnsibleError) as theirs:
        ansibles(value)
    with pytest.raises(AnsibleError) as mine:
        ours(value)
    assert type(mine.value) is type(theirs.value)
    if "undefined" in value:
        assert "sms_client_undefined" in str(mine.value) and "is undefined" in str(mine.value), str(mine.value)


def test_omit_is_left_to_ansible_core():
    with pytest.raises(AnsibleError) as theirs:
        ansibles("{{ sms_client_omitted }}")
    with pytest.raises(AnsibleError) as mine:
        ours("{{ sms_client_omitted }}")
    assert type(mine.value) is type(theirs.value)


def test_the_followed_names_are_the_rollouts_and_plain_magic_variables():
    follow = sms_controller.follow_bare_variables
    variables = {"hostvars": {"a": 1}, "groups": {"all": []}, "sms_x": 1, "__sms_y": 2, "inventory_hostname": "c"}
    for name in ("hostvars", "groups"):
        assert follow(T("{{ %s }}" % name), variables) == "{{ %s }}" % name
    assert follow(T("{{ sms_x }}"), variables) == 1
    assert follow(T("{{ __sms_y }}"), variables) == 2
    assert follow(T("{{ inventory_hostname }}"), variables) == "c"
    # untrusted, or not a bare name: untouched
    assert follow("{{ sms_x }}", variables) == "{{ sms_x }}"
    for text in ("{{ sms_x.y }}", "{{ sms_x }} ", "{{ sms_x }}{{ sms_x }}", "{{ sms_x | int }}", "{% if 1 %}1{% endif %}"):
        assert follow(T(text), variables) == text
