# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile each module utility once in a module process, not twice.

A module runs on the host from the AnsiballZ zip, through Python's
`zipimport`, which ships no bytecode: every file imported is compiled from
source. CPython's zipimporter compiles it twice: once when the import
system asks for the file name while building the module's spec
(`get_filename`), and again when it runs the module (`get_code`). Compiling
is most of a module process's cost (issue 12, benchmarks/README.md).

`compile_once()` puts a zipimporter in front that keeps the code object
compiled for `get_filename` and hands it to the following `get_code`: the
same code, the same file names, half the compiling. It touches only
importers of zip files, and changes nothing when the module does not run
from a zip (tests, ansible-test). A module calls it before importing the
rest of the collection's utilities.

The action plugins also ship bytecode in the zip (plugins/plugin_utils/
_sms_bytecode.py), compiled on the controller under `SHIPPED_PREFIX` and the
file's path inside the zip. For what is imported after `compile_once()`,
the importer gives such code the full path Python would have given the
source (`__file__`, tracebacks), and keeps it for `get_code` as it does
compiled code.
"""

from __future__ import annotations

import _imp
import marshal
import os
import sys
import zipimport
from importlib.util import MAGIC_NUMBER, source_hash


# The file name bytecode compiled on the controller carries: this, then the
# file's path inside the module's zip (the host's path is not known there).
SHIPPED_PREFIX = "/AnsiballZ/"
CHECKED_HASH = (0b11).to_bytes(4, "little")  # PEP 552: hash-based, check the source


def shipped_pyc(source, name):
    """The .pyc the controller ships beside `name` in the zip, or None when the source does not compile.

    A checked hash-based .pyc (PEP 552) of `source`, compiled as zipimport
    compiles a source (line ends made LF), under SHIPPED_PREFIX + `name`.
    None when the source does not compile: the host then compiles it and
    reports the error exactly as without bytecode.
    """
    text = source.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:  # optimize=0: asserts and __debug__ as the host's plain Python has them, whatever the controller's -O
        code = compile(text, SHIPPED_PREFIX + name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError):
        return None
    return MAGIC_NUMBER + CHECKED_HASH + source_hash(source) + marshal.dumps(code)


class OnceZipImporter(zipimport.zipimporter):
    """A zipimporter that compiles a module once for its spec and its run."""

    def __init__(self, path):
        super().__init__(path)
        self._compiled = {}

    def get_filename(self, fullname):
        code = super().get_code(fullname)
        if not code.co_filename.startswith(self.archive):
            path = self._shipped_path(fullname, code)
            if path is None:
                return super().get_filename(fullname)  # bytecode compiled elsewhere: ask as zipimport does
            _imp._fix_co_filename(code, path)  # type: ignore[attr-defined]  # pylint: disable=protected-access  # as importlib does for .pyc
        self._compiled[fullname] = code
        return code.co_filename

    def _shipped_path(self, fullname, code):
        """The full path of the source when `code` is bytecode the controller compiled from it, else None."""
        inner = self.prefix + fullname.rpartition(".")[2] + ("/__init__.py" if self.is_package(fullname) else ".py")
        inner = inner.replace(os.sep, "/")
        return os.path.join(self.archive, inner) if code.co_filename == SHIPPED_PREFIX + inner else None

    def get_code(self, fullname):
        code = self._compiled.pop(fullname, None)
        return code if code is not None else super().get_code(fullname)


def compile_once():
    """Install OnceZipImporter for the zips on sys.path, now and for packages found later.

    Returns the number of importers replaced (0 when nothing runs from a zip).
    """
    hooks = sys.path_hooks
    for index, hook in enumerate(hooks):
        if hook is zipimport.zipimporter:
            hooks[index] = OnceZipImporter
    replaced = 0
    for path, importer in list(sys.path_importer_cache.items()):
        if type(importer) is zipimport.zipimporter:  # pylint: disable=unidiomatic-typecheck
            sys.path_importer_cache[path] = OnceZipImporter(path)
            replaced += 1
    return replaced
