# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ship a module's Python as bytecode compiled once on the controller (issue 12).

A module runs on the host from its AnsiballZ zip through Python's
`zipimport`, which finds no bytecode there and compiles every file it
imports, ansible-core's `basic.py` and its helpers (about 400 kB) and this
collection's utilities (about 170 kB): about a third of a module process's
CPU, on every client, on every run.

`zipimport` loads `name.pyc` stored beside `name.py` in the zip. The action
plugins (`BytecodeAction`) add one to the zip for every `.py` file, compiled
once per zip and controller Python by the first worker that needs it and
kept beside ansible-core's own AnsiballZ cache for the rest of the run. The
host's Python decides what to use:

- each `.pyc` is a *checked* hash-based one: the host compares the hash of
  the `.py` next to it and compiles the source whenever they differ;
- a Python of another version (another magic number) ignores the `.pyc`
  files and compiles the sources, as before;
- with a debugger or coverage extension in the wrapper (ansible-test), and
  with `sms_module_bytecode: false`, nothing is added;
- a wrapper this code does not read (another ansible-core's format) goes as
  ansible-core built it: the result's `sms_module_bytecode_skipped` and
  `-vvv` say so and why (as when the cache cannot be written).

The controller cannot know the host's temporary path, so the code objects
name their file `/AnsiballZ/<path inside the zip>` (`sms_zipimport.SHIPPED_PREFIX`): an
absolute path that exists nowhere, whose source a traceback still shows
(through the module's loader), and which ansible-core still recognises as
this collection's when it attributes a deprecation (not as its own: a
deprecation ansible-core's utilities raise without naming themselves is
reported without a source). What the module imports after
`sms_zipimport.compile_once()` gets its full path back on the host.

The price is a larger payload: a client module's zip grows from about
175 kB to about 520 kB.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import io
import os
import zipfile
from dataclasses import replace
from importlib.util import MAGIC_NUMBER

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ANSIBLE_VERSION
from ansible.utils.display import Display
from ansible_collections.sms.hotfix.plugins.module_utils.sms_zipimport import shipped_pyc
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_atomic import write_bytes

display = Display()

SWITCH = "sms_module_bytecode"
WRAPPER_MARK = b"\n_ANSIBALLZ_WRAPPER = True\n"
CALL = b"\n    _ansiballz_main(\n"  # the wrapper's last lines: the call and its arguments, one per line
ZIP_START = b"\nzip_data='"
ZIP_END = b"',\n"
NO_EXTENSIONS = b"\nextensions={},\n"


def add_bytecode(zip_bytes):
    """The zip with a .pyc beside each .py that compiles; every original entry kept as it was."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as src, zipfile.ZipFile(out, "w") as dst:
        names = set(src.namelist())
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data)
            if not info.filename.endswith(".py") or info.filename + "c" in names:
                continue
            pyc = shipped_pyc(data, info.filename)
            if pyc is not None:
                entry = zipfile.ZipInfo(info.filename + "c", info.date_time)
                entry.compress_type = info.compress_type
                entry.external_attr = info.external_attr
                dst.writestr(entry, pyc)
    return out.getvalue()


def zip_span(b_module_data):
    """(start, end) of the base64 zip in an AnsiballZ wrapper without extensions, or None.

    Only the wrapper's final call is read: its arguments one per line, the
    zip last (ansible-core 2.19's `module_common`); anything else is None.
    """
    if WRAPPER_MARK not in b_module_data:
        return None
    call = b_module_data.rfind(CALL)
    if call < 0 or NO_EXTENSIONS not in b_module_data[call:]:
        return None
    start = b_module_data.find(ZIP_START, call)
    if start < 0:
        return None
    start += len(ZIP_START)
    end = b_module_data.find(ZIP_END, start)
    return (start, end) if end > start else None


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def cache_path(zip_b64, cache_dir):
    """Where the zip with bytecode is kept: one file per zip and controller Python."""
    key = "sms-bytecode-%s-%s" % (hashlib.sha256(zip_b64).hexdigest()[:40], MAGIC_NUMBER.hex())
    return os.path.join(cache_dir, key)


def cached_zip(zip_b64, cache_dir):
    """The base64 zip with bytecode added, built once per zip and controller Python in `cache_dir`.

    Workers that miss the cache together wait for the first (a lock file),
    as ansible-core does for its own AnsiballZ cache.
    """
    path = cache_path(zip_b64, cache_dir)
    data = _read(path)
    if data is not None:
        return data
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read(path)
        if data is not None:
            return data
        data = base64.b64encode(add_bytecode(base64.b64decode(zip_b64, validate=True)))
        write_bytes(cache_dir, os.path.basename(path), data, mode=0o600)
    return data


def why_not(b_module_data):
    """Why the wrapper `b_module_data` gets no bytecode, or None when its zip can have some."""
    if WRAPPER_MARK not in b_module_data:
        return (
            "ansible-core %s's AnsiballZ wrapper is not the one this collection reads (no "
            "_ANSIBALLZ_WRAPPER mark)" % ANSIBLE_VERSION
        )
    call = b_module_data.rfind(CALL)
    if call >= 0 and b_module_data.find(ZIP_START, call) >= 0 and NO_EXTENSIONS not in b_module_data[call:]:
        return "the wrapper carries an extension (a debugger or ansible-test's coverage)"
    if zip_span(b_module_data) is None:
        return (
            "ansible-core %s's AnsiballZ wrapper is not the one this collection reads (its final "
            "_ansiballz_main call)" % ANSIBLE_VERSION
        )
    return None


def bytecode_for(b_module_data, cache_dir):
    """(wrapper, None) with bytecode in its zip, or (b_module_data itself, why it got none).

    Bytecode is only ever an addition: when it cannot be made (a wrapper or
    zip this code does not read, a cache it cannot write), the module goes
    as ansible-core built it, and the reason says so.
    """
    span = zip_span(b_module_data)
    if span is None:
        return b_module_data, why_not(b_module_data) or "the wrapper is not one this collection reads"
    start, end = span
    try:
        data = cached_zip(b_module_data[start:end], cache_dir)
    except (OSError, ValueError, binascii.Error, zipfile.BadZipFile) as exc:
        return b_module_data, "the bytecode cannot be made: %s" % (exc,)
    return b_module_data[:start] + data + b_module_data[end:], None


def with_bytecode(b_module_data, cache_dir):
    """The AnsiballZ wrapper `b_module_data` with bytecode in its zip; anything else unchanged (bytecode_for)."""
    return bytecode_for(b_module_data, cache_dir)[0]


def bytecode_wanted(value):
    """`sms_module_bytecode` as a boolean (default true); a clear error for anything else."""
    if value is None:
        return True
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleActionFail(
            "%s is %r: it must be true or false (false ships the modules as source only, "
            "for a host whose Python is not the controller's or a slow link)" % (SWITCH, value)
        ) from None


class BytecodeAction(ActionBase):
    """An action plugin whose Python modules travel with their bytecode (see the module's text).

    `sms_module_bytecode` is read, for the host the module runs on (the
    delegated one, if any), when the action starts: a wrong value fails the
    task before anything is sent to the host.
    """

    _bytecode = None
    _bytecode_skipped = None  # why the last module built went without bytecode (the result says it)

    def bytecode_wanted(self, task_vars):
        """This task's `sms_module_bytecode`, templated, for the host the module runs on."""
        templar = self._templar
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to, task_vars)
            templar = templar.copy_with_new_env(available_variables=host_vars)
        return bytecode_wanted(templar.template(host_vars.get(SWITCH)))

    def run(self, tmp=None, task_vars=None):
        self._bytecode = self.bytecode_wanted(task_vars or {})
        return super().run(tmp, task_vars)

    def _configure_module(self, module_name, module_args, task_vars):
        built, module_path = super()._configure_module(module_name, module_args, task_vars)
        wanted = self._bytecode if self._bytecode is not None else self.bytecode_wanted(task_vars)
        self._bytecode_skipped = None
        if built.module_style != "new" or not wanted:
            return built, module_path
        cache_dir = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        data, skipped = bytecode_for(built.b_module_data, cache_dir)
        if skipped is not None:
            self._bytecode_skipped = "%s: sent as ansible-core built it, without bytecode (%s)" % (module_name, skipped)
            display.vvv("sms_module_bytecode: %s" % self._bytecode_skipped, host=self._play_context.remote_addr)
            return built, module_path
        return replace(built, b_module_data=data), module_path

    def _execute_module(self, *args, **kwargs):
        """The module's result; `sms_module_bytecode_skipped` says why its payload went without bytecode, if it did."""
        result = super()._execute_module(*args, **kwargs)
        if self._bytecode_skipped is not None and isinstance(result, dict):
            result["sms_module_bytecode_skipped"] = self._bytecode_skipped
        return result
