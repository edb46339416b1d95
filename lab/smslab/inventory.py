"""The lab's Ansible inventory, rendered as YAML text (stdlib only).

render(root_expr, tool_expr, spec) gives the inventory with `sms_lab_root` and
`sms_lab_tool` set to the given values: absolute paths for <root>/inventory.yml,
Jinja expressions for the committed static inventories/lab/hosts.yml.
"""

import json

from .spec import as_spec

STATIC_ROOT_EXPR = ("{{ lookup('ansible.builtin.env', 'SMS_LAB_ROOT')"
                    " | default(inventory_dir ~ '/../../.lab', true) }}")
STATIC_TOOL_EXPR = ("{{ lookup('ansible.builtin.env', 'SMS_LAB_TOOL')"
                    " | default(inventory_dir ~ '/../../lab/sms-lab', true) }}")


def _q(value):
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


def _argv(items, indent):
    pad = " " * indent
    return "".join("%s- %s\n" % (pad, _q(i)) for i in items)


def _hosts(names, indent):
    pad = " " * indent
    if not names:
        return "%shosts: {}\n" % pad
    return "%shosts:\n" % pad + "".join("%s  %s:\n" % (pad, n) for n in names)


def render(root_expr, tool_expr, spec):
    """The inventory YAML text for `spec` (a Spec or a lab.json dict)."""
    spec = as_spec(spec)
    out = []
    out.append("# SMS 1.2 lab twin inventory (written by lab/sms-lab; see docs/LAB.md).\n")
    out.append("# Every host is a directory under sms_lab_root/hosts standing for its C:\\.\n")
    out.append("all:\n")
    out.append("  vars:\n")
    out.append("    ansible_connection: local\n")
    out.append("    ansible_python_interpreter: %s\n" % _q("{{ ansible_playbook_python }}"))
    out.append("    sms_lab_root: %s\n" % _q(root_expr))
    out.append("    sms_lab_tool: %s\n" % _q(tool_expr))
    out.append("    sms_drive_root: %s\n" % _q("{{ sms_lab_root }}/hosts/{{ inventory_hostname }}"))
    out.append("    sms_share_path_pattern: %s\n" % _q("{{ sms_lab_root }}/hosts/{server}/SMS/Logon.srv"))
    # Every lab client is a folder of this one machine, sharing its process
    # table: a client's SMSRUN32s are the ones naming a path in its folder.
    out.append("    sms_client_process_scope: drive\n")
    out.append("    sms_replication_trigger_argv:\n")
    out.append(_argv(["{{ ansible_playbook_python }}", "{{ sms_lab_tool }}", "pass-now",
                      "--root", "{{ sms_lab_root }}"], 6))
    out.append("    sms_client_smsrun_argv:\n")
    out.append(_argv(["{{ ansible_playbook_python }}", "{{ sms_lab_tool }}", "smsrun",
                      "--root", "{{ sms_lab_root }}", "--host", "{{ inventory_hostname }}"], 6))
    # The client service stand-in (sms-lab service), restarted after an
    # upgrade and checked by the watch; the watch is seconds long here.
    tool = ["{{ ansible_playbook_python }}", "{{ sms_lab_tool }}"]
    where = ["--root", "{{ sms_lab_root }}", "--host", "{{ inventory_hostname }}"]
    out.append("    sms_client_restart: service\n")
    for action in ("start", "stop", "status"):
        out.append("    sms_client_service_%s_argv:\n" % action)
        out.append(_argv(tool + ["service"] + where + [action], 6))
    out.append("    sms_client_reboot_stand_in_argv:\n")
    out.append(_argv(tool + ["reboot"] + where, 6))
    out.append("    sms_client_verify_seconds: 1\n")
    out.append("    sms_client_canary_verify_seconds: 2\n")
    out.append("    sms_client_verify_interval: 0.5\n")
    out.append("  children:\n")
    out.append("    site_server:\n")
    out.append(_hosts([spec.site_server], 6))
    out.append("    logon_servers:\n")
    out.append(_hosts(spec.logon_server_names, 6))
    out.append("    clients:\n")
    out.append("      children:\n")
    for platform in ("x86", "alpha"):
        out.append("        clients_%s:\n" % platform)
        out.append("          vars:\n")
        out.append("            sms_client_platform: %s\n" % platform)
        out.append(_hosts(spec.clients_of(platform), 10))
    return "".join(out)


def render_static(spec):
    """The repository's static lab inventory (inventories/lab/hosts.yml)."""
    return render(STATIC_ROOT_EXPR, STATIC_TOOL_EXPR, spec)
