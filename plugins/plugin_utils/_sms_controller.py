# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the SMS action plugins: the hotfix folder lives here.

The modules take `manifest`, a path read on the managed host. A real host has
no copy of the controller's `hotfixes/<KB>/` folder, so the action plugins
read the manifest on the controller, validated by the same code the modules
run (plugins/module_utils/sms_manifest.py), and send the host what it needs:

- the manifest's content as `manifest_data` (clients: names and digests);
- expected files and KB (sms_replication waits, see that plugin);
- a copy of the manifest and the payload in the task's remote temporary
  folder, like ansible.builtin.copy and unarchive (staging, push).

Shared by the SMS action plugins (plugin_utils: controller-side code that is
not a plugin itself).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import (
    ManifestError,
    read_manifest,
    validate_manifest,
)
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_bytecode import BytecodeAction

TRANSFER_CHOICES = ("auto", "always", "never")
ADVICE = "check it with sms_hotfix_manifest (bin/sms-hotfix-manifest verify)"

# (path, mtime_ns, size) -> (bytes, parsed JSON); a worker reads each version once.
_CACHE: dict[tuple[str, int, int], tuple[bytes, Any]] = {}


def controller_path(path):
    """The absolute path of `path` if it is a file on the controller, else None."""
    if not isinstance(path, str) or not path:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    return path if os.path.isfile(path) else None


def read_cached(path):
    """(bytes, parsed JSON) of a controller-side manifest, read once per version of the file."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        for old in [k for k in _CACHE if k[0] == path]:
            del _CACHE[old]
        _CACHE[key] = read_manifest(path)
    data, raw = _CACHE[key]
    return data, copy.deepcopy(raw)


def as_list(value):
    """A task's `platforms` before the module's argument spec sees it."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def load(path, platforms=None, check_payload=False, host=None):
    """Read and validate a manifest on the controller: (bytes, raw JSON, normalised manifest).

    Fails the task, before anything reaches the host, naming the manifest and
    the entry or payload file at fault.
    """
    try:
        data, raw = read_cached(path)
        manifest = validate_manifest(
            copy.deepcopy(raw),
            os.path.dirname(path),
            platforms=platforms,
            check_payload=check_payload,
            source="manifest %s" % path,
            path=path,
        )
    except (ManifestError, OSError) as exc:
        facts = dict(getattr(exc, "facts", {}) or {})
        facts["failed_path"] = getattr(exc, "path", None) or path
        raise AnsibleActionFail(
            "%s (checked on the controller; nothing was sent to %s); %s"
            % (getattr(exc, "msg", None) or str(exc), host or "the host", ADVICE),
            result=facts,
        )
    return data, raw, manifest


def manifest_as_data(args, host=None):
    """`args` with a controller-side `manifest` replaced by `manifest_data`.

    A path the controller does not have is left for the host to read.
    """
    path = controller_path(args.get("manifest"))
    if path is None or args.get("manifest_data") is not None:
        return args
    _data, raw, _manifest = load(path, host=host)
    resolved = dict(args)
    del resolved["manifest"]
    resolved["manifest_data"] = raw
    return resolved


def pop_transfer(args):
    """Take the action-plugin option `transfer` out of the module's arguments."""
    mode = args.pop("transfer", None) or "auto"
    if mode not in TRANSFER_CHOICES:
        raise AnsibleActionFail("transfer must be one of %s, not %r" % (", ".join(TRANSFER_CHOICES), mode))
    return mode


def transport(action):
    return getattr(action._connection, "transport", None) or action._play_context.connection


def is_local(action):
    return str(transport(action)).rsplit(".", 1)[-1] == "local"


def send_hotfix(action, args, mode, need_payload, task_vars):
    """Put the controller's manifest (and the payload the task needs) in the remote tmp dir.

    Returns (module args, facts for the result). With transfer=auto the
    hotfix is sent when the connection is not local and the controller has
    the manifest; otherwise the host reads the given path. Everything is
    validated here first, so a bad payload never reaches the host.
    """
    host = task_vars.get("inventory_hostname")
    path = controller_path(args.get("manifest"))
    if mode == "never" or (mode == "auto" and (is_local(action) or path is None)):
        return args, {"manifest_source": "host"}
    if path is None:
        raise AnsibleActionFail(
            "transfer=always, but the manifest %r is not a file on the controller; give the "
            "controller's path of the hotfix's manifest.json (or transfer=never when the "
            "host has its own copy)" % args.get("manifest")
        )
    data, raw, manifest = load(path, as_list(args.get("platforms")), check_payload=need_payload, host=host)

    # Check mode too: the copy goes to the task's remote temporary folder
    # only, which the action plugin removes when the task ends, so the host
    # keeps no trace and the module still changes nothing there.
    # The files go flat into that folder (it exists already, so no command
    # has to create folders on the host); the manifest sent along names them.
    shell = action._connection._shell
    tmp = shell.tmpdir or action._make_tmp_path()
    sent = copy.deepcopy(raw)
    local = {}
    if need_payload:
        for platform, spec in manifest["platforms"].items():
            for entry in spec["files"]:
                flat = "payload-%s-%s" % (spec["directory"], entry["name"])
                local[flat] = entry["payload"]
                for item in _raw_files(sent, platform):
                    if item.get("name", "").lower() == entry["name"].lower():
                        item["payload"] = flat
    remote_manifest = shell.join_path(tmp, "manifest.json")
    action._transfer_data(remote_manifest, json.dumps(sent, indent=2).encode("utf-8"))
    remote_files = [remote_manifest]
    for flat, source in sorted(local.items()):
        remote_files.append(shell.join_path(tmp, flat))
        action._transfer_file(source, remote_files[-1])
    action._fixup_perms2([tmp] + remote_files, execute=False)

    resolved = dict(args, manifest=remote_manifest)
    return resolved, {
        "manifest_source": "controller",
        "transferred": [os.path.basename(path)]
        + sorted(os.path.relpath(src, manifest["base_dir"]).replace(os.sep, "/") for src in local.values()),
    }


def _raw_files(raw, platform):
    """The file entries of `platform` in a manifest's raw JSON (keys may differ in case)."""
    for key, spec in (raw.get("platforms") or {}).items():
        if str(key).lower() == platform and isinstance(spec, dict):
            return [item for item in spec.get("files") or [] if isinstance(item, dict)]
    return []


def unreachable_over_smb(result):
    """A host reached over SMB whose server does not answer is unreachable, as one reached over SSH would be.

    The module runs on the controller and fails with `smb: unreachable`; the
    result then counts where Ansible counts unreachable hosts (the recap, the
    wave gate), not as a failed upgrade.
    """
    if result.get("failed") and result.get("smb") == "unreachable":
        # Ansible judges "failed" before "unreachable": only one of them may be set.
        result.pop("failed")
        result["unreachable"] = True
    return result


class ManifestDataAction(BytecodeAction):
    """Front of a module that takes `manifest` or `manifest_data` (names and digests only)."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            args = manifest_as_data(dict(self._task.args), task_vars.get("inventory_hostname"))
            result.update(self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars))
            return unreachable_over_smb(result)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)


class PayloadAction(BytecodeAction):
    """Front of a module that copies the payload on the host: sends it there first."""

    TRANSFERS_FILES = False

    def needs_payload(self, args):
        return True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        mode = pop_transfer(args)
        try:
            args, facts = send_hotfix(self, args, mode, self.needs_payload(args), task_vars)
            result.update(self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars))
            result.update(facts)
            return unreachable_over_smb(result)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
