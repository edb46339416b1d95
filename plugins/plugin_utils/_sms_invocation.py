# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How this run was started, as plain data, and a command line like it.

One place for both: the report callback's closing "go on"/"undo" line and
the plan's refusals (a --limit that leaves out the site server) print
commands built here, from the run's own arguments (secrets excepted).
"""

from __future__ import annotations

import os
import sys

from ansible import constants as C
from ansible import context

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def playbook_path(*parts):
    """A playbook of this collection, when it is there."""
    path = os.path.join(COLLECTION_ROOT, *parts)
    return path if os.path.isfile(path) else None


def running_program():
    """The ansible-playbook this process runs (the one of its own interpreter,
    wherever the operator's PATH points): what a printed command names."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith("ansible-playbook") and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return beside if os.path.isfile(beside) else None


def current():
    """This run's playbooks, inventory, limit, extra vars, check/diff and working folder."""
    args = context.CLIARGS or {}
    inventory = list(args.get("inventory") or [])
    default = list(C.DEFAULT_HOST_LIST or [])
    return {
        "playbooks": [str(p) for p in (args.get("args") or [])],
        # the configured default inventory is not repeated on the command line
        "inventory": [str(i) for i in inventory] if inventory != default else [],
        "limit": args.get("subset"),
        "extra_vars": [str(e) for e in (args.get("extra_vars") or [])],
        "check": bool(args.get("check")),
        "diff": bool(args.get("diff")),
        "cwd": os.getcwd(),
        "program": running_program(),
        "rollback_playbook": playbook_path("playbooks", "rollback.yml") or "sms.hotfix.rollback",
        "rollout_playbook": playbook_path("rollout.yml") or "rollout.yml",
    }


def rerun(invocation, limit=None, playbooks=None, check=None):
    """The run's own command line, with another --limit (or playbooks) when given."""
    from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_console import command

    if limit is not None:
        invocation = dict(invocation, limit=limit)
    return command(invocation, playbooks, check=check)
