#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_rollout_lock
short_description: Take or release the rollout lock on an SMS site server
description:
  - Keeps two rollouts (two AWX jobs, or a person and a schedule) from staging a hotfix on the same
    site server at once. The lock is a file, by default C(<SMS root>/Hotfix/rollout.lock), holding
    JSON with the C(holder), C(purpose), C(started) (ISO-8601 UTC), C(epoch) and C(run) of the run that holds it.
  - O(state=acquired) creates the lock exclusively (nobody else can create it at the same moment).
    If the lock is already held by the same O(holder), the run goes on (re-entrant, e.g. a re-run of the
    same job after a failure) and the lock gets a new C(epoch) and a C(refreshed) date (C(started) is kept,
    the file is rewritten atomically), so the stale-lock rule counts from the holder's last sign of life.
    If another holder has it, the module fails naming that holder, its purpose and since when.
  - B(Stale-lock rule.) A lock whose C(epoch) is more than O(stale_after) seconds old belongs to a run
    that died (no rollout step takes that long); the next run takes it over, warns, and returns the
    previous holder. The takeover is exclusive, so of several runs taking over the same stale lock exactly
    one wins. A claim file named after that lock (C(rollout.lock.takeover-<hash>)) is created exclusively,
    the stale lock is renamed to a unique name, and the new lock is created exclusively. A run that finds
    the lock gone or changed judges again, once. A lock file that
    cannot be read is aged by its file date. Until it is stale, only O(force=true) (the
    C(playbooks/unlock.yml) playbook with C(-e sms_unlock_force=true)) removes another holder's lock
    (O(state=released)).
  - O(state=released) removes the lock if O(holder) holds it (or anyone holds it, with O(force=true)).
  - Taking a free lock and releasing one's own lock are the run's own bookkeeping, not a change of the
    managed state, so they report C(changed=false) (with RV(acquired=true) or RV(released=true)) and a whole
    rollout stays idempotent. Only a takeover of a stale lock or a forced release reports a change.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
