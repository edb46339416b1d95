"""sms_bytecode: the modules' zip gets bytecode, compiled once on the controller.

The bytecode is only ever a faster way to the same code: each .pyc is
checked against its source on the host, a Python of another version ignores
it, and everything else in the module's payload stays as ansible-core built
it. A real module run with it is in test_sms_client_upgrade.py (as shipped).
"""

import base64
import fcntl
import importlib.util
import io
import json
import marshal
import subprocess
import sys
import threading
import zipfile

import pytest

import sms_testlib

sms_testlib.install_collection_loader()

from ansible.errors import AnsibleActionFail  # noqa: E402
from ansible_collections.sms.hotfix.plugins.module_utils import sms_zipimport  # noqa: E402
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_bytecode as sms_bytecode  # noqa: E402

STAMP = (2026, 12, 4, 12, 0, 0)
SOURCES = {
    "pkg/__init__.py": b"",
    "pkg/mod.py": b"VALUE = 40\r\n\r\ndef answer():\r\n    return VALUE + 2\r\n\r\n\r\n"
    b"def fail():\r\n    raise ValueError('from pkg.mod')  # the line a traceback shows\r\n",
    "pkg/broken.py": b"VALUE = (\n",
    "pkg/data.json": b"{}",
}


def make_zip(files=None, compression=zipfile.ZIP_DEFLATED):
    files = SOURCES if files is None else files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = compression
            zipped.writestr(info, data)
    return buffer.getvalue()


def entries(zip_bytes):
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zipped:
        return {info.filename: (zipped.read(info), info.date_time, info.compress_type) for info in zipped.infolist()}


def wrapper(zip_bytes, extensions="{}"):
    """The tail of an AnsiballZ wrapper as ansible-core 2.19 writes it."""
    return (
        "#!/usr/bin/python\n\nimport datetime\n\n_ANSIBALLZ_WRAPPER = True\n\n"
        "if __name__ == \"__main__\":\n    _ansiballz_main(\nansible_module='m',\n"
        "params='{\"ANSIBLE_MODULE_ARGS\": {\"note\": \"zip_data=\"}}',\nextensions=%s,\nzip_data='%s',\n)\n"
        % (extensions, base64.b64encode(zip_bytes).decode())
    ).encode()


def test_a_pyc_is_a_checked_one_of_its_source_compiled_as_zipimport_compiles():
    source = SOURCES["pkg/mod.py"]
    pyc = sms_zipimport.shipped_pyc(source, "pkg/mod.py")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked against the source (PEP 552)
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == "/AnsiballZ/pkg/mod.py"  # the path inside the zip, under a path that is nowhere
    expected = compile(source.replace(b"\r\n", b"\n"), "/AnsiballZ/pkg/mod.py", "exec", dont_inherit=True)
    assert marshal.dumps(code) == marshal.dumps(expected)
    namespace = {}
    exec(code, namespace)  # pylint: disable=exec-used
    assert namespace["answer"]() == 42
    assert sms_zipimport.shipped_pyc(SOURCES["pkg/broken.py"], "pkg/broken.py") is None


def test_a_pyc_keeps_asserts_whatever_the_controllers_optimize_level():
    make = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('sms_zipimport', sys.argv[1])\n"
        "util = importlib.util.module_from_spec(spec); spec.loader.exec_module(util)\n"
        "sys.stdout.buffer.write(util.shipped_pyc(b'assert False, \"kept\"\\n', 'pkg/a.py'))"
    )
    pyc = subprocess.run(
        [sys.executable, "-O", "-c", make, sms_zipimport.__file__], capture_output=True, timeout=60, check=True
    ).stdout
    with pytest.raises(AssertionError, match="kept"):
        exec(marshal.loads(pyc[16:]), {})  # pylint: disable=exec-used


def test_ansible_core_attributes_the_shipped_modules_deprecations_to_this_collection():
    from ansible.module_utils._internal import _deprecator  # pylint: disable=import-outside-toplevel

    name = sms_zipimport.SHIPPED_PREFIX + "ansible_collections/sms/hotfix/plugins/modules/sms_client_upgrade.py"
    assert _deprecator._path_as_plugininfo(name).resolved_name == "sms.hotfix.sms_client_upgrade"


