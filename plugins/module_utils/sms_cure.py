# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cure of Q216552 put in force and proven, in the upgrade's own module run.

After sms_client_upgrade replaced the files (and started SMSRUN32 again), this
code restarts what the hotfix replaced, by policy (`restart`):
- `service`: stops and starts the SMS client service (argv lists, or a service
  name through the host's service manager) when a service file changed;
- `reboot`: nothing here; the result asks the role for a reboot
  (ansible.builtin.reboot, wave by wave, inside the window), after which a
  second run watches the client (`verify_when=always`, `rebooted=true`);
- `none`: nothing is restarted; the result says "reboot pending" and lists
  the service files that changed.
Then it watches the client for `verify_seconds` (sms_proc.watch): exactly one
SMSRUN32, never above the hung threshold, and the client service running where
it was restarted. A failed restart or watch fails the client (status
`restart_failed` / `verify_failed`), so it counts toward the wave gate.

It hooks the module's exit: the upgrade ends with exit_json, and the cure must
run after the work and before the result leaves (one module run per client).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import SmsFileError

RESTARTS = ("service", "reboot", "none")

CURE_ARGS: Dict[str, Dict[str, Any]] = dict(
    restart=dict(type="str", default="none", choices=list(RESTARTS)),
    service_name=dict(type="str"),
    service_start_argv=dict(type="list", elements="str", default=[]),
    service_stop_argv=dict(type="list", elements="str", default=[]),
    service_status_argv=dict(type="list", elements="str", default=[]),
    verify_seconds=dict(type="float", default=0.0),
    verify_interval=dict(type="float", default=1.0),
    verify_when=dict(type="str", default="changed", choices=["changed", "always"]),
    rebooted=dict(type="bool", default=False),
    # Judged by the action plugin on the controller before the module runs (restart=reboot).
    reboot_timeout=dict(type="float", default=600.0),
    window=dict(type="str", default=""),
)


class CureError(Exception):
    """A restart that could not be done; `status` is the result's status word."""

    def __init__(self, msg: str, status: str = "restart_failed") -> None:
        super().__init__(msg)
        self.msg = msg
        self.status = status


def check_params(module: Any, client: str) -> None:
    """Before anything changes: the restart policy has what it needs."""
    p = module.params
    if p["restart"] == "service" and not (p["service_name"] or p["service_start_argv"]):
        module.fail_json(
            msg="%s: restart=service needs the client service: set service_name (a host with a service manager) "
            "or service_start_argv and service_stop_argv (role: sms_client_service_name, or "
            "sms_client_service_start_argv and sms_client_service_stop_argv); nothing was changed" % client,
            status="refused",
        )
    if p["service_name"] and (p["service_start_argv"] or p["service_stop_argv"] or p["service_status_argv"]):
        module.fail_json(
            msg="%s: give service_name or the service_*_argv lists, not both; nothing was changed" % client,
            status="refused",
        )
    if p["service_start_argv"] and not p["service_stop_argv"]:
        module.fail_json(
            msg="%s: service_start_argv needs service_stop_argv (a restart is a stop, then a start); "
            "nothing was changed" % client,
            status="refused",
        )
    if p["verify_seconds"] < 0 or p["verify_interval"] <= 0:
        module.fail_json(
            msg="%s: verify_seconds must be 0 or more and verify_interval more than 0 (got %s and %s); "
            "nothing was changed" % (client, p["verify_seconds"], p["verify_interval"]),
            status="refused",
        )


def service_commands(module: Any) -> Dict[str, List[str]]:
    """argv lists to stop, start and query the client service."""
    p = module.params
    if p["service_name"]:
        systemctl = module.get_bin_path("systemctl")
        if systemctl:
            return {
                "stop": [systemctl, "stop", p["service_name"]],
                "start": [systemctl, "start", p["service_name"]],
                "status": [systemctl, "is-active", "--quiet", p["service_name"]],
            }
        service = module.get_bin_path("service", required=True)
        return {
            "stop": [service, p["service_name"], "stop"],
            "start": [service, p["service_name"], "start"],
            "status": [service, p["service_name"], "status"],
        }
    return {
        "stop": list(p["service_stop_argv"]),
        "start": list(p["service_start_argv"]),
        "status": list(p["service_status_argv"]),
    }


def _run(module: Any, argv: List[str]) -> Optional[str]:
    rc, out, err = module.run_command(argv)
    if rc != 0:
        return "%s exited %d: %s" % (argv[0], rc, ((err or "") + (out or "")).strip()[:300] or "(no output)")
    return None


def restart_service(module: Any) -> Dict[str, Any]:
    """Stop, then start the client service; CureError when either fails."""
    commands = service_commands(module)
    label = module.params["service_name"] or "the client service"
    problem = _run(module, commands["stop"])
    if problem:
        raise CureError("stopping %s failed (%s)" % (label, problem))
    problem = _run(module, commands["start"])
    if problem:
        raise CureError(
            "%s failed to start (%s); the client runs without its service: start it by hand, "
            "or roll the client back" % (label, problem)
        )
    return {"how": "service", "done": True, "service": label}


def service_running(module: Any) -> Optional[bool]:
    """Whether the client service runs (None when no status command is known)."""
    argv = service_commands(module)["status"]
    if not argv:
        return None
    rc, _out, _err = module.run_command(argv)
    return rc == 0


def _service_files(res: Dict[str, Any], module: Any) -> List[str]:
    # Smssrv32.exe is the SMS client service: reboot_required names that it changed.
    names = [item["name"] for item in res.get("files", []) if item.get("changed")]
    return [name for name in names if name.lower().startswith("smssrv")] or names


def start_smsrun(run: Any, res: Dict[str, Any], msg: str) -> str:
    """After an upgrade SMSRUN32 runs: start it when none does (the upgrade
    found none, or the service restart ended it), as Client Setup would."""
    module, p = run.module, run.p
    if not p["start_argv"]:
        return msg
    if (res.get("smsrun32") or {}).get("restarted") and not (res.get("restart") or {}).get("done"):
        # the upgrade itself started it again and nothing ended it since: a second
        # start now (before the first shows in the process table) would make two
        return msg
    try:
        running = sms_proc.list_processes(p["process_name"], p["process_scope"], run.drive_root)
    except sms_proc.ProcessTableUnavailable:
        return msg
    if running:
        return msg
    problem = _run(module, list(p["start_argv"]))
    if problem:
        res.update(
            status="restart_failed",
            changed=True,
            restart=dict(res.get("restart") or {}, error="starting %s failed (%s)" % (p["process_name"], problem)),
        )
        module.fail_json(
            msg="%s; but starting %s failed (%s); start it by hand" % (msg, p["process_name"], problem), **res
        )
    res.setdefault("smsrun32", {})["restarted"] = True
    return msg + "; %s started" % p["process_name"]


# The record of a cure still owed, in the client's state folder (beside the journal).
RECORD = "cure_owed.json"


def _record_place(run: Any) -> Optional[Tuple[Any, Tuple[str, ...], str]]:
    return getattr(run, "cure_state", None)


def read_owed(run: Any) -> Optional[Dict[str, Any]]:
    """The cure an earlier run left owed on this client (restart and/or watch), or None."""
    place = _record_place(run)
    if place is None:
        return None
    volume, parts, kb = place
    try:
        data = volume.read_or_none(parts + (RECORD,))
    except SmsFileError as exc:
        run.fail(exc)
    if data is None:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        # Unreadable: the whole cure is owed again (a restart and a watch do no harm).
        record = {
            "kb": kb,
            "restart_owed": True,
            "watch_owed": True,
            "service_files": [],
            "note": "%s could not be read: treated as a restart and a watch still owed"
            % volume.path(parts + (RECORD,)),
        }
    record["path"] = volume.path(parts + (RECORD,))
    return record


def write_owed(run: Any, record: Dict[str, Any], res: Optional[Dict[str, Any]] = None) -> None:
    """Write the record atomically (sms_fs: temporary file, then rename); a failure fails the client."""
    place = _record_place(run)
    if place is None:
        return
    volume, parts, _kb = place
    body = {k: v for k, v in record.items() if k != "path"}
    try:
        if volume.entry(parts).kind != "dir":
            volume.makedirs(parts)
        volume.write_bytes(parts + (RECORD,), (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    except SmsFileError as exc:
        res = dict(res if res is not None else run.result)
        res.pop("msg", None)
        run.module.fail_json(
            msg="%s: the record of the cure still owed (the restart and the watch after the "
            "upgrade) could not be written (%s); fix the state folder and run again" % (run.client, exc.msg),
            **dict(res, status="restart_failed", path=volume.path(parts + (RECORD,))),
        )
    record["path"] = volume.path(parts + (RECORD,))


def clear_owed(run: Any) -> Optional[str]:
    """Remove the record (the cure held); its path when there was one."""
    place = _record_place(run)
    if place is None:
        return None
    volume, parts, _kb = place
    try:
        if volume.entry(parts + (RECORD,)).kind is None:
            return None
        volume.unlink(parts + (RECORD,), missing_ok=True)
    except SmsFileError as exc:
        run.fail(exc)
    return volume.path(parts + (RECORD,))


def owe(run: Any, res: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Record the cure this upgrade owes (the restart by policy, the watch), before anything is replaced,
    so a run that fails or is killed after the replacement still owes it; None (and no record) when
    nothing is owed (restart none and verify_seconds 0)."""
    p = run.p
    due = bool(res.get("reboot_required"))
    restart_owed = due and p["restart"] != "none"
    if not (restart_owed or p["verify_seconds"] > 0):
        clear_owed(run)
        return None
    place = _record_place(run)
    record = {
        "kb": place[2] if place else None,
        "since": _now(),
        "restart": p["restart"],
        "restart_owed": restart_owed,
        "service_files": _service_files(res, run.module) if due else [],
        "watch_owed": p["verify_seconds"] > 0,
        "last_status": None,
    }
    write_owed(run, record, res)
    run.cure_record = record
    return record


def cure(run: Any, res: Dict[str, Any], msg: str) -> str:
    """Restart and watch after an upgrade, or what an earlier run left owed; returns the message, or fails."""
    module, p = run.module, run.p
    how = p["restart"]
    upgraded = res.get("status") == "upgraded"
    rebooted = bool(p["rebooted"])
    # A re-run finds the files in place ("unchanged"): the cure an earlier run
    # did not finish (its restart or its watch failed) is still owed.
    owed = None if upgraded else read_owed(run)
    if owed is not None:
        res["cure_owed"] = {
            k: owed.get(k) for k in ("kb", "since", "restart_owed", "service_files", "last_status", "path")
        }
    if upgraded:
        due, pending = bool(res.get("reboot_required")), _service_files(res, module)
    elif owed is not None:
        due, pending = bool(owed.get("restart_owed")), list(owed.get("service_files") or [])
        if due:
            res["reboot_required"] = True
    else:
        due, pending = False, []
    record: Optional[Dict[str, Any]] = None
    if not module.check_mode:
        if upgraded:
            # Written before the files were replaced (owe, through the upgrade's hook); here when it was not.
            record = getattr(run, "cure_record", None) or owe(run, res)
        elif owed is not None:
            record = owed
    restart: Dict[str, Any] = {"how": how, "done": False}
    restarted_now = False
    if rebooted:
        restart.update(how="reboot", done=True)
        if record is not None:
            record["restart_owed"] = False
    elif due:
        if module.check_mode:
            restart["note"] = "would %s (client service changed: %s)" % (
                {
                    "service": "restart the client service",
                    "reboot": "reboot the client",
                    "none": "leave a reboot pending",
                }[how],
                ", ".join(pending),
            )
            if owed is not None and how in ("service", "reboot"):
                res["changed"] = True  # a real run restarts (or asks for the reboot)
        elif how == "service":
            try:
                restart.update(restart_service(module))
            except CureError as exc:
                res.update(status=exc.status, restart=dict(restart, error=exc.msg), changed=True)
                _still_owed(run, res, record, exc.status)
                module.fail_json(msg="%s; %s" % (msg, exc.msg), **res)
            restarted_now = True
            res["changed"] = True
            res["reboot_required"] = False
            if record is not None:
                record["restart_owed"] = False
            msg += "; client service restarted"
        elif how == "reboot":
            restart.update(needed=True, pending=pending)
            res["changed"] = True  # the reboot handler runs only for a changed result
            msg += "; reboot follows (client service changed)"
        else:
            restart.update(pending=pending, note="reboot pending: %s changed and restart is none" % ", ".join(pending))
            msg += "; reboot pending (restart=none)"
    else:
        restart["note"] = "no client service file changed: nothing to restart"
    res["restart"] = restart
    if (
        (upgraded or restarted_now or (owed is not None and not rebooted))
        and not module.check_mode
        and not restart.get("needed")
    ):
        msg = start_smsrun(run, res, msg)

    watch_now = (upgraded or owed is not None or p["verify_when"] == "always") and p["verify_seconds"] > 0
    if module.check_mode:
        res["verify"] = {"result": "not_watched", "reason": "check mode watches nothing"}
        if owed is not None:
            msg += "; the cure of an earlier run is still owed (%s): a real run would %swatch the client" % (
                owed["path"],
                "restart the client service, then " if due and how == "service" else "",
            )
        return msg
    if not watch_now:
        res["verify"] = {
            "result": "not_watched",
            "reason": (
                "verify_seconds is 0"
                if p["verify_seconds"] <= 0
                else "status %s: nothing was upgraded in this run" % res.get("status")
            ),
        }
        if record is not None and not restart.get("needed"):
            clear_owed(run)  # nothing to watch: what was owed (the restart, by policy) is done
            if owed is not None:
                res["cure_owed"]["cleared"] = True
                if restarted_now:
                    res["status"] = "restarted"
        return msg
    if restart.get("needed"):
        res["verify"] = {"result": "not_watched", "reason": "watched after the reboot"}
        return msg
    expect = bool(p["start_argv"]) or bool((res.get("smsrun32") or {}).get("found"))
    try:
        verify = sms_proc.watch(
            p["process_name"],
            p["process_scope"],
            run.drive_root,
            p["verify_seconds"],
            p["verify_interval"],
            p["hung_cpu_threshold"],
            expect_running=expect,
        )
    except sms_proc.ProcessTableUnavailable as exc:
        res["verify"] = {"result": "unverified", "reason": str(exc)}
        _still_owed(run, res, record, "unverified")
        return msg + "; the cure is unverified (%s)" % exc
    problems = [verify["reason"]] if verify["result"] in ("hung", "not_running") else []
    can_tell = bool(p["service_name"] or p["service_status_argv"])
    if restart.get("how") in ("service", "reboot") and restart.get("done") and can_tell:
        running = service_running(module)
        verify["service"] = "running" if running else "not running"
        if running is False:
            problems.append("the client service is not running")
    res["verify"] = verify
    if (rebooted or owed is not None) and not problems:
        res["status"] = "verified"
    facts = "watched %gs: %d instance(s) at most, highest CPU %.1f %%" % (
        verify["elapsed"],
        verify["instances"],
        verify["highest_cpu"],
    )
    if problems:
        res.update(status="verify_failed", changed=res.get("changed", False) or upgraded)
        _still_owed(run, res, record, "verify_failed")
        module.fail_json(msg="%s; but the cure did not hold: %s (%s)" % (msg, "; ".join(problems), facts), **res)
    if verify["result"] == "unverified":
        _still_owed(run, res, record, "unverified")
        return msg + "; the cure is unverified: %s" % verify["reason"]
    if record is not None:
        clear_owed(run)  # the restart (by policy) and the watch both held
        if owed is not None:
            res["cure_owed"]["cleared"] = True
            msg += "; the cure an earlier run left owed now holds"
    return msg + "; verified healthy (%s)" % facts


def _still_owed(run: Any, res: Dict[str, Any], record: Optional[Dict[str, Any]], status: str) -> None:
    """Keep the record (with what is still owed) after a failed restart or watch; the result says where."""
    if record is None or run.module.check_mode:
        return
    record["last_status"] = status
    record["last_run"] = _now()
    write_owed(run, record, res)
    res["cure_owed"] = dict(
        res.get("cure_owed") or {}, restart_owed=record["restart_owed"], last_status=status, path=record.get("path")
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def install(run: Any) -> None:
    """Run the cure when the upgrade exits (state=present only)."""
    module = run.module
    check_params(module, run.client)
    original: Callable[..., Any] = module.exit_json

    def exit_json(**kwargs: Any) -> Any:
        module.exit_json = original
        if kwargs.get("status") in ("upgraded", "unchanged"):
            msg = kwargs.pop("msg", "")
            kwargs["msg"] = cure(run, kwargs, msg)
        return original(**kwargs)

    module.exit_json = exit_json
    # Called by the upgrade just before the files are replaced (not in check mode).
    run.before_replace = lambda res: owe(run, res)
