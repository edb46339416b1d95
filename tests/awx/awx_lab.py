"""The AWX rehearsal's site: one lab and one rehearsal AWX over it, and the
readers the tests assert on (hashes, SMS.INI bytes, the lock file)."""

import os

import shutil

from awx_rehearsal import Awx
from sms_e2e import MANIFEST, Lab, lab_cmd, load_manifest_json

# The rehearsal's lab: 3 clients (client01 x86 and hung, the canary;
# client02 x86; client03 Alpha), 2 logon servers and the site server: six
# hosts, so the clients template's 4 slices are [client01, logon02],
# [client02, smssite], [client03] and [logon01], a slice of servers only.
LAB_OPTIONS = ["--clients", "3", "--alpha", "1", "--hung", "1", "--cycle", "2"]
CANARY = ["client01"]
DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}
CLIENT_SRC = ("SMS", "Site.srv", "Maincfg.box", "Client.src")
HOTFIX = load_manifest_json()
WANT = {
    platform: {f["name"].lower(): f["sha256"] for f in spec["files"]} for platform, spec in HOTFIX["platforms"].items()
}


class Site:
    """The lab as AWX's inventory sees it, plus the rehearsal AWX."""

    def __init__(self, root, workdir):
        self.root = str(root)
        self.workdir = str(workdir)
        self.lab = Lab(self.root)
        self.build()
        # The inventory file the administrator keeps in the project: the
        # lab's hosts plus the canary group and the logon servers' SMS names
        # as a clients' group variable (a slice cannot see the logon group's
        # members, issue 9).
        self.extra_inventory = os.path.join(self.workdir, "awx-site.yml")
        with open(self.extra_inventory, "w", encoding="utf-8") as handle:
            handle.write(
                "all:\n  children:\n    clients_canary:\n      hosts:\n%s"
                "    clients:\n      vars:\n        sms_logon_server_names: [%s]\n"
                % ("".join("        %s:\n" % c for c in CANARY), ", ".join(s.upper() for s in self.lab.logon_servers()))
            )
        self.reports = os.path.join(self.workdir, "reports")
        # The hotfix on the storage the jobs mount (awx/README.md, "The
        # hotfix"): manifest and payload in a folder of their own, outside the
        # project's checkout, which holds only what git holds (no payload).
        self.hotfix_store = os.path.join(self.workdir, "mnt", "sms-hotfix", "Q216552")
        shutil.copytree(os.path.dirname(MANIFEST), self.hotfix_store)
        self.hotfix_manifest = os.path.join(self.hotfix_store, "manifest.json")
        self.awx = Awx(
            os.path.join(self.workdir, "awx"),
            [self.lab.inventory, self.extra_inventory],
            self.reports,
            hotfix_manifest=self.hotfix_manifest,
        )

    def build(self):
        lab_cmd("build", "--root", self.root, *LAB_OPTIONS)

    def down(self):
        lab_cmd("down", "--root", self.root, check=False)

    # -- what the tests look at --------------------------------------------

    def clients(self):
        return self.lab.clients()

    def platform(self, client):
        with open(self.lab.inventory, encoding="utf-8") as handle:
            alpha_part = handle.read().split("clients_alpha:", 1)[1]
        return "alpha" if "%s:" % client in alpha_part else "x86"

    def has_hotfix(self, client):
        files = self.lab.files(client, "MS", "SMS", "BIN")
        return all(files.get(name) == digest for name, digest in WANT[self.platform(client)].items())

    def client_state(self, client):
        """Everything the rollout may touch on a client: BIN files and SMS.INI."""
        ini = self.lab.host(client, "SMS.INI")
        return (self.lab.snapshot(client, "MS", "SMS", "BIN"), open(ini, "rb").read() if os.path.exists(ini) else None)

    def tiers(self):
        """Bytes (and dates) of every file a rollout or rollback changes."""
        state = {"site": self.lab.snapshot("smssite", *CLIENT_SRC)}
        for server in self.lab.logon_servers():
            for folder in DIRS.values():
                # the maintenance cycle copies content; dates follow the source
                state["%s/%s" % (server, folder)] = dict(
                    (name, value[0]) for name, value in self.lab.snapshot(server, "SMS", "Logon.srv", folder).items()
                )
        for client in self.clients():
            state[client] = self.client_state(client)
        return state

    def lock(self):
        path = self.lab.host("smssite", "SMS", "Hotfix", "rollout.lock")
        if not os.path.exists(path):
            return None
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def break_client(self, client):
        """A client that is not a working SMS client: its upgrade fails."""
        os.rename(self.lab.host(client, "SMS.INI"), self.lab.host(client, "SMS.INI.away"))

    def repair_client(self, client):
        os.rename(self.lab.host(client, "SMS.INI.away"), self.lab.host(client, "SMS.INI"))
