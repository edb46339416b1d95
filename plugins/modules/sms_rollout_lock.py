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
    JSON with the C(holder), C(purpose), C(started) (ISO-8601 UTC) and C(epoch) of the run that holds it.
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
    C(playbooks/unlock.yml) playbook with C(-e sms_unlock_force=true)) removes another holder's lock.
  - O(state=released) removes the lock if O(holder) holds it (or anyone holds it, with O(force=true)).
  - Taking a free lock and releasing one's own lock are the run's own bookkeeping, not a change of the
    managed state, so they report C(changed=false) (with RV(acquired) or RV(released) true) and a whole
    rollout stays idempotent. Only a takeover of a stale lock or a forced release reports a change.
version_added: "1.0.0"
author: the sms-hotfix-rollout authors
options:
  path:
    description:
      - Path of the lock file, normally C(<SMS root>/Hotfix/rollout.lock).
      - Its folder is created if missing, but only that last level; if the folder's parent (the SMS root)
        does not exist the module fails.
    type: path
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
    platforms: posix
seealso:
  - module: sms_hotfix_stage
"""

EXAMPLES = r"""
- name: Take the rollout lock
  sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "awx job {{ awx_job_id | default('manual') }}"
    purpose: rollout

- name: Release the rollout lock
  sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "awx job {{ awx_job_id | default('manual') }}"
    state: released

- name: Break the lock of a run that died
  sms_rollout_lock:
    path: "{{ sms_drive_root }}/SMS/Hotfix/rollout.lock"
    holder: "alice@controller"
    state: released
    force: true
"""

RETURN = r"""
lock:
  description: The lock as it is after the run (for O(state=released), the lock that was removed).
  returned: when there is or was a lock
  type: dict
  contains:
    holder:
      description: Who holds it.
      type: str
      sample: awx job 42
    purpose:
      description: What for.
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
  returned: state=acquired
  type: bool
reentrant:
  description: Whether O(holder) already held the lock.
  returned: state=acquired
  type: bool
released:
  description: Whether a lock was removed (in check mode, would be).
  returned: state=released
  type: bool
previous_holder:
  description: The lock taken over (stale) or broken (forced), with its holder, purpose, started and age.
  returned: on a takeover or a forced release
  type: dict
msg:
  description: What happened.
  returned: always
  type: str
