# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client's rollback (sms_client_upgrade state=rolled_back), kept apart so an upgrade never loads it.

The original files come back from the client's own backups, byte for byte;
SMS.INI gets back only the two keys the rollout set (whatever else SMS wrote
there since is kept). Every read and write goes through sms_fs volumes, and the
files are put back by the one engine (sms_replace), as the upgrade replaced them.
"""

from __future__ import annotations

import hashlib

from ansible_collections.sms.hotfix.plugins.module_utils.sms_client import (
    KEY_PHASE,
    KEY_VERSION,
    ClientError,
    client_bin,
    drive_volume,
    wrap,
    write_ini_keys,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_client_run import undone
from ansible_collections.sms.hotfix.plugins.module_utils.sms_cure import RECORD as CURE_RECORD
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, SmsFileError, check_writable
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import PathRefused, stale_temps, temp_paths
from ansible_collections.sms.hotfix.plugins.module_utils.sms_replace import (
    REMOVE,
    RESTORE,
    WRITE,
    Change,
    Replacement,
    ReplaceFailed,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import IniDocument, IniError


def rollback(run, manifest):
    p, res, module = run.p, run.result, run.module
    try:
        drive = drive_volume(run.drive_root, run.client, p)
        state_vol, state_parts = run.state_folder(drive, manifest["kb"])
        res["state_dir"] = state_vol.path(state_parts)
        journal = BackupJournal(state_vol, state_parts)
        has_journal = journal.exists()
    except (ClientError, SmsFileError) as exc:
        run.fail(exc)
    if not has_journal:
        res["status"] = "unchanged"
        module.exit_json(
            msg="%s: no journal at %s: nothing to roll back (this client was never upgraded, or an earlier "
            "rollback completed and retired its journal)" % (run.client, journal.path),
            **res,
        )
    res["journal_retired"] = None
    foreign = []
    try:
        entries = journal.entries()
        bin_parts = client_bin(drive, p["client_dir"])
        services = {f["name"].lower() for f in manifest["platforms"][p["platform"]]["files"] if f["service"]}
        plan = []
        for key, entry in sorted(entries.items()):
            group = key.split("/", 1)[0]
            folder = {"BIN": bin_parts, "INI": ()}.get(group)
            if folder is None:
                foreign.append(key)
                continue
            current = drive.find(folder, entry["name"])
            target = folder + ((current or entry["name"]),)
            kind = drive.entry(target).kind
            if kind not in (None, "file"):
                drive.read(target)  # refuses a link (or a folder), naming it
            if group == "INI" and entry.get("existed"):
                plan.append(ini_plan(drive, entry, target, journal))
                continue
            current_sha = drive.sha256(target) if kind == "file" else None
            wanted = entry["sha256"] if entry.get("existed") else None
            if current_sha != wanted:
                journal.verify(entry)
            plan.append(
                {
                    "group": group,
                    "entry": entry,
                    "name": target[-1],
                    "parts": target,
                    "path": drive.path(target),
                    "before_sha256": current_sha,
                    "after_sha256": wanted,
                    "changed": current_sha != wanted,
                    "service": group == "BIN" and entry["name"].lower() in services,
                }
            )
    except (ClientError, SmsFileError) as exc:
        run.fail(exc)

    ini_item = next((i for i in plan if i["group"] == "INI"), None)
    if ini_item is not None:
        res["ini"] = ini_item.get("keys", [])
        res["ini_restore"] = ini_item.get("mode", "whole_file")
    todo = [i for i in plan if i["changed"]]
    bin_todo = [i for i in todo if i["group"] == "BIN"]
    res["files"] = [
        {k: i[k] for k in ("name", "path", "before_sha256", "after_sha256", "changed")}
        for i in plan
        if i["group"] == "BIN"
    ]

    procs = run.check_processes()
    running, hung = bool(procs["pids"]), bool(procs["hung"])
    if bin_todo and (not procs["known"] or (running and not hung and p["running_policy"] == "defer")):
        why = (
            "%s pid %d is running and running_policy is defer" % (p["process_name"], procs["pids"][0])
            if procs["known"]
            else res["smsrun32"].get("note", "the process table cannot be read")
        )
        res.update(status="deferred", pending_restart=True)
        for item in res["files"]:
            item["after_sha256"], item["changed"] = item["before_sha256"], False
        for entry in res["ini"]:
            entry["after"], entry["changed"] = entry["before"], False
        module.exit_json(
            msg="%s: rollback deferred: %s; run again after the client restarts" % (run.client, why), **res
        )
    must_stop = hung or (running and bool(bin_todo))
    # Everything the journal names is put back here: the journal is then
    # retired, so the next rollout backs up the files it finds then.
    retire = not foreign
    res["changed"] = bool(todo) or must_stop or retire
    res["status"] = "rolled_back" if res["changed"] else "unchanged"
    res["reboot_required"] = any(i["service"] for i in bin_todo)
    if must_stop:
        res["smsrun32"]["stopped"] = list(procs["pids"])
    if module._diff:
        whole = [i for i in todo if i["group"] != "BIN" and i.get("mode") != "keys"]
        res["diff"] = run.diff(bin_todo + whole, res["ini"])
    changes = [as_change(drive, journal, item) for item in todo if item.get("mode") != "keys"]
    try:
        # Temporary files a killed run left in any folder a run writes: removed here too.
        engine = Replacement(
            drive,
            journal,
            record=False,
            temps=stale_temps([(drive, bin_parts, False), (drive, (), False), (state_vol, state_parts, True)]),
        )
        engine.preflight(changes, folders=[i["parts"][:-1] for i in todo], journal=False)
        if retire:
            check_writable(state_vol, [state_parts], [journal.file_parts])
        temps = engine.temps
    except (ClientError, SmsFileError) as exc:
        run.fail(exc)
    if temps:
        res["changed"], res["status"] = True, "rolled_back"
        res["stale_temporary_files"] = temp_paths(temps)
    summary = rollback_summary(run, todo, ini_item, must_stop, retire, foreign, journal)
    if temps:
        summary += "; %d temporary file(s) of an interrupted run %s" % (
            len(res["stale_temporary_files"]),
            "would be removed" if module.check_mode else "removed",
        )
    if module.check_mode or not res["changed"]:
        module.exit_json(msg=summary, **res)

    try:
        engine.clean()
    except SmsFileError as exc:
        run.fail(exc)
    stopped = run.stop_for_work(procs, must_stop, hung)

    def put_back_ini_keys(tx):
        for item in todo:
            if item["group"] == "INI" and item.get("mode") == "keys":
                # Only over the SMS.INI read for the plan; another writer's change since is kept.
                targets = [((k["section"], k["key"]), k["after"]) for k in item["keys"]]
                rebuilt = write_ini_keys(
                    drive,
                    item["parts"],
                    item["current"],
                    item["stamp"],
                    targets,
                    tx,
                    first=(item["data"], item["mtime"]),
                )
                if rebuilt:
                    res["ini_rebuilt"] = rebuilt

    try:
        engine.run(changes, then=put_back_ini_keys, errors=(ClientError, SmsFileError, OSError))
    except ReplaceFailed as exc:
        run.restart_after_failure(stopped)
        error = undone(exc, "the files this run had restored")
        if error.facts.get("put_back_failed"):
            error.msg += (
                "; the journal %s and its backups are kept as they were: run the rollback again once the "
                "cause is fixed" % journal.path
            )
        run.fail(error)
    if retire:
        try:
            res["journal_retired"] = engine.retire()
        except SmsFileError as exc:
            run.restart_after_failure(stopped)
            run.fail(
                ClientError(
                    "the original files are back, but setting the journal aside failed: %s; move %s and %s out "
                    "of the way by hand, or the next rollout trusts these old backups"
                    % (exc.msg, journal.path, state_vol.path(state_parts + ("backup",))),
                    path=exc.path,
                )
            )
        summary = rollback_summary(
            run, todo, ini_item, must_stop, retire, foreign, journal, retired=res["journal_retired"]
        )
    # The files the cure was owed for are gone: so is the record of it (sms_cure).
    try:
        owed = state_vol.entry(state_parts + (CURE_RECORD,))
        if owed.kind == "file":
            state_vol.unlink(state_parts + (CURE_RECORD,), missing_ok=True)
            res["cure_owed_removed"] = state_vol.path(state_parts + (CURE_RECORD,))
    except SmsFileError as exc:
        run.restart_after_failure(stopped)
        run.fail(exc)
    run.finish_start(stopped, summary)
    module.exit_json(msg=summary, **res)


def as_change(drive, journal, item):
    """The engine's Change for a planned restore: the original back (the whole SMS.INI: its backup's bytes), or
    the hotfix's file removed."""
    entry = item["entry"]
    present = drive.entry(item["parts"]).kind == "file"
    if item["group"] == "INI" and "data" in item:
        action = WRITE
    else:
        action = RESTORE if entry.get("existed") else REMOVE
    return Change(
        group=item["group"],
        name=item["name"],
        parts=item["parts"],
        current=item["parts"] if present else None,
        before_sha256=item["before_sha256"],
        after_sha256=item["after_sha256"],
        action=action,
        entry=entry,
        data=item.get("data"),
        mtime=item.get("mtime") if action == WRITE else entry.get("mtime"),
        size=entry.get("size"),
        path=item["path"],
        changed=True,
        journaled=True,
        backup=journal.backup_path(entry),
    )


