# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One client's run of sms_client_upgrade: the upgrade (and, imported only then, the rollback).

The module file holds its documentation and argument spec; the work is here,
in a utility, so that on the host it is compiled once (sms_zipimport), not
twice as Python compiles the module file itself. Every read and write goes
through sms_fs volumes; files are replaced (and put back on a failure) by
the one engine, sms_replace.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Dict, List

from ansible_collections.sms.hotfix.plugins.module_utils.sms_client import (
    KEY_PHASE,
    KEY_VERSION,
    PHASE_DEFERRED,
    PHASE_INSTALLED,
    PHASE_VERIFY,
    ClientError,
    client_bin,
    compare_files,
    drive_volume,
    logon_server,
    read_server,
    read_sms_ini,
    share_volume,
    smsrun_state,
    stale_files,
    stop_or_fail,
    wrap,
    write_ini_keys,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import (
    SmsFileError,
    normal_path,
    open_volume,
    plain_results,
    stale_temps,
    temp_paths,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import smb_settings
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import IniDocument
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    ManifestError,
    load_manifest,
    manifest_summary,
    validate_manifest,
)


class Run:
    """One client's run: parameters, the result being built, and exits."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.drive_root = normal_path(self.p["drive_root"])
        self.client = (
            self.p["client_name"] or os.path.basename(self.drive_root.replace("\\", "/").rstrip("/")) or os.uname()[1]
        )
        self.result: Dict[str, Any] = {
            "changed": False,
            "status": "unchanged",
            "files": [],
            "ini": [],
            "smsrun32": {"found": [], "hung": False, "stopped": [], "signals": [], "restarted": False},
            "reboot_required": False,
            "pending_restart": False,
            "state": self.p["state"],
        }
        # (volume, parts, kb) of this client's state folder once the upgrade knows it: where sms_cure keeps
        # the record of a cure still owed (a restart or a watch a failed run left undone).
        self.cure_state = None
        self.before_replace = None  # sms_cure's hook: records the cure owed before the first file is replaced

    def fail(self, exc, **extra):
        exc = wrap(exc)
        result = dict(self.result)
        result.update(extra)
        result.update({k: v for k, v in exc.facts.items() if k not in result})
        if exc.path:
            result["path"] = exc.path
        result.pop("msg", None)
        self.module.fail_json(msg="%s: %s" % (self.client, exc.msg), **result)

    def state_folder(self, drive, kb):
        """(volume, parts) of the backups and journal: below the drive, or the operator's state_dir."""
        if self.p["state_dir"]:
            path = normal_path(self.p["state_dir"])
            return open_volume(path, label="%s's state folder" % self.client, smb=smb_settings(self.p, path)), ()
        return drive, ("MS", "SMS", "Hotfix", kb)

    # -- SMSRUN32 --------------------------------------------------------------

    def check_processes(self):
        procs = smsrun_state(
            self.p["process_name"],
            self.p["process_scope"],
            self.drive_root,
            self.p["hung_cpu_threshold"],
            self.p["cpu_window"],
        )
        self.result["smsrun32"].update(found=procs["found"], hung=procs["hung"])
        if procs["reason"]:
            self.result["smsrun32"]["reason"] = procs["reason"]
        if not procs["known"]:
            self.result["smsrun32"]["note"] = "%s; the SMSRUN32 state is unknown" % procs["note"]
        return procs

    def stop(self, pids, hung):
        signals = self.p["hung_signals"] if hung else self.p["graceful_signals"]
        try:
            sent = stop_or_fail(pids, signals, self.p["stop_timeout"], self.p["process_name"], self.client)
        except ClientError as exc:
            self.result["smsrun32"]["signals"] = exc.facts.get("signals", [])
            self.fail(exc)
        self.result["smsrun32"].update(stopped=list(pids), signals=sent)

    def start(self):
        argv = self.p["start_argv"]
        if not argv:
            self.result["smsrun32"]["note"] = (
                "start_argv is empty: %s was not started again; it starts at the next logon or restart"
                % self.p["process_name"]
            )
            return None
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            return "starting %s with %s failed (rc %d): %s" % (self.p["process_name"], argv, rc, (err or out).strip())
        self.result["smsrun32"]["restarted"] = True
        return None

    def finish_start(self, stopped, summary):
        """Start SMSRUN32 again after the work; a failed start fails the task."""
        if not stopped:
            return
        problem = self.start()
        if problem:
            self.result["changed"] = True
            prefix = "%s: " % self.client
            done = summary[len(prefix) :] if summary.startswith(prefix) else summary
            self.fail(ClientError("%s, but %s; start it by hand" % (done, problem)))

    def stop_for_work(self, procs, must_stop, hung):
        """Stop SMSRUN32 before the files change (hung: with hung_signals); True when stopped."""
        self.result["smsrun32"]["stopped"] = []
        if must_stop:
            self.stop(procs["pids"], hung)
        return bool(self.result["smsrun32"]["stopped"])

    def restart_after_failure(self, stopped):
        if stopped:
            problem = self.start()
            if problem:
                self.result["smsrun32"]["note"] = problem

    # -- upgrade -----------------------------------------------------------------

    def upgrade(self, manifest):
        p, res = self.p, self.result
        try:
            drive = drive_volume(self.drive_root, self.client, p)
            ini_read: List[Any] = []
            ini_parts, ini_bytes, doc = read_sms_ini(drive, stamped=ini_read)
            ini_path = drive.path(ini_parts)
            server, unc = logon_server(doc, ini_path, p["logon_servers"] or [])
            res["logon_server"] = server
            share = share_volume(p["share_path_pattern"], server, p)
            srv = read_server(share, server, unc, p["platform"], p["copy_list"])
            res["share"] = srv["share"]
            res["copy_list_version"] = srv["copy_list_version"]
            bin_parts = client_bin(drive, p["client_dir"])
            mfiles = manifest["platforms"][p["platform"]]["files"]
            stale = stale_files(share, mfiles, srv["files"])
        except (ClientError, SmsFileError) as exc:
            self.fail(exc)

        # A dry run of the whole rollout reaches the clients before any server
        # has the hotfix: preview against the manifest instead of skipping.
        projected = bool(stale) and self.module.check_mode
        if stale and not projected:
            res.update(status="skipped", skipped=True, stale_files=stale)
            self.module.exit_json(
                msg="%s: skipped: logon server %s (%s) does not serve %s yet (%s); the maintenance cycle has "
                "not reached it — run again once it has"
                % (
                    self.client,
                    unc,
                    share.path(srv["platform_parts"]),
                    manifest["kb"],
                    ", ".join("%s has %s" % (s["name"], s["found_sha256"] or "no file") for s in stale),
                ),
                **res,
            )

        state_vol, state_parts = self.state_folder(drive, manifest["kb"])
        res["state_dir"] = state_vol.path(state_parts)
        self.cure_state = (state_vol, tuple(state_parts), manifest["kb"])
        try:
            plan = compare_files(drive, bin_parts, share, srv["files"], mfiles)
            if state_vol.entry(state_parts).kind == "dir":
                state_vol.listdir(state_parts)  # refuses a state folder reached through a link
            # A run killed half-way leaves temporary files in any folder it writes: removed by the next real run.
            temps = stale_temps([(drive, bin_parts, False), (drive, (), False), (state_vol, state_parts, True)])
        except (ClientError, SmsFileError) as exc:
            self.fail(exc)
        if projected:
            expected = {f["name"].lower(): f["sha256"] for f in mfiles}
            for item in plan:
                sha = expected.pop(item["name"].lower(), None)
                if sha:
                    item.update(after_sha256=sha, changed=item["before_sha256"] != sha)
            for lower, sha in expected.items():
                plan.append(
                    {
                        "name": lower,
                        "parts": bin_parts + (lower,),
                        "path": drive.path(bin_parts + (lower,)),
                        "source": None,
                        "before_sha256": None,
                        "after_sha256": sha,
                        "changed": True,
                        "service": any(f["service"] for f in mfiles if f["name"].lower() == lower),
                        "mtime": None,
                    }
                )
            res["projected"] = True
            res["stale_files"] = stale
        differing = [item for item in plan if item["changed"]]

        procs = self.check_processes()
        running, hung, known = bool(procs["pids"]), procs["hung"], procs["known"]
        # Files in use cannot be replaced: a healthy SMSRUN32 under the defer
        # policy, or a process table nobody can read, leaves them to Client Setup.
        defer = bool(differing) and (not known or (running and not hung and p["running_policy"] == "defer"))

        if defer:
            targets = [(KEY_PHASE, PHASE_DEFERRED if known else PHASE_VERIFY)]
            to_replace = []
        else:
            version = srv["copy_list_version"]
            if projected:
                version = "(newer than %s, once the maintenance cycle has run)" % version
            targets = [(KEY_VERSION, version), (KEY_PHASE, PHASE_INSTALLED)]
            to_replace = differing
        new_doc = IniDocument.parse(ini_bytes, name=ini_path)
        ini = []
        for (section, key), value in targets:
            before = doc.get(section, key)
            new_doc.set(section, key, value)
            ini.append({"section": section, "key": key, "before": before, "after": value, "changed": before != value})
        new_ini = new_doc.to_bytes()
        ini_changed = new_ini != ini_bytes
        must_stop = bool(hung) or (running and bool(to_replace))

        res["files"] = [
            {
                "name": i["name"],
                "path": i["path"],
                "before_sha256": i["before_sha256"],
                "after_sha256": i["after_sha256"] if i in to_replace else i["before_sha256"],
                "changed": i in to_replace,
                **({"pending": True} if defer and i["changed"] else {}),
            }
            for i in plan
        ]
        res["ini"] = ini
        res["reboot_required"] = any(i["service"] for i in to_replace)
        res["pending_restart"] = defer
        res["changed"] = bool(to_replace) or ini_changed or must_stop or bool(temps)
        res["status"] = "deferred" if defer else ("upgraded" if res["changed"] else "unchanged")
        if temps:
            res["stale_temporary_files"] = temp_paths(temps)
        if must_stop:
            res["smsrun32"]["stopped"] = list(procs["pids"])
        if self.module._diff:
            res["diff"] = self.diff(to_replace, ini, procs if must_stop else None)

        summary = self.summary(to_replace, ini, procs, defer, srv, unc)
        if temps:
            summary += "; %d temporary file(s) of an interrupted run %s" % (
                len(res["stale_temporary_files"]),
                "would be removed" if self.module.check_mode else "removed",
            )
        if projected:
            summary += (
                " (preview against %s: logon server %s does not serve it yet, so a real run now would "
                "skip this client)" % (manifest["kb"], unc)
            )
        if not res["changed"]:
            self.module.exit_json(msg=summary, **res)

        # Only a run with something to do needs the journal and the engine: imported here, so
        # a client already up to date (a re-run) never compiles them.
        from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal
        from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
            BACKUP,
            Change,
            Replacement,
            ReplaceFailed,
        )

        journal = BackupJournal(state_vol, state_parts)
        changes = [
            Change(
                group="BIN",
                name=item["name"],
                parts=item["parts"],
                current=item["parts"] if item["before_sha256"] is not None else None,
                before_sha256=item["before_sha256"],
                after_sha256=item["after_sha256"],
                source=share,
                source_parts=item["source"],
                mtime=item["mtime"],
                size=item.get("size"),
                path=item["path"],
            )
            for item in to_replace
        ]
        if ini_changed:
            # Backed up and journaled with the files; written below, key by key, in the same transaction.
            changes.append(
                Change(
                    group="INI",
                    name=ini_parts[-1],
                    parts=ini_parts,
                    current=ini_parts,
                    action=BACKUP,
                    size=len(ini_bytes),
                    changed=True,
                    path=ini_path,
                )
            )
        engine = Replacement(drive, journal, temps=temps)
        try:
            self.preflight(engine, changes, ini_parts if ini_changed else None, len(ini_bytes))
        except (ClientError, SmsFileError) as exc:
            self.fail(exc)
        if self.module.check_mode:
            self.module.exit_json(msg=summary, **res)

        try:
            engine.clean()
        except SmsFileError as exc:
            self.fail(exc)
        if self.before_replace is not None:
            self.before_replace(res)
        stopped = self.stop_for_work(procs, must_stop, bool(hung))
        rebuilt = []

        def write_ini(tx):
            if ini_changed:
                # Written over the SMS.INI read at the start only; another writer's change since is kept.
                rebuilt.append(write_ini_keys(drive, ini_parts, ini_bytes, ini_read[0], targets, tx))

        # Everything this run writes (files, SMS.INI, backups, journal entries)
        # is noted first, so a failure half-way leaves the client as it was.
        # Backups and their journal entries are on disk before the first
        # original is replaced.
        try:
            engine.run(changes, then=write_ini, errors=(ClientError, SmsFileError, OSError))
        except ReplaceFailed as exc:
            self.restart_after_failure(stopped)
            self.fail(undone(exc, "the files this run replaced"))
        if rebuilt and rebuilt[0]:
            res["ini_rebuilt"] = rebuilt[0]
            summary += (
                "; SMS.INI was changed by another writer during the run, so the two keys were set "
                "on its new content (%d time(s)), keeping that change" % rebuilt[0]
            )
        self.finish_start(stopped, summary)
        self.module.exit_json(msg=summary, **res)

    def preflight(self, engine, changes, ini_parts, ini_size):
        """Before anything changes: every folder to write is writable and has room (SMS.INI's new copy too)."""
        engine.preflight(
            changes, files=[ini_parts] if ini_parts else [], needs=[(engine.volume, (), ini_size)] if ini_parts else []
        )

    def summary(self, to_replace, ini, procs, defer, srv, unc):
        parts = []
        if procs["hung"]:
            parts.append("hung %s ended (%s)" % (self.p["process_name"], procs["reason"]))
        if defer and procs["known"]:
            parts.append(
                "deferred: %s pid %d is running and running_policy is defer; SetupPhase=%s, the files "
                "are downloaded at the next restart" % (self.p["process_name"], procs["pids"][0], PHASE_DEFERRED)
            )
        elif defer:
            parts.append(
                "deferred to Client Setup: %s; SetupPhase=%s, no file changed here"
                % (self.result["smsrun32"].get("note", "the process table cannot be read"), PHASE_VERIFY)
            )
        if to_replace:
            parts.append("%d file(s) from %s: %s" % (len(to_replace), unc, ", ".join(i["name"] for i in to_replace)))
        keys = ["%s=%s" % (i["key"], i["after"]) for i in ini if i["changed"]]
        if keys:
            parts.append("SMS.INI " + ", ".join(keys))
        if not parts:
            return "%s: up to date with %s (CopyListVersion %s)" % (self.client, unc, srv["copy_list_version"])
        verb = "would be changed" if self.module.check_mode else "changed"
        return "%s: %s %s" % (self.client, "; ".join(parts), verb)

    def diff(self, files, ini, procs=None):
        before, after = [], []
        if procs:
            name = self.p["process_name"]
            before.append(
                "%s pid %s%s"
                % (
                    name,
                    ", ".join(str(pid) for pid in procs["pids"]),
                    " (hung: %s)" % procs["reason"] if procs["hung"] else " (running)",
                )
            )
            after.append("%s stopped%s" % (name, ", then started again" if self.p["start_argv"] else ""))
        for item in files:
            before.append("%s sha256=%s" % (item["path"], item["before_sha256"] or "(absent)"))
            after.append("%s sha256=%s" % (item["path"], item["after_sha256"]))
        for entry in ini:
            if entry["changed"]:
                before.append(
                    "SMS.INI [%s] %s=%s"
                    % (entry["section"], entry["key"], "(absent)" if entry["before"] is None else entry["before"])
                )
                after.append(
                    "SMS.INI [%s] %s=%s"
                    % (entry["section"], entry["key"], "(absent)" if entry["after"] is None else entry["after"])
                )
        return {
            "before_header": self.drive_root,
            "after_header": self.drive_root,
            "before": "".join(line + "\n" for line in before),
            "after": "".join(line + "\n" for line in after),
        }