def test_the_zip_keeps_every_entry_and_gains_a_pyc_beside_each_source_that_compiles():
    original = make_zip()
    before, after = entries(original), entries(sms_bytecode.add_bytecode(original))
    assert {name: after[name] for name in before} == before  # content, time and compression as they were
    added = {name: value for name, value in after.items() if name not in before}
    assert sorted(added) == ["pkg/__init__.pyc", "pkg/mod.pyc"]  # not for broken.py, nor data.json
    pyc, stamp, compression = added["pkg/mod.pyc"]
    assert pyc == sms_zipimport.shipped_pyc(SOURCES["pkg/mod.py"], "pkg/mod.py")
    assert (stamp, compression) == (STAMP, zipfile.ZIP_DEFLATED)
    stored = entries(sms_bytecode.add_bytecode(make_zip(compression=zipfile.ZIP_STORED)))
    assert stored["pkg/mod.pyc"][2] == zipfile.ZIP_STORED
    # A .pyc the zip already has is left as it is.
    own = dict(SOURCES, **{"pkg/mod.pyc": b"not ours"})
    assert entries(sms_bytecode.add_bytecode(make_zip(own)))["pkg/mod.pyc"][0] == b"not ours"


HOST = (
    r"""
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
"""
    + sms_testlib.COMPILE_COUNTER
    + r"""
import pkg.mod
try:
    pkg.mod.fail()
except ValueError:
    where = traceback.extract_tb(sys.exc_info()[2])[-1]
print(json.dumps({"answer": pkg.mod.answer(), "compiled": compiled,
                  "traceback": [where.filename.split(".zip/", 1)[-1], where.line]}))
"""
)