def rollback_summary(run, todo, ini_item, must_stop, retire, foreign, journal, retired=None):
    check = run.module.check_mode
    parts = []
    restored = [i for i in todo if i["group"] != "INI" or i.get("mode") != "keys"]
    if restored:
        parts.append(
            "%d original file(s) %s from %s: %s"
            % (
                len(restored),
                "would be restored" if check else "restored",
                journal.root,
                ", ".join(i["name"] for i in restored),
            )
        )
    if ini_item is not None and ini_item.get("mode") == "keys" and ini_item["changed"]:
        parts.append(
            "SMS.INI %s %s (every other line kept)"
            % (
                ", ".join(
                    "[%s] %s=%s" % (k["section"], k["key"], "(removed)" if k["after"] is None else k["after"])
                    for k in ini_item["keys"]
                    if k["changed"]
                ),
                "would be put back" if check else "put back",
            )
        )
    if ini_item is not None and ini_item.get("problem") and ini_item["changed"]:
        parts.append(
            "%s %s, so the whole file %s from the backup"
            % (ini_item["path"], ini_item["problem"], "would be restored" if check else "was restored")
        )
    if must_stop:
        parts.append(
            "hung %s %s" % (run.p["process_name"], "would be ended" if check else "ended")
            if run.result["smsrun32"]["hung"]
            else "%s %s for the restore" % (run.p["process_name"], "would be stopped" if check else "stopped")
        )
    if not todo:
        parts.insert(0, "the original files are in place")
    if retire:
        parts.append(
            "journal %s %s"
            % (
                journal.path,
                "would be retired to %s" % journal.volume.path(journal.parts + ("retired",))
                if check
                else "retired to %s" % retired,
            )
        )
    else:
        parts.append(
            "journal %s kept: it also holds %s, which this module does not restore" % (journal.path, ", ".join(foreign))
        )
    return "%s: %s" % (run.client, "; ".join(parts))