def undone(exc, what):
    """The ClientError to fail with after the engine put back what a run changed (sms_replace.ReplaceFailed),
    saying how that went."""
    cause = exc.cause
    if isinstance(cause, OSError):
        error = ClientError(
            "cannot write %s: %s" % (cause.filename or "a client file", cause.strerror or cause), path=cause.filename
        )
    else:
        error = wrap(cause)
    error.msg += (
        ("; %s were put back" % what)
        if not exc.problems
        else ("; putting back %s ALSO failed: %s%s" % (what, "; ".join(exc.problems), exc.owed_note()))
    )
    error.facts["restored"] = exc.restored
    if exc.problems:
        error.facts["put_back_failed"] = exc.problems
    if exc.owed:
        error.facts["owed"] = exc.owed
        error.facts["backups_kept"] = exc.backups_kept
    return error


def _signal_name(name):
    name = name.strip().upper()
    return name[3:] if name.startswith("SIG") else name


def run_client(module):
    """Upgrade or roll back the client of `module` (an AnsibleModule with ARGUMENT_SPEC); exits the module."""
    params = module.params
    # The undo word is `absent`; the old words stay for one release.
    old_state = {"upgraded": "present", "rolled_back": "absent"}.get(params["state"])
    if old_state:
        module.deprecate(
            "state=%s is renamed to state=%s" % (params["state"], old_state),
            version="2.0.0",
            collection_name="sms.hotfix",
        )
        params["state"] = old_state
    params["start_argv"] = params["smsrun_argv"]  # the internals' name for it (the option is smsrun_argv)
    run = Run(plain_results(module))
    from_data = params["manifest_data"] is not None
    run.result.update(
        manifest_source="controller" if from_data else "host",
        manifest_path=None if from_data else os.path.abspath(params["manifest"]),
    )
    try:
        if from_data:
            manifest = validate_manifest(
                params["manifest_data"],
                None,
                platforms=[params["platform"]],
                check_payload=False,
                source="manifest_data",
            )
        else:
            manifest = load_manifest(params["manifest"], platforms=[params["platform"]], check_payload=False)
    except ManifestError as exc:
        run.fail(ClientError(exc.msg, path=exc.path, **exc.facts))
    if from_data:
        # The result echoes its arguments (invocation): a line, not every digest again.
        params["manifest_data"] = manifest_summary(manifest)
    for option in ("graceful_signals", "hung_signals"):
        names = [_signal_name(name) for name in params[option]]
        unknown = [name for name in names if not hasattr(signal, "SIG" + name)]
        if unknown or not names:
            module.fail_json(
                msg="%s: %s must list signal names like TERM, KILL; %s is not one"
                % (run.client, option, ", ".join(unknown) or "an empty list")
            )
        params[option] = names
    if params["state"] == "absent":
        # Imported only here: an upgrade never compiles the rollback's code.
        from ansible_collections.sms.hotfix.plugins.module_utils.sms_client_rollback import rollback

        rollback(run, manifest)
    else:
        # The restart and the watch run when the upgrade exits (sms_cure), in this same module run.
        from ansible_collections.sms.hotfix.plugins.module_utils.sms_cure import install

        install(run)
        run.upgrade(manifest)