def run_host(tmp_path, zip_bytes):
    archive = tmp_path / "payload.zip"
    archive.write_bytes(zip_bytes)
    done = subprocess.run(
        [sys.executable, "-c", HOST, str(archive)], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_on_the_host_the_bytecode_runs_only_for_its_own_source(tmp_path):
    shipped = sms_bytecode.add_bytecode(make_zip())
    line = "raise ValueError('from pkg.mod')  # the line a traceback shows"
    assert run_host(tmp_path, shipped) == {"answer": 42, "compiled": {}, "traceback": ["/AnsiballZ/pkg/mod.py", line]}
    assert run_host(tmp_path, make_zip())["traceback"] == ["pkg/mod.py", line]  # source: the zip's own path
    # The source changed after the bytecode was made: the source runs.
    files = {name: data for name, (data, _stamp, _compression) in entries(shipped).items()}
    files["pkg/mod.py"] = SOURCES["pkg/mod.py"].replace(b"VALUE = 40", b"VALUE = 41")
    changed = run_host(tmp_path, make_zip(files))
    assert changed["answer"] == 43 and changed["compiled"].get("pkg/mod.py", 0) >= 1, changed
    # Another Python (another magic number): the sources run.
    files = {
        name: (b"\xff\xff\r\n" + data[4:] if name.endswith(".pyc") else data)
        for name, (data, _stamp, _compression) in entries(shipped).items()
    }
    other = run_host(tmp_path, make_zip(files))
    assert other["answer"] == 42 and other["compiled"].get("pkg/mod.py", 0) >= 1, other


def test_only_the_zip_of_the_wrapper_changes_and_it_is_built_once(tmp_path, monkeypatch):
    original = make_zip()
    data = wrapper(original)
    cache = tmp_path / "cache"
    shipped = sms_bytecode.with_bytecode(data, str(cache))
    start, end = sms_bytecode.zip_span(shipped)
    assert shipped[:start] == data[:start] and shipped[end:] == data[sms_bytecode.zip_span(data)[1] :]
    assert base64.b64decode(shipped[start:end]) == sms_bytecode.add_bytecode(original)
    assert sorted(path.name[-5:] for path in cache.iterdir()) == [".lock", sms_bytecode.MAGIC_NUMBER.hex()[-5:]]

    def no_second_build(_zip_bytes):
        raise AssertionError("built twice")

    monkeypatch.setattr(sms_bytecode, "add_bytecode", no_second_build)
    assert sms_bytecode.with_bytecode(data, str(cache)) == shipped  # another worker: from the cache
    with pytest.raises(AssertionError, match="built twice"):
        sms_bytecode.with_bytecode(wrapper(make_zip(dict(SOURCES, extra=b""))), str(cache))


@pytest.mark.parametrize(
    "data, why",
    [
        (b"#!/bin/sh\necho '{}'\n", "AnsiballZ wrapper is not the one"),  # not AnsiballZ: another module style
        (
            wrapper(make_zip(), extensions="{'_coverage': {'config': 'c', 'output': None}}"),  # ansible-test coverage
            "carries an extension",
        ),
        # a wrapper format this code does not know: no mark, or another final call
        (wrapper(make_zip()).replace(b"\n_ANSIBALLZ_WRAPPER = True\n", b"\n"), "no _ANSIBALLZ_WRAPPER mark"),
        (
            wrapper(make_zip()).replace(b"\n    _ansiballz_main(\n", b"\n    _ansiballz_main(**dict(\n"),
            "its final _ansiballz_main call",
        ),
        (wrapper(make_zip()).replace(b"\nzip_data='", b"\nzip_data=b'"), "its final _ansiballz_main call"),
        # "extensions={}," in the wrapper's body does not count: only the final call's arguments do
        (
            wrapper(make_zip(), extensions="{'_debugpy': {'host': 'h'}}").replace(
                b"\n_ANSIBALLZ_WRAPPER = True\n", b"\n_ANSIBALLZ_WRAPPER = True\n# e.g.\nextensions={},\n"
            ),
            "carries an extension",
        ),
    ],
)
def test_anything_else_is_sent_as_ansible_core_built_it_and_says_why(tmp_path, data, why):
    assert sms_bytecode.with_bytecode(data, str(tmp_path)) is data
    sent, reason = sms_bytecode.bytecode_for(data, str(tmp_path))
    assert sent is data and why in reason, reason
    if "wrapper is not" in why or "_ansiballz_main" in why:
        assert "ansible-core %s's" % sms_bytecode.ANSIBLE_VERSION in reason
    assert not list(tmp_path.iterdir())
    assert sms_bytecode.bytecode_for(wrapper(make_zip()), str(tmp_path))[1] is None  # what it reads: no reason


@pytest.mark.parametrize(
    "value, wanted",
    [(None, True), (True, True), ("yes", True), ("true", True), (False, False), ("no", False), (0, False)],
)
def test_sms_module_bytecode_is_a_boolean_and_on_unless_set(value, wanted):
    assert sms_bytecode.bytecode_wanted(value) is wanted


def test_a_wrong_sms_module_bytecode_is_named_with_what_to_do():
    with pytest.raises(AnsibleActionFail) as failed:
        sms_bytecode.bytecode_wanted("sometimes")
    assert "sms_module_bytecode is 'sometimes'" in str(failed.value)
    assert "must be true or false" in str(failed.value)


def test_a_worker_that_misses_the_cache_waits_for_the_one_building_it(tmp_path, monkeypatch):
    data = wrapper(make_zip())
    cache = tmp_path / "cache"
    cache.mkdir()
    start, end = sms_bytecode.zip_span(data)
    path = sms_bytecode.cache_path(data[start:end], str(cache))
    built = base64.b64encode(sms_bytecode.add_bytecode(make_zip()))

    def no_build(_zip_bytes):
        raise AssertionError("built again by a waiting worker")

    monkeypatch.setattr(sms_bytecode, "add_bytecode", no_build)
    results = []
    with open(path + ".lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker is building
        waiter = threading.Thread(target=lambda: results.append(sms_bytecode.with_bytecode(data, str(cache))))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not results  # it waits for the lock
        with open(path, "wb") as handle:
            handle.write(built)
    waiter.join(10)
    assert results and base64.b64decode(results[0][start : start + len(built)]) == base64.b64decode(built)


def test_when_bytecode_cannot_be_made_the_module_goes_as_ansible_core_built_it(tmp_path):
    data = wrapper(make_zip())
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    assert sms_bytecode.with_bytecode(data, str(blocked)) is data  # the cache cannot be written
    sent, reason = sms_bytecode.bytecode_for(data, str(blocked))
    assert sent is data and reason.startswith("the bytecode cannot be made: "), reason
    damaged = data.replace(b"zip_data='UEsD", b"zip_data='!!!!")
    assert sms_bytecode.with_bytecode(damaged, str(tmp_path / "cache")) is damaged  # not base64 of a zip


class FakeTask:
    def __init__(self, delegate_to=None):
        self.delegate_to = delegate_to


@pytest.mark.parametrize("delegate_to, wanted", [(None, False), ("logon01", True)])
def test_the_switch_is_templated_and_read_for_the_host_the_module_runs_on(delegate_to, wanted):
    from ansible.parsing.dataloader import DataLoader  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar, trust_as_template  # pylint: disable=import-outside-toplevel

    action = sms_bytecode.BytecodeAction.__new__(sms_bytecode.BytecodeAction)
    action._task = FakeTask(delegate_to)
    task_vars = {
        "flag": "no",
        "sms_module_bytecode": trust_as_template("{{ flag }}"),
        "ansible_delegated_vars": {"logon01": {"sms_module_bytecode": True}},
    }
    action._templar = Templar(loader=DataLoader(), variables=task_vars)
    assert action.bytecode_wanted(task_vars) is wanted
