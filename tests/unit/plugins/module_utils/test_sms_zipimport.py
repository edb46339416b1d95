"""sms_zipimport: a module from a zip is compiled once, and is the same module.

Each case runs in a fresh interpreter (compile_once changes the import
system of the process it runs in), importing from a zip built here, with
Python's compile counted.
"""

import io
import json
import os
import subprocess
import sys
import zipfile

from sms_testlib import COMPILE_COUNTER
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_bytecode as sms_bytecode

from sms_testlib import REPO  # noqa: E402

UTIL = os.path.join(REPO, "plugins", "module_utils", "sms_zipimport.py")

PROBE = (
    r"""
import importlib.util, json, sys
zip_path, once = sys.argv[1], sys.argv[2] == "once"
spec = importlib.util.spec_from_file_location("sms_zipimport", sys.argv[3])
util = importlib.util.module_from_spec(spec)
spec.loader.exec_module(util)
sys.path.insert(0, zip_path)
import pkg.early  # found before compile_once: the importers of the zip and of pkg/ are replaced
replaced = util.compile_once() if once else 0
"""
    + COMPILE_COUNTER
    + r"""
from pkg import mod
from pkg.sub import leaf
try:
    import pkg.broken
    broken = None
except SyntaxError as exc:
    broken = "%s line %s" % (exc.filename.split(".zip/", 1)[-1], exc.lineno)
print(json.dumps({"compiled": compiled, "replaced": replaced, "value": mod.VALUE + leaf.VALUE,
                  "files": [m.__file__.split(".zip/", 1)[-1] for m in (mod, leaf)],
                  "traceback_file": mod.where().split(".zip/", 1)[-1], "broken": broken,
                  "full_paths": [p.startswith(zip_path + "/") for p in (mod.where(), mod.__file__, leaf.__file__)],
                  "loader": type(mod.__loader__).__name__}))
"""
)

FILES = {
    "pkg/__init__.py": "",
    "pkg/early.py": "",
    "pkg/mod.py": "import traceback\nVALUE = 40\n\ndef where():\n    return traceback.extract_stack()[-1].filename\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/leaf.py": "VALUE = 2\n",
    "pkg/broken.py": "VALUE = (\n",
}


def probe(tmp_path, mode, bytecode=False):
    archive = tmp_path / ("lib-bytecode.zip" if bytecode else "lib.zip")
    if not archive.exists():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            for name, text in FILES.items():
                zipped.writestr(name, text)
        archive.write_bytes(sms_bytecode.add_bytecode(buffer.getvalue()) if bytecode else buffer.getvalue())
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(archive), mode, UTIL], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_modules_from_a_zip_are_compiled_once_and_are_the_same_modules(tmp_path):
    plain = probe(tmp_path, "plain")
    once = probe(tmp_path, "once")
    # Python's own zipimport compiles each twice: the reason for the utility.
    # (A file that does not compile fails at the first, either way.)
    assert plain["compiled"] == {"pkg/mod.py": 2, "pkg/sub/__init__.py": 2, "pkg/sub/leaf.py": 2, "pkg/broken.py": 1}, (
        plain
    )
    assert once["compiled"] == {"pkg/mod.py": 1, "pkg/sub/__init__.py": 1, "pkg/sub/leaf.py": 1, "pkg/broken.py": 1}, (
        once
    )
    assert once["replaced"] == 2  # the zip and pkg/, found before
    assert once["loader"] == "OnceZipImporter" and plain["loader"] == "zipimporter"
    # The same modules: values, file names, the file a traceback names, a syntax error's place.
    for key in ("value", "files", "traceback_file", "broken"):
        assert once[key] == plain[key], key
    assert once["value"] == 42 and once["files"] == ["pkg/mod.py", "pkg/sub/leaf.py"]
    assert once["broken"] == "pkg/broken.py line 1"


def test_bytecode_from_the_controller_is_not_compiled_and_gets_the_file_names_of_the_source(tmp_path):
    plain = probe(tmp_path, "plain")
    shipped = probe(tmp_path, "once", bytecode=True)
    # Only the file that does not compile (shipped without bytecode) is compiled, to report its error.
    assert shipped["compiled"] == {"pkg/broken.py": 1}, shipped
    # __file__, the file a traceback names and a syntax error's place are those of the sources.
    for key in ("value", "files", "traceback_file", "broken", "full_paths"):
        assert shipped[key] == plain[key], key
    assert shipped["full_paths"] == [True, True, True]
    assert shipped["loader"] == "OnceZipImporter"


def test_nothing_changes_when_nothing_runs_from_a_zip():
    code = (
        "import importlib.util, sys, zipimport\n"
        "spec = importlib.util.spec_from_file_location('u', sys.argv[1])\n"
        "u = importlib.util.module_from_spec(spec); spec.loader.exec_module(u)\n"
        "cache = dict(sys.path_importer_cache)\n"
        "print(u.compile_once(), sys.path_importer_cache == cache, zipimport.zipimporter not in sys.path_hooks)"
    )
    done = subprocess.run([sys.executable, "-c", code, UTIL], capture_output=True, text=True, check=True, timeout=60)
    # no importer replaced; zip files found later get the once-importer
    assert done.stdout.split() == ["0", "True", "True"], done.stdout
