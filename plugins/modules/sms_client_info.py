#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sms_client_info
short_description: Report whether an SMS 1.2 client has a hotfix's files (read-only)
description:
  - Compares the client's SMS binaries with the files and SHA-256 a hotfix
    manifest lists for the client's platform, and reports the client's
    C(SMS.INI) state (C(SetupPhase), C(CopyListVersion), logon server) and its
    C(SMSRUN32) processes, including the hung state of Q216552.
  - Read-only; always returns C(changed=false). A missing or malformed
    C(SMS.INI) is reported in RV(compliance.error) rather than failing, so one
    compliance run covers the whole fleet.
  - Returns data, not C(ansible_facts), hence its C(_info) name. It was called
    C(sms_client_facts) before 1.1.0; that name still works until 2.0.0, with a
    deprecation warning.
version_added: "1.0.0"
author: SMS hotfix rollout maintainers (@sms-hotfix-rollout)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sms.hotfix.smb
options:
  drive_root:
    description:
      - The directory standing for the client's first local drive (C(C:\)), or its drive share over SMB
        (C(\\CLIENT01\C$)).
    type: str
    required: true
  platform:
    description: The client's platform.
    type: str
    required: true
    choices: [x86, alpha, mips]
  manifest:
    description:
      - Path of the hotfix's C(manifest.json); only names and SHA-256 are used.
      - The action plugin of the same name reads a path that exists on the controller
        there and hands the module its content as O(manifest_data), so clients need no
        copy of the hotfix folder. A path the controller does not have is read on the client.
      - Exactly one of O(manifest) and O(manifest_data) is required.
    type: path
  manifest_data:
    description:
      - The content of the hotfix's C(manifest.json) (its parsed JSON), instead of O(manifest).
        Validated like the file; the payload is not needed.
      - Set by the action plugin from a controller-side O(manifest).
    type: dict
  client_dir:
    description: The client's SMS binaries folder, relative to O(drive_root).
    type: str
    default: MS/SMS/BIN
  process_name:
    description: Process name of the SMS client runner.
    type: str
    default: SMSRUN32
  hung_cpu_threshold:
    description: A single C(SMSRUN32) using more than this percentage of one core over O(cpu_window) is hung.
    type: float
    default: 90
  cpu_window:
    description: Seconds over which a single C(SMSRUN32) is sampled (spent only when exactly one runs).
    type: float
    default: 1.0
  client_name:
    description:
      - Name of the client at the start of every message, usually C(inventory_hostname).
      - Defaults to the base name of O(drive_root).
    type: str
  process_scope:
    description:
      - Which C(SMSRUN32) processes belong to this client; V(host) is the whole process table,
        V(drive) only processes with a command-line path inside O(drive_root) (a management host, the lab).
      - Where the process table cannot be read, RV(compliance.smsrun32.hung) is null and
        RV(compliance.smsrun32.known) false.
    type: str
    choices: [host, drive]
    default: host
notes:
  - Nothing outside O(drive_root) is read and no symbolic link is followed; a link where the module reads is
    reported in RV(compliance.error).
seealso:
  - module: sms.hotfix.sms_client_upgrade
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Check the client against the hotfix
  sms.hotfix.sms_client_info:
    drive_root: "{{ sms_drive_root }}"
    platform: x86
    manifest: /opt/sms-rollout/hotfixes/Q216552/manifest.json
  register: client

- name: Fail the non-compliant ones
  ansible.builtin.assert:
    that: client.compliance.compliant

- name: List the clients whose SMS.INI could not be read
  ansible.builtin.debug:
    msg: "{{ client.compliance.error }}"
  when: client.status == 'unreadable'