options:
  path:
    description:
      - Path of the lock file, normally C(<SMS root>/Hotfix/rollout.lock); a share path over SMB
        (C(\\SMSSITE\SMS_SHRC\Hotfix\rollout.lock)).
      - Its folder is created if missing, but only that last level; if the folder's parent (the SMS root)
        does not exist the module fails.
    type: str
    required: true
  state:
    description: V(acquired) takes the lock; V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  holder:
    description: Who holds the lock, as people will read it, e.g. V(awx job 42) or V(alice@controller).
    type: str
    required: true
  purpose:
    description: What the holder is doing, e.g. V(rollout) or V(rollback).
    type: str
    default: rollout
  stale_after:
    description: Age in seconds after which another holder's lock is considered left by a dead run and may be taken over.
    type: int
    default: 21600
  run:
    description:
      - The run taking the lock, which the lock records - C(controller) (host name), C(pid) and C(pid_started)
        of the C(ansible-playbook) process, and C(awx_job) (the AWX workflow job or job id) under AWX. The
        action plugin of the same name fills it in.
      - A re-entry by the same O(holder) is for a run whose predecessor died. When the lock records another
        run of that holder, the module refuses (RV(same_holder_run) names it) unless that run is the one
        O(replace_run) names, or both runs are AWX jobs (AWX starts a template's next job only after the
        last one ended, since the rollout's templates do not allow simultaneous jobs), or the lock is stale.
        The action plugin judges on the controller whether the recorded run is still alive.
    type: dict
  replace_run:
    description: The recorded run (its id, C(controller/pid/pid_started)) known to be dead, whose lock this run takes over.
    type: str
  force:
    description:
      - With O(state=released), remove the lock even when another holder has it.
      - Use only when that run is known to be dead.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Writes nothing; a lock held by another live run still fails, as the real run would be refused.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: sms.hotfix.sms_hotfix_stage
"""

EXAMPLES = r"""
- name: Take the rollout lock
  sms.hotfix.sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "awx job {{ awx_job_id | default('manual') }}"
    purpose: rollout
  register: lock

- name: Say who had a stale lock that was taken over
  ansible.builtin.debug:
    msg: "took over the lock of {{ lock.previous_holder.holder }}"
  when: lock.previous_holder is defined

- name: Release the rollout lock
  sms.hotfix.sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "awx job {{ awx_job_id | default('manual') }}"
    state: released

- name: Break the lock of a run that died
  sms.hotfix.sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "alice@controller"
    state: released
    force: true
"""

RETURN = r"""
lock:
  description: The lock as it is after the run (with O(state=released), the lock that was removed).
  returned: when there is or was a lock
  type: dict
  contains:
    holder:
      description: Who holds it (O(holder) of the run that took it).
      type: str
      sample: awx job 42
    purpose:
      description: What for (O(purpose) of the run that took it).
      type: str
      sample: rollout
    started:
      description: When it was taken, ISO-8601 UTC.
      type: str
      sample: "2026-11-24T17:00:00Z"
    refreshed:
      description: When its holder last re-acquired it (a re-entrant acquire), ISO-8601 UTC.
      type: str
      returned: when the lock was refreshed
      sample: "2026-11-24T19:00:00Z"
    path:
      description: Path of the lock file.
      type: str
acquired:
  description: Whether O(holder) holds the lock now (in check mode, would hold it).
  returned: with O(state=acquired)
  type: bool
reentrant:
  description: Whether O(holder) already held the lock (a re-run of the same job goes on).
  returned: with O(state=acquired)
  type: bool
released:
  description: Whether a lock was removed (in check mode, would be).
  returned: with O(state=released)
  type: bool
same_holder_run:
  description:
    - The other run of the same O(holder) that the lock records, with its C(controller), C(pid),
      C(pid_started) or C(awx_job), when the module refused to re-enter because that run may still be alive.
  returned: when refused for that reason
  type: dict
previous_holder:
  description:
    - The lock taken over (stale) or broken (O(force=true)), with its C(holder), C(purpose), C(started)
      and C(age) (seconds).
  returned: on a takeover or a forced release
  type: dict
msg:
  description: What happened, in one sentence (on a refusal, who holds the lock and what to do).
  returned: always
  type: str
status:
  description:
    - What the module did, in one word. With O(state=acquired) it is V(acquired) (took the free lock), V(refreshed)
      (its O(holder) held it already; re-entered with a new C(epoch)), or V(taken_over) (took over a stale lock).
      With O(state=released) it is V(released) (removed its holder's lock), V(not_held) (there was no lock), or
      V(broken) (removed another holder's lock with O(force=true)).
    - In check mode the words are V(would_acquire), V(would_refresh), V(would_take_over), V(would_release),
      V(would_break) (V(not_held) stays).
    - On a failure, V(refused) (the lock is held by another run, or an input or the lock's folder does not
      allow it; nothing was changed) or V(failed) (the lock file could not be read or written).
  returned: always, unless the task's arguments themselves were refused
  type: str
  sample: acquired
state:
  description: The state the module ran, V(acquired) or V(released) (O(state)).
  returned: always, unless the task's arguments themselves were refused
  type: str
  sample: acquired
failed_path:
  description: The path at fault (the lock file, or its folder or the SMS root).
  returned: failure
  type: str
"""

import binascii
import hashlib
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import iso_utc
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import SmsFileError, open_volume, split_file
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS, smb_settings

UNLOCK_HINT = "playbooks/unlock.yml -e sms_unlock_force=true"


class LockError(Exception):
    def __init__(self, msg, **facts):
        super().__init__(msg)
        self.msg = msg
        self.facts = facts


def human_age(seconds):
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    if minutes:
        return "%dm%02ds" % (minutes, secs)
    return "%ds" % secs


class Lock:
    """The lock file on its volume: the SMS root (local or a share); its folder and file never links."""

    def __init__(self, path, params):
        self.path = path
        top, parts = split_file(path, depth=2)
        self.volume = open_volume(top, label="the SMS root", smb=smb_settings(params, top))
        self.folder = parts[:1]
        self.parts = parts

    def sibling(self, name):
        return self.folder + (name,)


def read_lock(lock):
    """The lock's content, or None when there is no lock. An unreadable lock is aged by its file date."""
    entry = lock.volume.entry(lock.parts)
    if entry.kind is None:
        return None
    if entry.kind != "file":
        raise LockError(
            "the rollout lock %s is %s; remove it and run again"
            % (
                lock.path,
                "a symbolic link (the rollout never follows links)" if entry.kind == "link" else "not a regular file",
            ),
            path=lock.path,
        )
    # A lock being created has a second link for a moment (sms_fs create_exclusive); it is never copied.
    raw = lock.volume.read_or_none(lock.parts, links_ok=True)
    if raw is None:
        return None
    # What identifies this very lock file (a takeover must replace the one it judged stale, no other).
    ident = {"raw": raw, "ino": entry.ino}
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        epoch = float(data["epoch"])
        found = {
            "holder": str(data.get("holder", "unknown")),
            "purpose": str(data.get("purpose", "unknown")),
            "started": str(data.get("started", iso_utc(epoch))),
            "epoch": epoch,
            "path": lock.path,
            "data": data,
        }
        if "refreshed" in data:
            found["refreshed"] = str(data["refreshed"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        found = {
            "holder": "unknown (unreadable lock file)",
            "purpose": "unknown",
            "started": iso_utc(entry.mtime),
            "epoch": entry.mtime,
            "path": lock.path,
        }
    found["ident"] = ident
    return found


def public(lock):
    return {key: lock[key] for key in ("holder", "purpose", "started", "path", "refreshed") if key in lock}


def lock_payload(holder, purpose, now, run=None):
    data = {"holder": holder, "purpose": purpose, "started": iso_utc(now), "epoch": now}
    if run:
        data["run"] = run
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def refreshed_payload(lock, now, run=None):
    """The holder's own lock with a new `epoch` (its last sign of life) and `refreshed`; `started` kept."""
    data = dict(lock["data"], epoch=now, refreshed=iso_utc(now))
    if run:
        data["run"] = run
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def run_id(run):
    """A run's identity: its controller, the ansible-playbook process and that process's start."""
    return "%s/%s/%s" % (run.get("controller"), run.get("pid"), run.get("pid_started"))


def other_live_run(current, params, stale):
    """The other run of the same holder recorded in the lock, when it may still be running; else None."""
    mine, recorded = params.get("run"), (current.get("data") or {}).get("run")
    if stale or not mine or not isinstance(recorded, dict) or run_id(recorded) == run_id(mine):
        return None
    if recorded.get("awx_job") and mine.get("awx_job"):
        return None  # AWX runs a template's jobs one after the other
    if params.get("replace_run") == run_id(recorded):
        return None  # judged dead on its controller
    return recorded


def same_holder_message(lock, recorded):
    return (
        "rollout lock %s is held by %s, and that holder has another run: pid %s on %s, started %s%s. Two runs "
        "of one holder would race on the same files, so this one stops, having changed nothing. If that run "
        "is still going, let it finish; if it died, run again from its controller (it is then known dead), or "
        "release the lock with %s"
        % (
            lock["path"],
            lock["holder"],
            recorded.get("pid"),
            recorded.get("controller"),
            recorded.get("started") or "?",
            (" (AWX job %s)" % recorded["awx_job"]) if recorded.get("awx_job") else "",
            UNLOCK_HINT,
        )
    )


def take_over(lock, judged, data):
    """Replace the stale lock `judged` (as read) by `data`; True if this run did, False if another got there.

    Exclusive: a claim file named after that very lock file is created first (exclusively, so one claimant per
    stale lock), the lock is checked to be still the one judged stale, then it is renamed to a unique name
    (only one process can rename it; a missing lock means it is gone already) and the new lock is created
    exclusively, which fails if anybody created one meanwhile.
    """
    ident = judged["ident"]
    digest = hashlib.sha256(b"%d\0" % (ident["ino"] or 0) + ident["raw"]).hexdigest()[:16]
    claim = lock.sibling("%s.takeover-%s" % (lock.parts[-1], digest))
    if not lock.volume.create_exclusive(claim, b""):
        return False
    try:
        current = read_lock(lock)
        if current is None or current["ident"] != ident:
            return False  # taken over, released or refreshed since it was read
        aside = lock.sibling("%s.stale-%d-%s" % (lock.parts[-1], os.getpid(), binascii.hexlify(os.urandom(6)).decode()))
        try:
            lock.volume.rename(lock.parts, aside)
        except SmsFileError as exc:
            if exc.facts.get("missing") or lock.volume.entry(lock.parts).kind is None:
                return False
            raise
        try:
            return lock.volume.create_exclusive(lock.parts, data)
        finally:
            lock.volume.unlink(aside)
    finally:
        lock.volume.unlink(claim)


def replace_lock(lock, data):
    lock.volume.write_bytes(lock.parts, data)


def held_message(lock, age, params):
    return (
        "rollout lock %s is held by %s (%s) since %s, %s ago; wait for it to finish, or if that run died: "
        "it becomes stale after %ds, or release it with %s"
        % (
            lock["path"],
            lock["holder"],
            lock["purpose"],
            lock["started"],
            human_age(age),
            params["stale_after"],
            UNLOCK_HINT,
        )
    )


def ensure_folder(lock, check_mode):
    """The lock's folder (below the SMS root, never reached through a link); made when missing."""
    volume = lock.volume
    folder_path = volume.path(lock.folder)
    try:
        if volume.entry(()).kind != "dir":
            raise LockError(
                "cannot create the lock folder %s: its parent %s (the SMS root) does not exist; "
                "check the SMS root path" % (folder_path, volume.top),
                path=volume.top,
            )
        kind = volume.entry(lock.folder).kind
        if kind is not None:
            volume.listdir(lock.folder)  # a link (or a file) is refused here, named
            if not volume.writable(lock.folder):
                raise LockError(
                    "cannot take the rollout lock: %s is read-only (or not writable for this account); "
                    "make it writable and run again" % folder_path,
                    path=folder_path,
                )
            if not check_mode:
                volume.clean_temps(lock.folder)
            return False
        if not volume.writable(()):
            raise LockError(
                "cannot create the lock folder %s: %s is read-only (or not writable for this account); "
                "make it writable and run again" % (folder_path, volume.top),
                path=volume.top,
            )
        if not check_mode:
            volume.makedirs(lock.folder)
    except SmsFileError as exc:
        raise LockError(exc.msg, path=exc.path)
    return True


def acquire(module, lock):
    params = module.params
    path = lock.path
    holder = params["holder"]
    ensure_folder(lock, module.check_mode)
    lost_takeovers = 0
    for _attempt in range(4):
        now = time.time()
        data = lock_payload(holder, params["purpose"], now, params.get("run"))
        mine = {"holder": holder, "purpose": params["purpose"], "started": iso_utc(now), "path": path}
        current = read_lock(lock)
        if current is None:
            if module.check_mode:
                return dict(
                    changed=False,
                    status="would_acquire",
                    acquired=True,
                    reentrant=False,
                    lock=mine,
                    msg="rollout lock %s is free; %s would take it" % (path, holder),
                )
            if lock.volume.create_exclusive(lock.parts, data):
                return dict(
                    changed=False,
                    status="acquired",
                    acquired=True,
                    reentrant=False,
                    lock=mine,
                    msg="rollout lock %s taken by %s (%s)" % (path, holder, params["purpose"]),
                )
            continue  # somebody created it just now: read it again
        age = now - current["epoch"]
        stale = age >= params["stale_after"]
        if current["holder"] == holder:
            # Re-entrant for a run whose predecessor died, never beside a live one:
            # a new epoch, so the stale rule counts from the holder's last sign of life.
            recorded = other_live_run(current, params, stale)
            if recorded is not None:
                raise LockError(
                    same_holder_message(current, recorded), lock=public(current), same_holder_run=recorded, age=int(age)
                )
            shown = public(current)
            if not module.check_mode:
                payload = refreshed_payload(current, now, params.get("run"))
                if stale:
                    if not take_over(lock, current, payload):
                        lost_takeovers += 1
                        if lost_takeovers > 1:
                            break
                        continue  # another run took it over at the same moment: judge again
                else:
                    replace_lock(lock, payload)
                shown["refreshed"] = iso_utc(now)
            return dict(
                changed=False,
                status="would_refresh" if module.check_mode else "refreshed",
                acquired=True,
                reentrant=True,
                lock=shown,
                msg="rollout lock %s already held by %s since %s; going on" % (path, holder, current["started"]),
            )
        if not stale:
            raise LockError(held_message(current, age, params), lock=public(current), age=int(age))
        previous = dict(public(current), age=int(age))
        warning = "%s the stale rollout lock %s of %s (%s) since %s, %s ago (stale after %ds)" % (
            "would take over" if module.check_mode else "took over",
            path,
            current["holder"],
            current["purpose"],
            current["started"],
            human_age(age),
            params["stale_after"],
        )
        if not module.check_mode and not take_over(lock, current, data):
            lost_takeovers += 1
            if lost_takeovers > 1:
                break
            continue  # another run took it over (or released it) at the same moment: judge again, once
        module.warn(warning)
        return dict(
            changed=True,
            status="would_take_over" if module.check_mode else "taken_over",
            acquired=True,
            reentrant=False,
            lock=mine,
            previous_holder=previous,
            msg=warning,
        )
    raise LockError(
        "rollout lock %s changed hands while it was being taken (another run is taking it over at the "
        "same moment); run again. If no other run is active, remove any %s.takeover-* file left by a "
        "run that died, or release the lock with %s" % (path, path, UNLOCK_HINT)
    )


def release(module, lock):
    params = module.params
    path = lock.path
    holder = params["holder"]
    current = read_lock(lock)
    if current is None:
        return dict(
            changed=False, status="not_held", released=False, msg="no rollout lock at %s; nothing to release" % path
        )
    if current["holder"] == holder:
        if not module.check_mode:
            lock.volume.unlink(lock.parts)
        return dict(
            changed=False,
            status="would_release" if module.check_mode else "released",
            released=True,
            lock=public(current),
            msg="rollout lock %s released by %s" % (path, holder),
        )
    age = time.time() - current["epoch"]
    if not params["force"]:
        raise LockError(
            "rollout lock %s is held by %s (%s) since %s, %s ago, not by %s; it was left in place. If that run "
            "died, release it with %s"
            % (path, current["holder"], current["purpose"], current["started"], human_age(age), holder, UNLOCK_HINT),
            lock=public(current),
            age=int(age),
        )
    if not module.check_mode:
        lock.volume.unlink(lock.parts)
    previous = dict(public(current), age=int(age))
    msg = "broke the rollout lock %s of %s (%s) since %s, %s ago, on request of %s" % (
        path,
        current["holder"],
        current["purpose"],
        current["started"],
        human_age(age),
        holder,
    )
    module.warn(msg)
    return dict(
        changed=True,
        status="would_break" if module.check_mode else "broken",
        released=True,
        lock=public(current),
        previous_holder=previous,
        msg=msg,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            holder=dict(type="str", required=True),
            purpose=dict(type="str", default="rollout"),
            stale_after=dict(type="int", default=21600),
            force=dict(type="bool", default=False),
            run=dict(type="dict"),
            replace_run=dict(type="str"),
            **SMB_ARGS,
        ),
        supports_check_mode=True,
    )
    if not module.params["holder"].strip():
        module.fail_json(
            msg="holder must name who takes the lock, e.g. 'awx job 42' or 'alice@controller'",
            status="refused",
            state=module.params["state"],
        )
    if module.params["stale_after"] <= 0:
        module.fail_json(
            msg="stale_after must be a positive number of seconds, got %d" % module.params["stale_after"],
            status="refused",
            state=module.params["state"],
        )
    state = module.params["state"]
    try:
        lock = Lock(module.params["path"], module.params)
        if state == "acquired":
            result = acquire(module, lock)
        else:
            result = release(module, lock)
    except SmsFileError as exc:
        module.fail_json(
            msg="cannot use the rollout lock %s: %s" % (module.params["path"], exc.msg),
            failed_path=module.params["path"],
            status="failed",
            state=state,
        )
    except LockError as exc:
        facts = dict(exc.facts)
        # not `path`: Ansible would add that file's owner, mode and `state` (file) to the result
        facts["failed_path"] = facts.pop("path", None) or module.params["path"]
        module.fail_json(msg=exc.msg, status="refused", state=state, **facts)
    except OSError as exc:  # pragma: no cover - the volume layer turns OS errors into SmsFileError
        module.fail_json(
            msg="cannot use the rollout lock %s: %s; check that its folder is writable" % (module.params["path"], exc),
            failed_path=module.params["path"],
            status="failed",
            state=state,
        )
    module.exit_json(state=state, **result)


if __name__ == "__main__":
    main()
