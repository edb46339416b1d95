# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate before every client wave (see the module of the same name).

ansible-core's `max_fail_percentage` counts only *failed* hosts of a batch;
a wave whose clients were unreachable lets the next wave start. This gate,
run once at the start of every wave, counts the previous wave's failed
**and** unreachable clients (the hosts of that wave no longer in
`ansible_play_hosts`) against the threshold, and refuses to start the wave
above it. It also refuses a wave outside the maintenance window.

The waves are recomputed the way ansible-core cuts them (`serial`, on the
play's hosts in order), so the gate needs no state between waves: it works
the same in every AWX slice and after a re-run.
"""

from __future__ import annotations

import datetime

from ansible.plugins.action import ActionBase

from ansible_collections.sms.hotfix.plugins.filter.sms_rollout import sms_in_window, sms_waves

SHOW = 20


def batches(hosts, serial):
    out, start = [], 0
    for size in sms_waves(len(hosts), serial):
        out.append(hosts[start : start + size])
        start += size
    return out


def gate(all_hosts, batch, active, serial, max_fail):
    """(wave number, previous wave's bad hosts, previous wave's size, stop?, later hosts) for the wave starting now."""
    waves = batches(list(all_hosts), serial)
    current = next((i for i, hosts in enumerate(waves) if batch and batch[0] in hosts), 0)
    later = [host for wave in waves[current:] for host in wave]
    if current == 0:
        return 1, [], 0, False, later
    previous = waves[current - 1]
    active = set(active)
    bad = [host for host in previous if host not in active]
    stop = 100.0 * len(bad) / len(previous) > float(max_fail)
    return current + 1, bad, len(previous), stop, later


def judged_after(all_hosts, batch, active, outcomes, serial, max_fail):
    """(wave number, its hosts, its failed or unreachable ones, stop?, later hosts, wave count) for the wave
    that just ran. The whole wave is judged, as Ansible cut it: a client no longer in the play (removed by
    a failure nothing ignored) counts as bad, as does one whose registered result failed or was unreachable."""
    waves = batches(list(all_hosts), serial)
    current = next((i for i, hosts in enumerate(waves) if batch and batch[0] in hosts), None)
    if current is None:
        current = next((i for i, hosts in enumerate(waves) if set(hosts) - set(active)), 0)
    wave_hosts = waves[current] if waves else []
    active = set(active)
    bad = []
    for host in wave_hosts:
        outcome = outcomes.get(host)
        if host not in active or (isinstance(outcome, dict) and (outcome.get("failed") or outcome.get("unreachable"))):
            bad.append(host)
    later = [host for wave in waves[current + 1 :] for host in wave]
    stop = bool(wave_hosts) and 100.0 * len(bad) / len(wave_hosts) > float(max_fail)
    return current + 1, wave_hosts, bad, stop, later, len(waves)


def reached(all_hosts, outcomes):
    """The clients the run reached in every wave so far (a registered result, not unreachable), in play
    order: what a rollback after a bad wave restores. Read once per wave here, on the controller, rather
    than by a template walking every client's variables."""
    return [host for host in all_hosts if isinstance(outcomes.get(host), dict) and "unreachable" not in outcomes[host]]


def named(hosts):
    text = ", ".join(hosts[:SHOW])
    return text + (" and %d more" % (len(hosts) - SHOW) if len(hosts) > SHOW else "")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("waves", "max_fail_percentage", "window", "force", "now", "judge", "result_var"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        serial = args.get("waves")
        max_fail = args.get("max_fail_percentage", 0)
        all_hosts = task_vars.get("ansible_play_hosts_all") or []
        batch = task_vars.get("ansible_play_batch") or []
        active = task_vars.get("ansible_play_hosts") or []
        judge = args.get("judge", "previous")
        if judge not in ("previous", "current"):
            result.update(failed=True, status="refused", msg="judge must be previous or current, not %r" % (judge,))
            return result
        if judge == "current":
            return self.judge_current(result, task_vars, all_hosts, batch, active, serial, max_fail)
        wave, bad, size, stop, later = gate(all_hosts, batch, active, serial, max_fail)
        count = len(batches(list(all_hosts), serial))
        result.update(
            changed=False,
            wave=wave,
            waves=count,
            wave_gate={
                "wave": wave,
                "waves": count,
                "previous_wave_size": size,
                "previous_wave_failed_or_unreachable": bad,
                "threshold": max_fail,
                "stopped": stop,
                "not_reached": later if stop else [],
            },
        )
        if stop:
            result["failed"] = True
            result["status"] = "stopped"
            result["msg"] = (
                "wave %d of %d does not start: wave %d had %d of %d client(s) failed or unreachable (%s), above "
                "sms_rollout_max_fail_percentage=%s%%; %d client(s) not reached. Nothing more was changed. Fix or "
                "bring back those clients and run again (the clients already done report no change), or roll back "
                "with playbooks/rollback.yml"
                % (wave, count, wave - 1, len(bad), size, named(bad), max_fail, len(later))
            )
            return result
        window = args.get("window") or ""
        force = str(args.get("force", False)).lower() in ("1", "true", "yes", "on")
        now = args.get("now") or datetime.datetime.now()
        if window and not force and not sms_in_window(now, window):
            moment = now if isinstance(now, datetime.datetime) else datetime.datetime.fromisoformat(str(now))
            result["failed"] = True
            result["status"] = "outside_window"
            result["wave_gate"].update(stopped=True, not_reached=later, outside_window=True)
            result["msg"] = (
                "It is %s on the controller, outside the maintenance window '%s' (sms_rollout_window): wave %d of %d "
                "does not start. Nothing more was changed. Run again inside the window (a re-run goes on where this "
                "one stopped), or pass -e sms_rollout_force=true to go on anyway."
                % (moment.strftime("%a %H:%M"), window, wave, count)
            )
            return result
        result["status"] = "passed"
        result["msg"] = "wave %d of %d: %s" % (
            wave,
            count,
            "the first wave"
            if wave == 1
            else "wave %d had %d of %d client(s) failed or unreachable, "
            "within sms_rollout_max_fail_percentage=%s%%" % (wave - 1, len(bad), size, max_fail),
        )
        return result

    def judge_current(self, result, task_vars, all_hosts, batch, active, serial, max_fail):
        """After a wave whose failures were ignored (sms_rollout_on_failure=rollback): its failed and
        unreachable clients, by their registered results, against the threshold. Never fails: the play
        ends on wave_gate.stopped and the rollout rolls back."""
        hostvars = task_vars.get("hostvars") or {}
        name = self._task.args.get("result_var") or "sms_client_result"
        outcomes = {}
        for host in all_hosts:
            if host in hostvars and name in hostvars[host]:
                outcomes[host] = hostvars[host][name]
        wave, wave_hosts, bad, stop, later, count = judged_after(all_hosts, batch, active, outcomes, serial, max_fail)
        result.update(
            changed=False,
            wave=wave,
            waves=count,
            wave_gate={
                "wave": wave,
                "waves": count,
                "wave_size": len(wave_hosts),
                "failed_or_unreachable": bad,
                "threshold": max_fail,
                "stopped": stop,
                "not_reached": later if stop else [],
                "reached": reached(all_hosts, outcomes),
            },
        )
        result["status"] = "stopped" if stop else "passed"
        if stop:
            result["msg"] = (
                "wave %d of %d had %d of %d client(s) failed or unreachable (%s), above "
                "sms_rollout_max_fail_percentage=%s%%: no further wave starts (%d client(s) not reached) and, as "
                "sms_rollout_on_failure=rollback asks, the rollout rolls back what it did"
                % (wave, count, len(bad), len(wave_hosts), named(bad), max_fail, len(later))
            )
        else:
            result["msg"] = "wave %d of %d: %d of %d client(s) failed or unreachable, within %s%%" % (
                wave,
                count,
                len(bad),
                len(wave_hosts),
                max_fail,
            )
        return result