def ini_plan(drive, entry, parts, journal):
    """SMS.INI's rollback: the two managed keys back to the backup's values.

    Only `[SMS] CopyListVersion` and `[Local] SetupPhase` are put back (a
    key the original lacked is removed), so whatever SMS changed since the
    upgrade stays. When nothing else changed, that is the original bytes.
    A current SMS.INI that cannot be read or parsed is restored whole.
    """
    journal.verify(entry)
    backup_parts = journal.backup_parts(entry)
    backup = journal.volume.read(backup_parts)
    backup_path = journal.volume.path(backup_parts)
    path = drive.path(parts)
    item = {
        "group": "INI",
        "entry": entry,
        "name": parts[-1],
        "parts": parts,
        "path": path,
        "service": False,
        "problem": None,
    }
    try:
        original = IniDocument.parse(backup, name=backup_path)
    except IniError as exc:
        original, item["problem"] = None, "has a backup that cannot be parsed (%s)" % exc.msg
    data, current = None, None
    try:
        try:
            data, item["stamp"] = drive.read_stamped(parts)
        except SmsFileError as exc:
            if not exc.facts.get("missing"):
                raise
        if data is None:
            item["problem"] = item["problem"] or "is missing"
        else:
            current = IniDocument.parse(data, name=path)
    except PathRefused as exc:
        raise wrap(exc)
    except SmsFileError as exc:
        item["problem"] = item["problem"] or "cannot be read (%s)" % exc.msg
    except IniError as exc:
        item["problem"] = item["problem"] or "cannot be parsed (%s)" % exc.msg
    item["before_sha256"] = hashlib.sha256(data).hexdigest() if data is not None else None
    keys = []
    for section, key in (KEY_VERSION, KEY_PHASE):
        before = current.get(section, key) if current else None
        after = original.get(section, key) if original else None
        keys.append({"section": section, "key": key, "before": before, "after": after, "changed": before != after})
    item["keys"] = keys
    if item["problem"]:
        item.update(
            mode="whole_file",
            data=backup,
            mtime=entry["mtime"],
            after_sha256=entry["sha256"],
            changed=item["before_sha256"] != entry["sha256"],
        )
        return item
    restored = IniDocument.parse(data, name=path)
    predicted = IniDocument.parse(backup, name=backup_path)  # the original with the current values
    for (section, key), entry_keys in zip((KEY_VERSION, KEY_PHASE), keys):
        if entry_keys["after"] is None:
            restored.remove(section, key)
        else:
            restored.set(section, key, entry_keys["after"])
        if entry_keys["before"] is None:
            predicted.remove(section, key)
        else:
            predicted.set(section, key, entry_keys["before"])
    if predicted.to_bytes() == data:  # nothing else changed since the upgrade
        new, mtime = backup, entry["mtime"]
    else:
        new, mtime = restored.to_bytes(), None
    item.update(
        mode="keys",
        data=new,
        mtime=mtime,
        changed=new != data,
        current=data,
        after_sha256=hashlib.sha256(new).hexdigest(),
    )
    return item