"""

RETURN = r"""
status:
  description:
    - What the module found, in one word, one of V(compliant) (every manifest file of the platform is in place with
      the manifest's SHA-256), V(not_compliant) (the client could be read, and a file differs or is missing),
      V(unreadable) (part of the client could not be read, see RV(compliance.error)), V(refused) (the manifest
      is not valid; the module read nothing on the client and failed).
  returned: always, unless the task's arguments themselves were refused
  type: str
  sample: not_compliant
compliance:
  description: The client's state against the manifest.
  returned: always
  type: dict
  contains:
    compliant:
      description: Every manifest file of the platform is in the client's folder with the manifest's SHA-256.
      type: bool
    kb:
      description: The manifest's Knowledge Base number.
      type: str
      sample: Q216552
    files:
      description: One entry per manifest file.
      type: list
      elements: dict
      contains:
        name: {description: Name (as on the client's disk when present), type: str}
        expected_sha256: {description: SHA-256 the manifest lists, type: str}
        found_sha256: {description: SHA-256 on the client (null when absent), type: str}
        ok: {description: Whether they match, type: bool}
    setup_phase:
      description: C([Local] SetupPhase) from C(SMS.INI).
      type: str
      sample: installed
    copy_list_version:
      description: C([SMS] CopyListVersion) from C(SMS.INI).
      type: str
    logon_server:
      description: The logon server C(SMS.INI) names.
      type: str
    smsrun32:
      description: The client's SMSRUN32 processes.
      type: dict
      contains:
        count: {description: Number of instances, type: int}
        pids: {description: Their pids, type: list}
        cpu: {description: CPU percent of a single instance over O(cpu_window) (null otherwise), type: float}
        hung: {description: Whether the Q216552 hung state is present (null when unknown), type: bool}
        known: {description: Whether the process table could be read at all, type: bool}
    error:
      description: Why the client could not be read (missing or malformed SMS.INI, no SMS folder).
      type: str
      returned: when something could not be read
manifest_source:
  description:
    - Where the manifest came from; V(controller) (given as O(manifest_data), read on the
      controller by the action plugin) or V(host) (the O(manifest) path, read on the client).
  returned: success
  type: str
  sample: controller
manifest_path:
  description: The manifest path read on the client; null when the manifest was given as data.
  returned: success
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sms.hotfix.plugins.module_utils.sms_zipimport import compile_once

compile_once()  # first: the utilities below are compiled once on the host, not twice

from ansible_collections.sms.hotfix.plugins.module_utils.sms_client import (
    ClientError,
    client_bin,
    drive_volume,
    logon_server,
    read_sms_ini,
    smsrun_state,
    wrap,
)
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import SmsFileError, normal_path, plain_results
from ansible_collections.sms.hotfix.plugins.module_utils.sms_smb_args import SMB_ARGS
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    ManifestError,
    load_manifest,
    manifest_summary,
    validate_manifest,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            drive_root=dict(type="str", required=True),
            platform=dict(type="str", required=True, choices=["x86", "alpha", "mips"]),
            manifest=dict(type="path"),
            manifest_data=dict(type="dict"),
            client_dir=dict(type="str", default="MS/SMS/BIN"),
            process_name=dict(type="str", default="SMSRUN32"),
            process_scope=dict(type="str", default="host", choices=["host", "drive"]),
            hung_cpu_threshold=dict(type="float", default=90.0),
            cpu_window=dict(type="float", default=1.0),
            client_name=dict(type="str"),
            **SMB_ARGS,
        ),
        mutually_exclusive=[("manifest", "manifest_data")],
        required_one_of=[("manifest", "manifest_data")],
        supports_check_mode=True,
    )
    plain_results(module)
    p = module.params
    drive_root = normal_path(p["drive_root"])
    client = p["client_name"] or os.path.basename(drive_root.replace("\\", "/").rstrip("/")) or drive_root
    try:
        if p["manifest_data"] is not None:
            manifest = validate_manifest(
                p["manifest_data"], None, platforms=[p["platform"]], check_payload=False, source="manifest_data"
            )
        else:
            manifest = load_manifest(p["manifest"], platforms=[p["platform"]], check_payload=False)
    except ManifestError as exc:
        # failed_path, as the action plugin names it (a `path` would get that file's `state` and owner added)
        module.fail_json(msg="%s: %s" % (client, exc.msg), failed_path=exc.path, status="refused", **exc.facts)
    if p["manifest_data"] is not None:
        # The result echoes its arguments (invocation): a line, not every digest again.
        p["manifest_data"] = manifest_summary(manifest)

    errors = []
    compliance = {"kb": manifest["kb"], "setup_phase": None, "copy_list_version": None, "logon_server": None}
    files = []
    try:
        drive = drive_volume(drive_root, client, p)
    except ClientError as exc:
        errors.append(exc.msg)
        drive = None
    if drive is not None:
        try:
            ini_parts, _data, doc = read_sms_ini(drive)
            compliance["setup_phase"] = doc.get("Local", "SetupPhase")
            compliance["copy_list_version"] = doc.get("SMS", "CopyListVersion")
            compliance["logon_server"] = logon_server(doc, drive.path(ini_parts))[0]
        except (ClientError, SmsFileError) as exc:
            errors.append(wrap(exc).msg)
        try:
            bin_parts = client_bin(drive, p["client_dir"])
        except ClientError as exc:
            errors.append(exc.msg)
            bin_parts = None
    for entry in manifest["platforms"][p["platform"]]["files"]:
        name, found = entry["name"], None
        if drive is not None and bin_parts is not None:
            try:
                on_disk = drive.find(bin_parts, entry["name"])
                if on_disk is not None:
                    name = on_disk
                    found = drive.sha256(bin_parts + (on_disk,))
            except SmsFileError as exc:
                errors.append(exc.msg)
        files.append(
            {"name": name, "expected_sha256": entry["sha256"], "found_sha256": found, "ok": found == entry["sha256"]}
        )

    procs = smsrun_state(p["process_name"], p["process_scope"], drive_root, p["hung_cpu_threshold"], p["cpu_window"])
    compliance["smsrun32"] = {
        "count": len(procs["pids"]) if procs["known"] else None,
        "pids": procs["pids"],
        "cpu": procs["found"][0]["cpu"] if len(procs["found"]) == 1 else None,
        "hung": procs["hung"],
        "known": procs["known"],
    }
    if not procs["known"]:
        compliance["smsrun32"]["note"] = "%s: SMSRUN32 state unknown" % procs["note"]
    compliance["files"] = files
    compliance["compliant"] = not errors and all(f["ok"] for f in files)
    if errors:
        compliance["error"] = "; ".join(errors)
    bad = [f["name"] for f in files if not f["ok"]]
    if compliance["compliant"]:
        msg = "%s: all %d %s file(s) of %s in place" % (client, len(files), p["platform"], manifest["kb"])
    else:
        msg = "%s: not compliant with %s: %s" % (
            client,
            manifest["kb"],
            "; ".join(errors + (["differs: " + ", ".join(bad)] if bad else [])),
        )
    status = "unreadable" if errors else "compliant" if compliance["compliant"] else "not_compliant"
    module.exit_json(
        changed=False,
        status=status,
        compliance=compliance,
        msg=msg,
        manifest_path=manifest["path"],
        manifest_source="host" if manifest["path"] else "controller",
    )


if __name__ == "__main__":
    main()
