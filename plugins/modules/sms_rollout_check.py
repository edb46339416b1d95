#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_rollout_check
short_description: Check every input of every tier of the rollout before the first change
description:
  - Runs once on the controller (an action plugin; this file documents it), in the plan step.
  - For each tier it takes every host of the tier's inventory group, resolves the role's variables as they
    will be for that host (play parameters, then the host's variables and extra vars, then the role's
    defaults) and validates them against the role's C(meta/argument_specs.yml). The tiers' roles then run
    without a per-host validation task.
  - Also refuses what a spec cannot say - a tier group that does not exist or is empty, more than one site
    server, waves that are not positive counts or percentages in (0, 100], a threshold outside 0-100,
    platforms the manifest lacks, and a list of the site's logon server names that does not match the
    logon group.
  - Refuses every C(sms_*) variable the rollout does not know (from extra vars or the inventory of the hosts
    checked), naming where it was set and the nearest known name; the known names are read from the roles and
    playbooks.
  - Every problem is listed in one failure, naming the variable, the value and the hosts.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  check_controller:
    description:
      - Check first that the running ansible-core is one the collection supports (C(requires_ansible) in
        C(meta/runtime.yml)) and that the rollout's report callback is enabled (its C(ansible.cfg) was read,
        or the callback was enabled otherwise); either refusal says how to run it.
      - Called C(core) before 1.1.0; that name still works until 2.0.0, with a deprecation warning.
    aliases: [core]
    type: bool
    default: false
  limit:
    description:
      - The run's C(--limit) as C(value) (C(ansible_limit)), C(kept) (the hosts the limit keeps,
        C(ansible_play_hosts_all) of a play over every host) and C(needs), a list of C(group) and C(label)
        whose hosts the limit must keep (the site server, for a playbook that takes the rollout lock).
      - A limit that leaves one out is refused with the command that keeps it.
    type: dict
  tiers:
    description:
      - One entry per tier with C(role), C(entry) (the role's entry point, default C(main)), C(group) (the
        inventory group), C(group_var) (the variable naming that group, for messages), C(label),
        C(params) (variables the playbook passes to the role), C(single) (the group must hold one host),
        C(require_hosts) (default true) and C(platform_var) with C(platforms) (to count clients outside
        the rollout's platforms).
    type: list
    elements: dict
  waves:
    description: The client waves (the client play's C(serial)), like V([1, "10%", "50%", "100%"]); checked when given.
    type: raw
  max_fail_percentage:
    description: The per-wave threshold; checked with O(waves).
    type: raw
  on_failure:
    description: What a wave over the threshold does (C(sms_rollout_on_failure)), V(stop) or V(rollback).
    type: str
    default: stop
  platforms:
    description: The rollout's platforms (C(sms_rollout_platforms)).
    type: list
    elements: str
  manifest_platforms:
    description: The platforms the hotfix's manifest has files for.
    type: list
    elements: str
  logon_server_names:
    description: The site's logon servers by SMS name, as the clients will be given them.
    type: list
    elements: str
  logon_names_explicit:
    description: Whether O(logon_server_names) was set by the operator (then it must match the logon group).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: It changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
seealso:
  - module: sms.hotfix.sms_hotfix_manifest
"""

EXAMPLES = r"""
- name: Check every tier's inputs
  sms.hotfix.sms_rollout_check:
    check_controller: true
    waves: [1, "10%", "50%", "100%"]
    max_fail_percentage: 20
    tiers:
      - role: sms_client
        group: clients
        group_var: sms_client_group
        label: clients
        params:
          sms_client_manifest: /opt/hotfixes/Q216552/manifest.json
"""

RETURN = r"""
summary:
  description:
    - Hosts checked per tier (by the tier's C(label)), and how many clients are outside O(platforms)
      (C(outside sms_rollout_platforms)) when there are any.
  returned: always
  type: dict
  sample: {"site server": 1, "logon servers": 3, "clients": 12}
problems:
  description:
    - Every problem found, one sentence each, naming the variable, the value, the hosts and what to do.
    - The task fails when there is one, and nothing was changed anywhere.
  returned: failure
  type: list
  elements: str
  sample:
    - "sms_rollout_waves: '0%' is not a wave: each wave is a positive number of clients or a percentage in
      (0, 100], like [1, '10%', '50%', '100%'] (0 would run every client at once, with no canary)"
msg:
  description: One line - every input valid (with the hosts per tier), or how many problems stop the rollout, and each.
  returned: always
  type: str
status:
  description:
    - What the check found, in one word, V(passed) (every input holds, the rollout may start) or V(refused)
      (at least one problem, listed in RV(problems); the task fails and nothing was changed).
  returned: always
  type: str
  sample: passed
"""
