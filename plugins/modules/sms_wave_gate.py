#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_wave_gate
short_description: Refuse to start a client wave after one with too many failed or unreachable clients
description:
  - Run once (C(run_once)) at the start of every batch of a play with C(serial) waves, with
    C(any_errors_fatal), before any other task.
  - Counts the previous wave's clients that are no longer active in the play, failed B(or unreachable),
    against O(max_fail_percentage); above it the task fails, so no later wave starts and the run exits
    non-zero. ansible-core's own C(max_fail_percentage) counts only failed hosts, so an offline client
    would otherwise never count.
  - Also refuses a wave outside the maintenance window O(window) unless O(force).
  - The waves are recomputed from O(waves) and the play's hosts the way ansible-core cuts them, so the
    gate keeps no state between waves and works the same in every AWX slice.
  - Runs on the controller only (an action plugin); this file documents it.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  waves:
    description: The play's C(serial) value (a count, a percentage, or a list of them).
    type: raw
    required: true
  max_fail_percentage:
    description: A wave with more failed or unreachable clients than this percentage stops the rollout.
    type: int
    default: 0
  window:
    description: Maintenance window, like V(22:00-05:00) or V(Mon-Fri 22:00-05:00); empty means any time.
    type: str
    default: ""
  force:
    description: Start the wave outside the window anyway.
    type: bool
    default: false
  now:
    description: The time to judge the window by (default the controller's local time); for tests.
    type: str
  judge:
    description:
      - V(previous) (before a wave) judges the previous wave by the clients no longer in the play, and fails
        above the threshold so the rollout stops.
      - V(current) (after a wave, with C(sms_rollout_on_failure=rollback)) judges the wave that just ran by
        the registered result of every client of the wave (O(result_var)), the failed and unreachable ones
        having been ignored so that Ansible does not end the whole run. Above the threshold it does not fail
        but returns RV(wave_gate.stopped=true), so the play can end and the rollout roll back.
    type: str
    choices: [previous, current]
    default: previous
  result_var:
    description: With O(judge=current), the variable each client's upgrade result was registered in.
    type: str
    default: sms_client_result
attributes:
  check_mode:
    support: full
    details: Judges the same way in check mode; it changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
notes:
  - Set C(run_once) and C(any_errors_fatal) on the task; see C(playbooks/clients.yml).
seealso:
  - module: sms.hotfix.sms_client_upgrade
"""

EXAMPLES = r"""
- name: Clients | Upgrade.bat equivalent, in waves
  hosts: clients
  serial: [1, "10%", "50%", "100%"]
  max_fail_percentage: 20
  gather_facts: false
  pre_tasks:
    - name: Wave gate
      sms.hotfix.sms_wave_gate:
        waves: [1, "10%", "50%", "100%"]
        max_fail_percentage: 20
        window: "Mon-Fri 22:00-05:00"
      run_once: true
      any_errors_fatal: true
"""

RETURN = r"""
status:
  description:
    - What the gate did, in one word, one of V(passed) (the wave starts, or with O(judge=current) the wave that
      ran is within the threshold), V(stopped) (too many failed or unreachable clients; with O(judge=previous)
      the task fails, with O(judge=current) it returns RV(wave_gate.stopped)), V(outside_window) (the task
      fails outside O(window)), V(refused) (an invalid O(judge)).
  returned: always
  type: str
  sample: passed
wave:
  description: The number of the wave starting now (1 for the first), or with O(judge=current) the wave that just ran.
  returned: always
  type: int
  sample: 2
waves:
  description: How many waves the play has, cut from O(waves) and the play's hosts as ansible-core cuts them.
  returned: always
  type: int
  sample: 4
wave_gate:
  description: What the gate saw.
  returned: always
  type: dict
  contains:
    previous_wave_failed_or_unreachable:
      description: Clients of the previous wave that failed or were unreachable (O(judge=previous)).
      type: list
      elements: str
    previous_wave_size:
      description: How many clients the previous wave had (O(judge=previous)).
      type: int
    failed_or_unreachable:
      description: Clients of the wave that just ran that failed or were unreachable (O(judge=current)).
      type: list
      elements: str
    wave_size:
      description: How many clients the wave that just ran had (O(judge=current)).
      type: int
    reached:
      description:
        - Clients of every wave so far that have a registered result (O(result_var)) and were not unreachable
          (O(judge=current)), which a rollback after this wave restores.
      type: list
      elements: str
    stopped:
      description: Whether the gate stopped the rollout.
      type: bool
    not_reached:
      description: Clients of the waves that do not start, when the gate stopped.
      type: list
      elements: str
    outside_window:
      description: Set when the gate stopped because the time is outside O(window).
      type: bool
msg:
  description: One line - the wave and what the gate counted, or why the rollout stops and what to do.
  returned: always
  type: str
  sample: "wave 2 of 4: wave 1 had 0 of 1 client(s) failed or unreachable, within sms_rollout_max_fail_percentage=20%"
"""