"""

import binascii
import errno
import hashlib
import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import iso_utc

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


def read_lock(path):
    """The lock's content, or None when there is no lock. An unreadable lock is aged by its file date."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
            st = os.fstat(handle.fileno())
    except FileNotFoundError:
        return None
    # What identifies this very lock file (a takeover must replace the one it judged stale, no other).
    ident = {"raw": raw, "ino": st.st_ino}
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        epoch = float(data["epoch"])
        lock = {"holder": str(data.get("holder", "unknown")), "purpose": str(data.get("purpose", "unknown")),
                "started": str(data.get("started", iso_utc(epoch))), "epoch": epoch, "path": path, "data": data}
        if "refreshed" in data:
            lock["refreshed"] = str(data["refreshed"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        lock = {"holder": "unknown (unreadable lock file)", "purpose": "unknown", "started": iso_utc(st.st_mtime),
                "epoch": st.st_mtime, "path": path}
    lock["ident"] = ident
    return lock


def public(lock):
    return {key: lock[key] for key in ("holder", "purpose", "started", "path", "refreshed") if key in lock}


def lock_payload(holder, purpose, now):
    data = {"holder": holder, "purpose": purpose, "started": iso_utc(now), "epoch": now}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_temp(folder, data):
    fd, tmp = tempfile.mkstemp(prefix=".rollout.lock.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def create_exclusive(path, data):
    """Create the lock with its content, failing if it exists. True if we created it."""
    folder = os.path.dirname(path)
    tmp = _write_temp(folder, data)
    try:
        # A hard link appears atomically with its content; readers never see an empty lock.
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
    finally:
        os.unlink(tmp)
    # Filesystems without hard links: plain exclusive create.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def refreshed_payload(lock, now):
    """The holder's own lock with a new `epoch` (its last sign of life) and `refreshed`; `started` kept."""
    data = dict(lock["data"], epoch=now, refreshed=iso_utc(now))
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def take_over(path, judged, data):
    """Replace the stale lock `judged` (as read) by `data`; True if this run did, False if another got there.

    Exclusive: a claim file named after that very lock file is created first (O_EXCL, so one claimant per
    stale lock), the lock is checked to be still the one judged stale, then it is renamed to a unique name
    (only one process can rename it; ENOENT means it is gone already) and the new lock is created with
    create_exclusive, which fails if anybody created one meanwhile.
    """
    ident = judged["ident"]
    digest = hashlib.sha256(b"%d\0" % ident["ino"] + ident["raw"]).hexdigest()[:16]
    claim = "%s.takeover-%s" % (path, digest)
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    try:
        current = read_lock(path)
        if current is None or current["ident"] != ident:
            return False  # taken over, released or refreshed since it was read
        aside = "%s.stale-%d-%s" % (path, os.getpid(), binascii.hexlify(os.urandom(6)).decode())
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            return create_exclusive(path, data)
        finally:
            _unlink(aside)
    finally:
        _unlink(claim)


def replace_lock(path, data):
    tmp = _write_temp(os.path.dirname(path), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def held_message(lock, age, params):
    return ("rollout lock %s is held by %s (%s) since %s, %s ago; wait for it to finish, or if that run died: "
            "it becomes stale after %ds, or release it with %s"
            % (lock["path"], lock["holder"], lock["purpose"], lock["started"], human_age(age),
               params["stale_after"], UNLOCK_HINT))


def ensure_folder(path, check_mode):
    folder = os.path.dirname(path)
    if os.path.isdir(folder):
        return False
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        raise LockError("cannot create the lock folder %s: its parent %s (the SMS root) does not exist; "
                        "check the SMS root path" % (folder, parent), path=parent)
    if not check_mode:
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
    return True


def acquire(module):
    params = module.params
    path = params["path"]
    holder = params["holder"]
    ensure_folder(path, module.check_mode)
    lost_takeovers = 0
    for _attempt in range(4):
        now = time.time()
        data = lock_payload(holder, params["purpose"], now)
        mine = {"holder": holder, "purpose": params["purpose"], "started": iso_utc(now), "path": path}
        lock = read_lock(path)
        if lock is None:
            if module.check_mode:
                return dict(changed=False, acquired=True, reentrant=False, lock=mine,
                            msg="rollout lock %s is free; %s would take it" % (path, holder))
            if create_exclusive(path, data):
                return dict(changed=False, acquired=True, reentrant=False, lock=mine,
                            msg="rollout lock %s taken by %s (%s)" % (path, holder, params["purpose"]))
            continue  # somebody created it just now: read it again
        age = now - lock["epoch"]
        stale = age >= params["stale_after"]
        if lock["holder"] == holder:
            # Re-entrant: a new epoch, so the stale rule counts from the holder's last sign of life.
            current = public(lock)
            if not module.check_mode:
                payload = refreshed_payload(lock, now)
                if stale:
                    if not take_over(path, lock, payload):
                        lost_takeovers += 1
                        if lost_takeovers > 1:
                            break
                        continue  # another run took it over at the same moment: judge again
                else:
                    replace_lock(path, payload)
                current["refreshed"] = iso_utc(now)
            return dict(changed=False, acquired=True, reentrant=True, lock=current,
                        msg="rollout lock %s already held by %s since %s; going on" % (path, holder,
                                                                                        lock["started"]))
        if not stale:
            raise LockError(held_message(lock, age, params), lock=public(lock), age=int(age))
        previous = dict(public(lock), age=int(age))
        warning = ("%s the stale rollout lock %s of %s (%s) since %s, %s ago (stale after %ds)"
                   % ("would take over" if module.check_mode else "took over", path, lock["holder"],
                      lock["purpose"], lock["started"], human_age(age), params["stale_after"]))
        if not module.check_mode and not take_over(path, lock, data):
            lost_takeovers += 1
            if lost_takeovers > 1:
                break
            continue  # another run took it over (or released it) at the same moment: judge again, once
        module.warn(warning)
        return dict(changed=True, acquired=True, reentrant=False, lock=mine, previous_holder=previous,
                    msg=warning)
    raise LockError("rollout lock %s changed hands while it was being taken (another run is taking it over at the "
                    "same moment); run again. If no other run is active, remove any %s.takeover-* file left by a "
                    "run that died, or release the lock with %s" % (path, path, UNLOCK_HINT))


def release(module):
    params = module.params
    path = params["path"]
    holder = params["holder"]
    lock = read_lock(path)
    if lock is None:
        return dict(changed=False, released=False, msg="no rollout lock at %s; nothing to release" % path)
    if lock["holder"] == holder:
        if not module.check_mode:
            _unlink(path)
        return dict(changed=False, released=True, lock=public(lock),
                    msg="rollout lock %s released by %s" % (path, holder))
    age = time.time() - lock["epoch"]
    if not params["force"]:
        raise LockError(
            "rollout lock %s is held by %s (%s) since %s, %s ago, not by %s; it was left in place. If that run "
            "died, release it with %s" % (path, lock["holder"], lock["purpose"], lock["started"], human_age(age),
                                          holder, UNLOCK_HINT), lock=public(lock), age=int(age))
    if not module.check_mode:
        _unlink(path)
    previous = dict(public(lock), age=int(age))
    msg = ("broke the rollout lock %s of %s (%s) since %s, %s ago, on request of %s"
           % (path, lock["holder"], lock["purpose"], lock["started"], human_age(age), holder))
    module.warn(msg)
    return dict(changed=True, released=True, lock=public(lock), previous_holder=previous, msg=msg)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            holder=dict(type="str", required=True),
            purpose=dict(type="str", default="rollout"),
            stale_after=dict(type="int", default=21600),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not module.params["holder"].strip():
        module.fail_json(msg="holder must name who takes the lock, e.g. 'awx job 42' or 'alice@controller'")
    if module.params["stale_after"] <= 0:
        module.fail_json(msg="stale_after must be a positive number of seconds, got %d" % module.params["stale_after"])
    try:
        if module.params["state"] == "acquired":
            result = acquire(module)
        else:
            result = release(module)
    except LockError as exc:
        facts = dict(exc.facts)
        facts.setdefault("path", module.params["path"])
        module.fail_json(msg=exc.msg, **facts)
    except OSError as exc:
        module.fail_json(msg="cannot use the rollout lock %s: %s (%s); check that its folder is writable"
                         % (module.params["path"], exc.strerror or exc, exc.filename or module.params["path"]),
                         path=module.params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
