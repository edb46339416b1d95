# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ship a module's Python as bytecode compiled once on the controller (issue 12).

A module runs on the host from its AnsiballZ zip through Python's
`zipimport`, which finds no bytecode there and compiles every file it
imports, ansible-core's `basic.py` and its helpers (about 400 kB) and this
collection's utilities (about 170 kB), on every run: two thirds of a module
process's CPU, on every client, on every run.

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
  with `sms_module_bytecode: false`, nothing is added.

The code objects carry the file's path inside the zip (for example
`ansible/module_utils/basic.py`) as their file name, not the host's
temporary path, which the controller cannot know. `sms_zipimport` gives the
collection's own utilities their full path back on the host.

The price is a larger payload: a client module's zip grows from about
175 kB to about 520 kB (benchmarks/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import io
import marshal
import os
import tempfile
import zipfile
from dataclasses import replace
from importlib.util import MAGIC_NUMBER, source_hash

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

SWITCH = "sms_module_bytecode"
WRAPPER_MARK = b"\n_ANSIBALLZ_WRAPPER = True\n"
ZIP_START = b"\nzip_data='"
ZIP_END = b"',\n"
NO_EXTENSIONS = b"\nextensions={},\n"
CHECKED_HASH = (0b11).to_bytes(4, "little")  # PEP 552: hash-based, check the source


def pyc_bytes(source, name):
    """A checked hash-based .pyc (PEP 552) of `source`, compiled as zipimport would, or None.

    None when the source does not compile: the host then compiles it and
    reports the error exactly as without bytecode.
    """
    text = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        code = compile(text, name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return MAGIC_NUMBER + CHECKED_HASH + source_hash(source) + marshal.dumps(code)


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
            pyc = pyc_bytes(data, info.filename)
            if pyc is not None:
                entry = zipfile.ZipInfo(info.filename + "c", info.date_time)
                entry.compress_type = info.compress_type
                entry.external_attr = info.external_attr
                dst.writestr(entry, pyc)
    return out.getvalue()


def zip_span(b_module_data):
    """(start, end) of the base64 zip in an AnsiballZ wrapper without extensions, or None."""
    if WRAPPER_MARK not in b_module_data or NO_EXTENSIONS not in b_module_data:
        return None
    start = b_module_data.rfind(ZIP_START)
    if start < 0:
        return None
    start += len(ZIP_START)
    end = b_module_data.find(ZIP_END, start)
    return (start, end) if end > start else None


def cached_zip(zip_b64, cache_dir):
    """The base64 zip with bytecode added, built once per zip and controller Python in `cache_dir`."""
    key = "sms-bytecode-%s-%s" % (hashlib.sha256(zip_b64).hexdigest()[:40], MAGIC_NUMBER.hex())
    path = os.path.join(cache_dir, key)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        pass
    data = base64.b64encode(add_bytecode(base64.b64decode(zip_b64, validate=True)))
    os.makedirs(cache_dir, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=cache_dir, prefix=key + ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(part, path)  # a worker racing this one writes the same bytes
    except BaseException:
        os.unlink(part)
        raise
    return data


def with_bytecode(b_module_data, cache_dir):
    """The AnsiballZ wrapper `b_module_data` with bytecode in its zip; anything else unchanged."""
    span = zip_span(b_module_data)
    if span is None:
        return b_module_data
    start, end = span
    return b_module_data[:start] + cached_zip(b_module_data[start:end], cache_dir) + b_module_data[end:]


def bytecode_wanted(value):
    """`sms_module_bytecode` as a boolean (default true); a clear error for anything else."""
    if value is None:
        return True
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleActionFail(
            "%s is %r: it must be true or false (false ships the modules as source only, "
            "for a host whose Python is not the controller's or a slow link)" % (SWITCH, value)) from None


class BytecodeAction(ActionBase):
    """An action plugin whose Python modules travel with their bytecode (see the module's text)."""

    def _configure_module(self, module_name, module_args, task_vars):
        built, module_path = super()._configure_module(module_name, module_args, task_vars)
        if built.module_style != "new" or not bytecode_wanted(
                self._templar.template(task_vars.get(SWITCH))):
            return built, module_path
        cache_dir = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        return replace(built, b_module_data=with_bytecode(built.b_module_data, cache_dir)), module_path
