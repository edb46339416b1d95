"""The fleet's inventory, written like a production one (inventories/example/):
SSH to each host's own address as root with the fleet's key, host keys
checked against the fleet's known_hosts, Debian's Python on the hosts, and
the SMS paths as a real host has them. Nothing of the lab's local shortcuts.
"""

import json
import os

HOST_PYTHON = "/usr/bin/python3"
IN_HOST_TOOLS = "/run/sms-fleet/tools"


def _q(value):
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


def _list(items, indent):
    return "".join("%s- %s\n" % (" " * indent, _q(i)) for i in items)


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def ssh_common_args(fleet):
    return " ".join([
        "-o UserKnownHostsFile=%s" % fleet.known_hosts,
        "-o StrictHostKeyChecking=yes",
        "-o IdentitiesOnly=yes",
        # A host whose link went down is found out in 15 s, not after TCP's
        # retransmissions give up (minutes).
        "-o ServerAliveInterval=5",
        "-o ServerAliveCountMax=3",
        "-o ConnectTimeout=10",
    ])


def write(fleet):
    state = fleet.state
    os.makedirs(os.path.join(fleet.inventory_dir, "group_vars"), exist_ok=True)
    hosts = state["hosts"]

    def host_lines(names, indent, extra=None):
        out = ""
        for name in names:
            out += "%s%s:\n" % (" " * indent, name)
            out += "%s  ansible_host: %s\n" % (" " * indent, hosts[name]["address"])
            for key, value in (extra or {}).get(name, {}).items():
                out += "%s  %s: %s\n" % (" " * indent, key, _q(value))
        return out

    clients = {p: [h for h, v in sorted(hosts.items()) if v["role"] == "client" and v["platform"] == p]
               for p in ("x86", "alpha")}
    servers = state["logon_servers"]
    text = "".join([
        "---\n",
        "# The SSH fleet's inventory (written by fleet/sms-fleet; see docs/FLEET.md).\n",
        "# Every host is its own network, mount and PID namespace with its own sshd,\n",
        "# reached at its own address like a real host; variables in group_vars/.\n",
        "all:\n",
        "  children:\n",
        "    site_server:\n",
        "      hosts:\n",
        host_lines([state["site_server"]], 8),
        "    logon_servers:\n",
        "      hosts:\n",
        host_lines(servers, 8, {s: {"sms_server_name": s.upper()} for s in servers}),
        "    clients:\n",
        "      children:\n",
        "        clients_x86:\n",
        "          hosts:\n",
        host_lines(clients["x86"], 12),
        "        clients_alpha:\n",
        "          hosts:\n",
        host_lines(clients["alpha"], 12),
    ])
    _write(fleet.inventory, text)

    all_vars = "".join([
        "---\n",
        "# How Ansible reaches the fleet's hosts: SSH as root with the fleet's key;\n",
        "# host key checking stays on (ansible.cfg), against the fleet's known_hosts.\n",
        "ansible_user: root\n",
        "ansible_ssh_private_key_file: %s\n" % _q(fleet.key),
        "ansible_ssh_common_args: %s\n" % _q(ssh_common_args(fleet)),
        "ansible_python_interpreter: %s\n" % HOST_PYTHON,
        "\n",
        "# Each host's C:\\ and, on clients, each logon server's SMS_SHR share.\n",
        "sms_drive_root: /mnt/c\n",
        "sms_share_path_pattern: /mnt/sms/{server}\n",
        "\n",
        "# The site's logon servers by their SMS names: a client whose SMS.INI\n",
        "# names another server is refused.\n",
        "sms_logon_server_names:\n",
        _list([s.upper() for s in servers], 2),
        "\n",
        "# On the site server: ask its Maintenance Manager for a pass now.\n",
        "sms_replication_trigger_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-lab", "pass-now", "--root", "/run/sms-fleet/mm"], 2),
        "\n",
        "# On a client: start SMSRUN32 again (detached, its output closed).\n",
        "sms_client_smsrun_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "smsrun"], 2),
        "\n",
        "# Each client is a host of its own: its whole process table is its own.\n",
        "sms_client_process_scope: host\n",
        "\n",
        "# The SMS client service stand-in, restarted after the upgrade, and the\n",
        "# twin's reboot (a test hook: the hosts share the machine's kernel).\n",
        "sms_client_restart: service\n",
        "sms_client_service_start_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "service", "start"], 2),
        "sms_client_service_stop_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "service", "stop"], 2),
        "sms_client_service_status_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "service", "status"], 2),
        "sms_client_reboot_stand_in_argv:\n",
        _list([HOST_PYTHON, IN_HOST_TOOLS + "/sms-fleet-host", "reboot"], 2),
        "# The watch of the cure: seconds here.\n",
        "sms_client_verify_seconds: 1\n",
        "sms_client_canary_verify_seconds: 2\n",
        "sms_client_verify_interval: 0.5\n",
    ])
    _write(os.path.join(fleet.inventory_dir, "group_vars", "all.yml"), all_vars)
    for platform in ("x86", "alpha"):
        _write(os.path.join(fleet.inventory_dir, "group_vars", "clients_%s.yml" % platform),
               "---\nsms_client_platform: %s\n" % platform)
