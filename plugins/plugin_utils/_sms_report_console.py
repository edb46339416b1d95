# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the operator reads on the console: the summary after PLAY RECAP, the
one command that goes on or undoes, and the client waves' progress lines.

Pure functions of the report model (and, for the command, of how the run was
started, as plain data). docs/REPORTS.md shows the lines.
"""

from __future__ import annotations

import json
import os
import re
import shlex

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_model import (
    hosts_with,
    lock_still_held,
    names,
    plural,
    restart_text,
    run_kind,
    short_text,
    stop_text,
    verify_text,
)

NAME_LIMIT = 20
LABEL = "%-14s%s"


# ---- progress during the client waves --------------------------------------


def wave_progress(wave, waves, counts, planned, elapsed, finished=False, check_mode=False):
    """One line about one wave, in the voice of sms_replication's waiting lines."""
    bits = [
        "%d %s" % (counts.get("done", 0), "would be done" if check_mode else "done"),
        "%d failed" % counts.get("failed", 0),
    ]
    for status in ("unreachable", "skipped", "deferred"):
        if counts.get(status):
            bits.append("%d %s" % (counts[status], status))
    when = ("finished after %.1fs" % elapsed) if finished else ("running %ds" % int(elapsed))
    of = (" of %d" % planned) if planned is not None else ""
    return "sms_client_upgrade: wave %d/%d %s: %s%s" % (wave, waves, when, ", ".join(bits), of)


# ---- the command that goes on or undoes -------------------------------------


