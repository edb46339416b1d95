# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check every input of every tier before the first change (see the module of the same name).

Runs once, on the controller: for each tier it takes each host of the tier's
inventory group, resolves the role's variables as they will be for that host
(inventory, extra vars, the role's defaults) and validates them against the
role's meta/argument_specs.yml, plus what a spec cannot say (groups that
exist and are not empty, waves, platforms, the site's logon server names).
The tiers' roles then run without their per-host validation task
(`rolespec_validate: false`): one task per client, not two.
"""

from __future__ import annotations

import difflib
import os
import re
import sys

import yaml
from ansible import context
from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_bytecode import SWITCH, bytecode_wanted

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ROLES = os.path.join(TOP, "roles")
CALLBACK = "sms.hotfix.sms_rollout_report"
# An sms_* name: not part of an FQCN (sms.hotfix.sms_...) or of a longer word.
_NAME = re.compile(r"(?<![\w.])sms_[a-z0-9_]*[a-z0-9]")
# The lab twin's own inventory variables (lab/sms-lab writes them), not the rollout's.
_LAB = "sms_lab_"
PLATFORMS = ("x86", "alpha", "mips")
_NETBIOS = re.compile(r"^[A-Za-z0-9!@#$%^&()\-_'{}.~]{1,15}$")
SHOW = 8  # hosts named per problem


def role_spec(role, entry):
    path = os.path.join(ROLES, role, "meta", "argument_specs.yml")
    with open(path) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    return specs[entry].get("options", {})


def wave_problems(waves, max_fail):
    problems = []
    if isinstance(waves, (str, int)) and not isinstance(waves, bool):
        waves = [waves]
    if not isinstance(waves, list) or not waves:
        return [
            "sms_rollout_waves must be a list of client counts or percentages, like [1, '10%%', '50%%', "
            "'100%%'], not %r" % (waves,)
        ]
    for wave in waves:
        text = str(wave).strip()
        ok = False
        if isinstance(wave, bool):
            ok = False
        elif isinstance(wave, int) or re.match(r"^[0-9]+$", text):
            ok = int(text) > 0
        elif re.match(r"^[0-9]+(\.[0-9]+)?%$", text):
            ok = 0 < float(text[:-1]) <= 100
        if not ok:
            problems.append(
                "sms_rollout_waves: %r is not a wave: each wave is a positive number of clients or a "
                "percentage in (0, 100], like [1, '10%%', '50%%', '100%%'] (0 would run every client "
                "at once, with no canary)" % (wave,)
            )
    try:
        value = int(str(max_fail).strip())
        if not 0 <= value <= 100:
            raise ValueError(value)
    except (TypeError, ValueError):
        problems.append(
            "sms_rollout_max_fail_percentage must be a whole percentage from 0 to 100, not %r" % (max_fail,)
        )
    return problems


_KNOWN = None


def known_names():
    """Every sms_* variable the rollout knows, read from its own files.

    The roles' argument specs and defaults, and every sms_* name the
    playbooks, the roles' tasks and templates and the plugins use: one list,
    derived, never kept by hand.
    """
    global _KNOWN  # pylint: disable=global-statement
    if _KNOWN is None:
        names = set()
        for folder in ("roles", "playbooks", "plugins"):
            for base, _dirs, files in os.walk(os.path.join(TOP, folder)):
                for name in files:
                    if name.endswith((".yml", ".yaml", ".j2", ".py")):
                        with open(os.path.join(base, name), encoding="utf-8", errors="replace") as handle:
                            names.update(_NAME.findall(handle.read()))
        _KNOWN = frozenset(names)
    return _KNOWN


def unknown_problems(found, known=None):
    """One problem per sms_* name the rollout does not know: where it was set, and the nearest known name.

    `found` maps a name to the places it was set (\"-e\", \"group_vars of group 'clients'\", ...)."""
    known = known_names() if known is None else known
    problems = []
    for name in sorted(found):
        if name in known or name.startswith(_LAB):
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        problems.append(
            "%s is not a variable the rollout knows (set %s); a misspelt setting would be ignored, so "
            "the rollout does not start: correct or remove it%s"
            % (name, ", ".join(sorted(found[name])), (". Did you mean %s?" % near[0]) if near else "")
        )
    return problems


def extra_var_names():
    """The sms_* names given with -e (strings, JSON/YAML or @files) in this run."""
    from ansible.utils.vars import load_extra_vars  # the parse Ansible itself uses

    try:
        from ansible.parsing.dataloader import DataLoader

        data = load_extra_vars(DataLoader())
    except Exception:  # pylint: disable=broad-except  # Ansible has already refused bad extra vars
        return set()
    return {str(k) for k in data if str(k).startswith("sms_")}


def where_set(name, host, hostvars):
    """Where `name` comes from for `host`, as far as the inventory tells."""
    inventory = getattr(hostvars, "_inventory", None)
    found = inventory.get_host(host) if inventory is not None else None
    if found is None:
        return "for %s" % host
    if name in (found.vars or {}):
        return "in the inventory for host %s" % host
    for group in sorted(found.get_groups(), key=lambda g: g.depth, reverse=True):
        if name in (group.vars or {}):
            return "in the inventory for group %s" % group.name
    return "in host_vars/group_vars for %s" % host


def core_problems():
    """An ansible-core outside meta/runtime.yml's requires_ansible, or a run without the rollout's ansible.cfg."""
    from ansible.release import __version__ as found

    with open(os.path.join(TOP, "meta", "runtime.yml"), encoding="utf-8") as handle:
        wanted = str(yaml.safe_load(handle).get("requires_ansible") or "")
    problems = []
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        ok = not wanted or Version(found) in SpecifierSet(wanted)
    except Exception:  # pylint: disable=broad-except  # no packaging: leave it to ansible-core's own warning
        ok = True
    if not ok:
        problems.append(
            "ansible-core %s is not supported by the sms.hotfix collection (supported: %s, from meta/runtime.yml); "
            "nothing was changed. Install a supported one: `make venv` in the checkout, or `%s -m pip install "
            "'ansible-core%s'`" % (found, wanted, sys.executable, wanted)
        )
    if CALLBACK not in (C.CALLBACKS_ENABLED or []):
        config = C.CONFIG_FILE
        read = ("the settings read were %s" % config) if config else "no ansible.cfg was read"
        enable = "ANSIBLE_CALLBACKS_ENABLED=%s (or callbacks_enabled in your ansible.cfg)" % CALLBACK
        settings = os.path.join(TOP, "ansible.cfg")
        if os.path.isfile(settings):  # a checkout: its own ansible.cfg names the callback
            playbooks = [os.path.abspath(p) for p in (context.CLIARGS or {}).get("args") or ()]
            program = (
                os.path.join(os.path.dirname(sys.argv[0]), "ansible-playbook")
                if os.sep in (sys.argv[0] or "")
                else "ansible-playbook"
            )
            how = (
                "Run it from the checkout (cd %s), or name its settings: ANSIBLE_CONFIG=%s %s %s; with the "
                "collection installed elsewhere, enable the callback with %s"
                % (TOP, settings, program, " ".join(playbooks) or "rollout.yml", enable)
            )
        else:  # an installed collection
            how = "Enable it with %s" % enable
        problems.append(
            "the rollout's report callback (%s) is not enabled: %s, so this run would print no summary "
            "and write no report; nothing was changed. %s" % (CALLBACK, read, how)
        )
    return problems


def limit_problems(limit, kept, needs, groups, awx=False):
    """A --limit that leaves out a server the run must touch first (the site server: the lock, the site tier)."""
    if not limit:
        return []
    kept = set(kept or ())
    missing, add = [], []
    for need in needs or ():
        hosts = [h for h in groups.get(need["group"]) or () if h not in kept]
        if hosts:
            missing.append("%s (%s)" % (need.get("label") or need["group"], named(hosts)))
            add.append(need["group"])
    if not missing:
        return []
    wider = ",".join(add + [str(limit)])
    if awx:
        how = "launch it again with Limit %s" % wider
    else:
        from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_invocation import current, rerun

        how = rerun(current(), limit=wider)
    return [
        "--limit %s leaves out %s, which this playbook must go through before any client: the site server "
        "holds the rollout lock and its tier comes first (staged, or rolled back). "
        "Keep it in the limit (what is already done there reports no change): %s" % (limit, "; ".join(missing), how)
    ]


def named(hosts):
    hosts = sorted(hosts)
    text = ", ".join(hosts[:SHOW])
    return text + (" and %d more" % (len(hosts) - SHOW) if len(hosts) > SHOW else "")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "tiers",
            "waves",
            "max_fail_percentage",
            "on_failure",
            "platforms",
            "manifest_platforms",
            "logon_server_names",
            "logon_names_explicit",
            "check_controller",
            "core",
            "limit",
        )
    )

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        hostvars = task_vars.get("hostvars", {})
        groups = task_vars.get("groups", {})
        problems = []
        summary = {}

        if "core" in args:  # its name until 1.1.0, said nothing of what it checks
            if "check_controller" in args:
                result.update(
                    failed=True,
                    status="refused",
                    msg="sms_rollout_check takes check_controller or its old name core, not both; remove core",
                )
                return result
            self._display.deprecated(
                "sms_rollout_check: the option core is now called check_controller; use that name",
                version="2.0.0",
                collection_name="sms.hotfix",
            )
        # First what makes every other check moot: the wrong ansible-core, a
        # run without the rollout's settings, a --limit that skips the lock.
        if boolean(args.get("check_controller", args.get("core", False)), strict=False):
            problems += core_problems()
        limit = args.get("limit")
        if limit and not problems:
            problems += limit_problems(
                limit.get("value"), limit.get("kept"), limit.get("needs"), groups, awx="awx_job_id" in task_vars
            )
        if problems:
            result.update(
                failed=True,
                status="refused",
                problems=problems,
                summary=summary,
                msg="the rollout does not start, and nothing was changed: %s" % "; ".join(problems),
            )
            return result

        found = {name: {"with -e"} for name in extra_var_names()}
        if "waves" in args:
            problems += wave_problems(args.get("waves"), args.get("max_fail_percentage"))
        if args.get("on_failure", "stop") not in ("stop", "rollback"):
            problems.append(
                "sms_rollout_on_failure must be stop (a wave over the threshold stops the rollout) or "
                "rollback (it stops and rolls back what the rollout did), not %r" % (args["on_failure"],)
            )
        platforms = list(args.get("platforms") or [])
        manifest_platforms = list(args.get("manifest_platforms") or [])
        for platform in platforms:
            if platform not in PLATFORMS:
                problems.append("sms_rollout_platforms: %r is not a platform (x86, alpha, mips)" % (platform,))
            elif manifest_platforms and platform not in manifest_platforms:
                problems.append(
                    "sms_rollout_platforms: the hotfix's manifest has no files for %s (it has %s)"
                    % (platform, ", ".join(manifest_platforms))
                )

        for tier in args.get("tiers") or []:
            problems += self.check_tier(tier, hostvars, groups, summary, found)
        if args.get("tiers"):
            problems = unknown_problems(found) + problems

        names = args.get("logon_server_names")
        if names is not None:
            problems += self.check_logon_names(names, args.get("logon_names_explicit"), groups, hostvars, args)

        result["summary"] = summary
        if problems:
            result["failed"] = True
            result["status"] = "refused"
            result["problems"] = problems
            result["msg"] = (
                "the rollout's inputs do not hold (%d problem%s), so it does not start and nothing was "
                "changed: %s" % (len(problems), "" if len(problems) == 1 else "s", "; ".join(problems))
            )
        else:
            result["changed"] = False
            result["status"] = "passed"
            result["msg"] = "every input of every tier is valid: %s" % ", ".join(
                "%s %d host(s)" % (k, v) for k, v in summary.items()
            )
        return result

    def check_tier(self, tier, hostvars, groups, summary, found=None):
        label = tier.get("label") or tier["role"]
        group = tier["group"]
        group_var = tier.get("group_var", "")
        hosts = list(groups.get(group) or [])
        summary[label] = len(hosts)
        if not hosts:
            if tier.get("require_hosts", True):
                if group not in groups:
                    return [
                        "the inventory has no group %r for the %s (%s); name the right group with %s=<group> "
                        "or add the group to the inventory" % (group, label, group_var, group_var)
                    ]
                return [
                    "the inventory group %r of the %s (%s) has no hosts; add the hosts, or name the right group "
                    "with %s=<group>" % (group, label, group_var, group_var)
                ]
            return []
        problems = []
        if tier.get("single") and len(hosts) > 1:
            problems.append(
                "the inventory group %r of the %s holds %d hosts (%s); an SMS site has one site server"
                % (group, label, len(hosts), named(hosts))
            )
        spec = role_spec(tier["role"], tier.get("entry", "main"))
        params = tier.get("params") or {}
        validator = ArgumentSpecValidator(spec)
        by_error = {}
        platforms = tier.get("platforms")
        for host in hosts:
            host_vars = hostvars[host]  # each lookup resolves every variable of the host again: once
            if found is not None:
                for name in host_vars:
                    if name.startswith("sms_") and name not in found:
                        found[name] = {where_set(name, host, hostvars)}
            values, errors = self.resolve(spec, params, host_vars)
            checked = validator.validate(values)
            errors += [str(error) for error in checked.errors.messages]
            errors += self.switch_problems(host_vars)
            platform = values.get(tier.get("platform_var")) if tier.get("platform_var") else None
            if platforms and platform in PLATFORMS and platform not in platforms:
                summary.setdefault("outside sms_rollout_platforms", 0)
                summary["outside sms_rollout_platforms"] += 1
            for error in errors:
                by_error.setdefault(error, []).append(host)
        for error, where in sorted(by_error.items()):
            problems.append("%s: %s (%s)" % (label, error, named(where)))
        return problems

    @staticmethod
    def switch_problems(hostvars):
        """The host's sms_module_bytecode, checked as the action plugins will read it."""
        if SWITCH not in hostvars:
            return []
        try:
            bytecode_wanted(hostvars[SWITCH])
        except AnsibleError as exc:  # AnsibleActionFail is one
            return [str(exc).split("\n", maxsplit=1)[0]]
        return []

    def resolve(self, spec, params, hostvars):
        """The role's variables for one host: a play parameter, else the host's variable, else the default."""
        values, errors = {}, []
        templar = None
        for name, option in spec.items():
            try:
                if name in params:
                    values[name] = params[name]
                elif name in hostvars:
                    values[name] = hostvars[name]
                elif "default" in option:
                    default = option["default"]
                    if isinstance(default, str) and "{{" in default:
                        if templar is None:
                            templar = self._templar.copy_with_new_env(available_variables=hostvars)
                        default = templar.template(default)
                    values[name] = default
            except AnsibleError as exc:
                errors.append("%s cannot be resolved: %s" % (name, str(exc).split("\n", maxsplit=1)[0]))
        return values, errors

    def check_logon_names(self, names, explicit, groups, hostvars, args):
        """The site's logon server names each client will be checked against.

        The play's list (set on all, or read from the logon group) unless a
        client has its own (sms_logon_server_names on the clients' group: an
        AWX slice's job sees only its own hosts, never the logon group's).
        Every distinct list is checked once, naming the clients that use it.
        """
        tiers = args.get("tiers") or []
        logon_group = None
        for tier in tiers:
            if tier.get("role") == "sms_replication":
                logon_group = tier["group"]
        members = list(groups.get(logon_group) or []) if logon_group else []
        clients = [h for t in tiers if t.get("role") == "sms_client" for h in groups.get(t["group"]) or []]
        lists = {}
        for host in clients:
            host_vars = hostvars[host]
            own = "sms_logon_server_names" in host_vars
            value = host_vars["sms_logon_server_names"] if own else names
            key = (repr(value), bool(own or explicit))
            lists.setdefault(key, (value, bool(own or explicit), []))[2].append(host)
        if not clients:
            lists[(repr(names), bool(explicit))] = (names, bool(explicit), [])
        problems = []
        for value, is_explicit, users in lists.values():
            where = " (clients %s)" % named(users) if len(lists) > 1 else ""
            problems += [
                p + where
                for p in self._check_names(
                    value, is_explicit, members, logon_group, hostvars, bool(users) or bool(members)
                )
            ]
        return problems

    @staticmethod
    def _check_names(names, explicit, members, logon_group, hostvars, needed):
        if names is None:
            names = []
        if not isinstance(names, list):
            return ["sms_logon_server_names must be a list of the site's logon server names, not %r" % (names,)]
        problems = []
        bad = [n for n in names if not isinstance(n, str) or not _NETBIOS.match(n) or ".." in n]
        if bad:
            problems.append(
                "sms_logon_server_names: %s %s not a plain server name (NetBIOS: up to 15 characters, "
                "no path)" % (", ".join(repr(b) for b in bad), "is" if len(bad) == 1 else "are")
            )
        if explicit and members:
            inventory = {}
            for host in members:
                host_vars = hostvars[host]
                value = host_vars.get("sms_server_name") if "sms_server_name" in host_vars else None
                inventory[str(value or host.split(".")[0]).lower()] = host
            given = {str(n).lower() for n in names if isinstance(n, str)}
            missing = sorted(set(inventory) - given)
            extra = sorted(given - set(inventory))
            if missing or extra:
                problems.append(
                    "sms_logon_server_names (%s) does not match the logon servers of group %r (%s)%s%s; clients are "
                    "only upgraded from the site's own logon servers, so fix the list (or the servers' "
                    "sms_server_name)"
                    % (
                        ", ".join(str(n) for n in names),
                        logon_group,
                        ", ".join(sorted(inventory)),
                        "; not listed: %s" % ", ".join(missing) if missing else "",
                        "; listed but not in the group: %s" % ", ".join(extra) if extra else "",
                    )
                )
        if not names and needed:
            problems.append(
                "no logon server names are known, so no client can be checked against its logon server: "
                "set sms_logon_server_names (the site's logon servers by SMS name, on the clients' group or "
                "all; needed where a job sees only part of the inventory, as under AWX job slicing), or run "
                "with the logon servers' group in the inventory"
            )
        return problems
