"""A lab site whose hosts are reached over SMB: the lab twin's folders served by Samba.

`SmbSite(root).start()` builds a lab (the Maintenance Manager twin runs, as
the real site's own service would), starts Samba with one address and the
real share names per host (samba.py), and writes an inventory in which every
host is reached the way an operator reaches a Windows site: the modules run
on the controller (`ansible_connection: local`) with `sms_access: smb`.
"""

import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from samba import USER, Samba  # noqa: E402
from sms_e2e import REPO, Lab, lab_cmd  # noqa: E402


class SmbSite:
    def __init__(self, root, clients=4, alpha=1, cycle=2):
        self.root = str(root)
        self.options = [
            "--clients",
            str(clients),
            "--alpha",
            str(alpha),
            "--cycle",
            str(cycle),
            "--no-smsrun",
            "--hung",
            "0",
        ]
        self.lab = None
        self.samba = None

    def start(self):
        lab_root = os.path.join(self.root, "lab")
        lab_cmd("build", "--root", lab_root, *self.options)
        self.lab = Lab(lab_root)
        spec = self.lab.spec
        servers = sorted(set([spec["site_server"]] + list(spec["logon_servers"])))
        hosts = {}
        for name in servers:
            hosts[name] = {"SMS_SHRC": self.lab.host(name, "SMS"), "SMS_SHR": self.lab.host(name, "SMS", "Logon.srv")}
        for client in self.lab.clients():
            hosts[client] = {"C$": self.lab.host(client)}
        self.samba = Samba(os.path.join(self.root, "samba"), hosts).start()
        self.inventory = os.path.join(self.root, "inventory.yml")
        self.write_inventory()
        return self

    def write_inventory(self, password=None, **overrides):
        spec = self.lab.spec
        addresses = self.samba.addresses
        servers = sorted(set([spec["site_server"]] + list(spec["logon_servers"])))
        inventory = {
            "all": {
                "vars": dict(
                    {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "sms_access": "smb",
                        "sms_smb_user": USER,
                        "sms_smb_password": password or self.samba.password,
                        "sms_smb_addresses": {name: addresses[name] for name in servers},
                        "sms_smb_timeout": 5,
                        "sms_replication_trigger_argv": [
                            sys.executable,
                            os.path.join(REPO, "lab", "sms-lab"),
                            "pass-now",
                            "--root",
                            self.lab.root,
                        ],
                    },
                    **overrides,
                ),
                "children": {
                    "site_server": {"hosts": {spec["site_server"]: {"sms_smb_server": addresses[spec["site_server"]]}}},
                    "logon_servers": {"hosts": {name: {"sms_smb_server": addresses[name]} for name in servers}},
                    "clients": {
                        "children": {
                            "clients_%s" % platform: {
                                "vars": {"sms_client_platform": platform},
                                "hosts": {
                                    c["name"]: {"sms_smb_server": addresses[c["name"]]}
                                    for c in spec["clients"]
                                    if c["platform"] == platform
                                },
                            }
                            for platform in ("x86", "alpha")
                        }
                    },
                },
            }
        }
        with open(self.inventory, "w") as handle:
            # keep the lab's host order: the waves are cut in inventory order
            yaml.safe_dump(inventory, handle, default_flow_style=False, sort_keys=False)
        self.lab.inventory = self.inventory
        return self.inventory

    def stop(self):
        problems = []
        if self.samba is not None:
            self.samba.stop()
            problems += self.samba.leftovers()
        if self.lab is not None:
            lab_cmd("down", "--root", self.lab.root, check=False)
        return problems


__all__ = ["SmbSite", "json"]