def _parse_extra_vars(raw):
    """A -e value as Ansible reads it: JSON/YAML when it starts with { or [, else key=value pairs."""
    text = str(raw).strip()
    if text[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            import yaml

            data = yaml.safe_load(text)
        return data if isinstance(data, dict) else {}
    from ansible.parsing.splitter import parse_kv

    return parse_kv(text)


SECRET_WORDS = ("password", "secret", "token")
# Settings of one playbook only: not repeated when the command names another
# (the compliance job's sms_compliance_fail is no setting of the rollout).
PLAYBOOK_ONLY = ("sms_compliance_", "sms_unlock_", "sms_report_")


def is_secret(key):
    """A variable whose value a console line must not show (sms_smb_password, an API token)."""
    key = str(key).lower()
    return any(word in key for word in SECRET_WORDS)


def safe_extra_vars(raw_values, other_playbook=False):
    """(-e arguments to repeat, whether others were left out).

    Only the rollout's own settings (sms_*) and @file references are repeated,
    never a secret (a name holding password, secret or token, sms_smb_password
    too): other extra vars may hold secrets, which a console line must not
    show. `other_playbook`: the command names another playbook, which does
    not take this one's own settings (PLAYBOOK_ONLY)."""
    args, kept, left_out = [], {}, False
    for raw in raw_values or ():
        text = str(raw).strip()
        if not text:
            continue
        if text.startswith("@"):
            args.append(text)
            continue
        try:
            data = _parse_extra_vars(text)
        except Exception:
            left_out = True
            continue
        for key, value in data.items():
            if other_playbook and str(key).startswith(PLAYBOOK_ONLY):
                continue
            if str(key).startswith("sms_") and not is_secret(key):
                kept[str(key)] = value
            else:
                left_out = True
    if kept:
        args.append(json.dumps(kept, sort_keys=True, default=str))
    return args, left_out


def _rel(path, cwd):
    """A path under the run's working folder as a relative one; anything else as given."""
    path = str(path)
    if not os.path.isabs(path):
        return path
    base = os.path.abspath(cwd or os.getcwd())
    if path.startswith(base + os.sep):
        return os.path.relpath(path, base)
    return path


def program(invocation):
    """The ansible-playbook that ran this run, as it can be pasted: relative to
    the working folder when under it (`.venv/bin/ansible-playbook`), else its
    full path; a bare name only when the run does not say which it was."""
    path = invocation.get("program")
    if not path:
        return "ansible-playbook"
    path = _rel(path, invocation.get("cwd"))
    return path if os.sep in path else os.path.join(".", path)


def refused_keys(report, invocation):
    """The run's own sms_* extra vars that a failure message names (the plan
    refused their value): a next step must not repeat them."""
    entries = (report.get("site_servers") or []) + (report.get("logon_servers") or []) + (report.get("clients") or [])
    if any(entry.get("status") != "not_reached" for entry in entries):
        return []  # a tier ran: the inputs were accepted, a message naming a setting does not refuse it
    text = " ".join(str(f.get("msg")) for f in report.get("failures") or [])
    if not text:
        return []
    extra, _left_out = safe_extra_vars(invocation.get("extra_vars"))
    keys = []
    for value in extra:
        if value.startswith("@"):
            continue
        for key in json.loads(value):
            if re.search(r"\b%s\b" % re.escape(key), text) and key not in keys:
                keys.append(key)
    return sorted(keys)


def command(invocation, playbooks=None, check=None, drop=()):
    """An ansible-playbook command line like the run's own, for other playbooks.
    `drop`: extra vars not to repeat (values the run refused)."""
    cwd = invocation.get("cwd")
    argv = [program(invocation)]
    argv += [_rel(p, cwd) for p in (playbooks if playbooks is not None else invocation.get("playbooks") or [])]
    for source in invocation.get("inventory") or []:
        argv += ["-i", _rel(source, cwd)]
    if invocation.get("limit"):
        argv += ["--limit", str(invocation["limit"])]
    extra, left_out = safe_extra_vars(invocation.get("extra_vars"), other_playbook=playbooks is not None)
    for value in extra:
        if drop and not value.startswith("@"):
            data = dict((k, v) for k, v in json.loads(value).items() if k not in drop)
            if not data:
                continue
            value = json.dumps(data, sort_keys=True, default=str)
        argv += ["-e", value]
    if check if check is not None else invocation.get("check"):
        argv.append("--check")
        if invocation.get("diff"):
            argv.append("--diff")
    text = " ".join(shlex.quote(str(item)) for item in argv)
    if drop:
        text += "  (with the right %s: the run refused %s)" % (
            " and ".join(drop),
            "its value" if len(drop) == 1 else "their values",
        )
    if left_out:
        text += "  (plus the other extra vars of this run, not repeated here)"
    return text


def next_step(report, invocation=None):
    """(label, text): the one command that goes on (re-run) or undoes (rollback), or None."""
    invocation = invocation or {}
    awx = report.get("awx") or {}
    kind = run_kind(report)
    tiers = report.get("site_servers") or report.get("logon_servers") or report.get("clients")
    ok = bool(report.get("ok"))
    merging = os.path.basename(str(report.get("playbook") or "")) == "report.yml"
    if merging:
        # playbooks/report.yml only reports: when it fails, the rollout needs
        # another run (or the report folder a fix); running it again changes nothing
        if ok:
            return None
        if awx:
            return (
                "go on",
                "relaunch the workflow: it goes on where this run stopped (or launch the rollback template to undo it)",
            )
        return (
            "go on",
            "%s  (the rollout again: it picks up the clients not done)"
            % command(invocation, [invocation.get("rollout_playbook") or "rollout.yml"], check=False),
        )
    if kind == "compliance":
        comp = (report.get("totals") or {}).get("compliance") or {}
        if not comp.get("not_compliant"):
            return None
        action = "rollout"
    elif report.get("check_mode"):
        action = "apply" if ok else "again"
    elif not ok:
        action = "again"
    elif kind == "plan":
        action = "apply"
    elif kind == "rollback":
        action = "rollout"
    elif tiers:
        action = "rollback"
    else:
        return None

    if awx:
        if kind == "plan" and action == "apply":
            return None  # the workflow's plan node: the next nodes go on by themselves
        if action in ("again", "apply"):
            if awx.get("workflow_job_id") is not None:
                what = "AWX workflow job %s%s" % (
                    awx["workflow_job_id"],
                    (" (%s)" % awx["workflow_job_name"]) if awx.get("workflow_job_name") else "",
                )
            else:
                what = "AWX job %s%s" % (
                    awx.get("job_id"),
                    (" (%s)" % awx["job_template_name"]) if awx.get("job_template_name") else "",
                )
            return ("go on", "relaunch %s: the same holder goes on where this run stopped" % what)
        if action == "rollback":
            return ("undo", "launch the rollback job template (playbooks/rollback.yml)")
        return ("go on", "launch the rollout workflow (or rollout.yml job template)")

    if action == "again":
        drop = refused_keys(report, invocation)
        stop = report.get("stop")
        if stop and stop.get("hosts"):
            return (
                "go on",
                "fix %s (why: above and in report.html), then run again: %s  (a re-run goes on "
                "where this one stopped; what is done reports no change)"
                % (names(stop["hosts"], NAME_LIMIT), command(invocation)),
            )
        said = " ".join(
            str(entry.get("msg"))
            for key in ("failures", "site_servers", "logon_servers")
            for entry in report.get(key) or []
        )
        said += " " + " ".join(str(f.get("msg")) for f in report.get("failures") or [])
        wider = re.search(r"leaves out the site server .*--limit '?([^\s']+)'?", said)
        if wider:
            # the plan refused a --limit without the site server: the limit that keeps it
            return ("go on", command(dict(invocation, limit=wider.group(1)), drop=drop))
        if "`make lab`" in said:
            # the lab twin is not built (plugins/action/sms_hotfix_stage.py says so)
            return ("go on", "make lab, then: %s" % command(invocation, drop=drop))
        return (
            "go on",
            "%s  (a re-run goes on where this one stopped; what is done reports no change)"
            % command(invocation, drop=drop),
        )
    if action == "apply":
        if kind == "plan":
            return (
                "apply",
                "%s  (the rollout this plan checked)"
                % command(invocation, [invocation.get("rollout_playbook") or "rollout.yml"], check=False),
            )
        return ("apply", command(invocation, check=False))
    if action == "rollback":
        return (
            "undo",
            command(invocation, [invocation.get("rollback_playbook") or "playbooks/rollback.yml"], check=False),
        )
    return (
        "go on" if kind == "compliance" else "undo",
        command(invocation, [invocation.get("rollout_playbook") or "rollout.yml"], check=False),
    )


# ---- the summary after PLAY RECAP ------------------------------------------


def _hosts(hosts, where, written):
    rest = " (all in %s)" % os.path.join(where, "report.json") if written else " (see the recap above)"
    return names(hosts, NAME_LIMIT, rest)


def summary_lines(report, where, step=None, written=True):
    """The summary: one line per tier, the clients that need a look by name,
    then the command that goes on or undoes. `where`: the report folder (or
    why there is none, with `written` false)."""
    check = report.get("check_mode")
    kb = (report.get("hotfix") or {}).get("kb") or "hotfix"
    mode = " [CHECK MODE: nothing was changed]" if check else ""
    lines = ["SMS rollout %s — report: %s%s" % (kb, where, mode)]
    if report.get("limit"):
        lines.append(
            LABEL % ("limited to", "%s (--limit): hosts outside it were not part of this run" % report["limit"])
        )
    if run_kind(report) == "plan" and report.get("ok"):
        lines.append(
            LABEL
            % ("plan", "hotfix verified, every input and every server checked; nothing was changed and no lock taken")
        )
    for site in report["site_servers"]:
        status = site["status"]
        words = {
            "staged": "would stage" if check else "staged",
            "unchanged": "already rolled back (no change)"
            if site.get("action") == "rollback"
            else "already staged (no change)",
            "rolled_back": "would roll back" if check else "rolled back",
            "not_reached": "not reached",
        }.get(status, status)
        details = []
        if status in ("staged", "rolled_back", "unchanged") and site["files"]:
            details.append("%s changed" % plural(site["files_changed"], "file"))
        if site["system_map"] and site["system_map"].get("bumped"):
            details.append("System.map bumped")
        if site["msg"] and status in ("failed", "unreachable"):
            details.append(site["msg"])
        detail = " (%s)" % ", ".join(details) if details else ""
        lines.append("%-14s%-10s %s%s" % ("site server", site["host"], words, detail))
    if report["logon_servers"]:
        logon = report["logon_servers"]
        totals = report["totals"]["logon_servers"]
        done = totals["converged"] + totals["pushed"]
        parts = []
        for entry in logon:
            if entry["status"] in ("converged", "pushed") and entry["elapsed"] is not None:
                parts.append("%s %.1fs" % (entry["host"], float(entry["elapsed"])))
            elif entry["status"] == "lagging" and check:
                # a dry run stages nothing, so no server can converge in it
                parts.append("%s not yet (check mode: would wait)" % entry["host"])
            else:
                parts.append("%s %s" % (entry["host"], entry["status"].replace("_", " ").upper()))
        verb = "pushed" if totals["pushed"] and not totals["converged"] else "converged"
        lines.append("%-14s%d/%d %s  %s" % ("logon servers", done, len(logon), verb, "  ".join(parts)))
    if report["clients"]:
        clients = report["clients"]
        waves = []
        for row in report["waves"]:
            bits = ["%d %s" % (row["done"], "would be done" if check else "done")]
            for status in ("failed", "skipped", "deferred", "unreachable"):
                if row[status]:
                    bits.append("%d %s" % (row[status], status))
            waves.append("wave %d: %s" % (row["wave"], ", ".join(bits)))
        totals = report["totals"]["clients"]
        waves.append("not reached: %d" % totals["not_reached"])
        waves.append("skipped: %d" % totals["skipped"])
        if totals["deferred"]:
            waves.append("deferred: %d" % totals["deferred"])
        if totals["unreachable"]:
            waves.append("unreachable: %d" % totals["unreachable"])
        lines.append(LABEL % ("clients", " | ".join(waves)))
        for status, label in (("failed", "failed"), ("unreachable", "unreachable"), ("not_reached", "not reached")):
            hosts = hosts_with(clients, status)
            if hosts:
                lines.append(LABEL % ("", "%s (%d): %s" % (label, len(hosts), _hosts(hosts, where, written))))
        reboot = [c["host"] for c in clients if c["reboot_required"]]
        pending = [c["host"] for c in clients if c["pending_restart"]]
        if reboot:
            # the SMS client service file changed: it runs the old one until the restart
            lines.append(
                LABEL
                % (
                    "",
                    (
                        "would need a reboot (client service would change): %s"
                        if check
                        else "reboot pending (client service changed, not restarted): %s"
                    )
                    % _hosts(reboot, where, written),
                )
            )
        lines.extend(_cure_lines(clients, where, written))
        if pending:
            # SetupPhase=verifying_files (SMSRUN32 running, policy defer) or verify_files (process state
            # unknown, e.g. a client reached over SMB): Client Setup finishes the upgrade
            lines.append(
                LABEL
                % (
                    "",
                    (
                        "would be deferred to Client Setup (pending a restart): %s"
                        if check
                        else "deferred to Client Setup (pending a restart): %s"
                    )
                    % _hosts(pending, where, written),
                )
            )
    if report.get("stop"):
        lines.append(LABEL % ("stopped", stop_text(report["stop"])))
    if "compliance" in report:
        comp = report["totals"]["compliance"]
        entries = sorted(report["compliance"], key=lambda c: c["host"])
        lines.append(LABEL % ("compliance", "%d/%d compliant" % (comp["compliant"], comp["hosts"])))
        missing = [c["host"] for c in entries if not c["compliant"]]
        if missing:
            lines.append(LABEL % ("", "not compliant (%d): %s" % (len(missing), _hosts(missing, where, written))))
        hung = [c["host"] for c in entries if (c.get("smsrun32") or {}).get("hung")]
        if hung:
            lines.append(LABEL % ("", "SMSRUN32 hung (%d): %s" % (len(hung), _hosts(hung, where, written))))
    for failure in report.get("failures") or []:
        lines.append(LABEL % ("run failed", "%s: %s" % (failure["host"], short_text(failure["msg"]))))
    if lock_still_held(report) and run_kind(report) != "plan":
        lock = report["lock"]
        lines.append(
            LABEL
            % (
                "rollout lock",
                "still held by %s on %s: the run stopped before the unlock step; "
                "a re-run by the same holder goes on (playbooks/unlock.yml releases it)"
                % (lock.get("holder"), lock["host"]),
            )
        )
    if step:
        lines.append(LABEL % step)
    return lines


def _cure_lines(clients, where, written):
    """Per client: how it was restarted and what the watch of the cure saw (sms_cure)."""
    lines = []
    restarted: dict[str, list[str]] = {}
    for entry in clients:
        text = restart_text(entry)
        if text and "FAILED" not in text and not text.startswith("reboot pending"):
            restarted.setdefault(text, []).append(entry["host"])
    for text, hosts in sorted(restarted.items()):
        lines.append(LABEL % ("", "%s (%d): %s" % (text, len(hosts), _hosts(hosts, where, written))))
    healthy = [e for e in clients if (e.get("verify") or {}).get("result") == "healthy"]
    if healthy:
        top = max(float(e["verify"].get("highest_cpu") or 0) for e in healthy)
        most = max(int(e["verify"].get("instances") or 0) for e in healthy)
        lines.append(
            LABEL
            % (
                "",
                "verified healthy (%d): %s (at most %d SMSRUN32 at once, highest CPU %.1f %%)"
                % (len(healthy), _hosts([e["host"] for e in healthy], where, written), most, top),
            )
        )
    for entry in clients:
        verify_line = verify_text(entry)
        restart_line = restart_text(entry)
        if verify_line.startswith("FAILED"):
            lines.append(LABEL % ("", "verification %s: %s" % (entry["host"], verify_line)))
        elif verify_line.startswith("unverified"):
            lines.append(LABEL % ("", "verification %s: %s" % (entry["host"], verify_line)))
        if "FAILED" in restart_line:
            lines.append(LABEL % ("", "%s: %s" % (entry["host"], restart_line)))
    return lines
