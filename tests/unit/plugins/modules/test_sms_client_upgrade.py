"""sms_client_upgrade: the Upgrade.bat equivalent, driven through its argument spec.

Clients and logon servers are built in tmp dirs with sms_testlib; SMSRUN32 is
a real process of ours whose comm is SMSRUN32 and whose command line names
the client's Smsrun32.exe, so the module finds it in the real process table.
"""

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

import sms_testlib as lab
from ansible.module_utils.common import parameters
from ansible_collections.sms.hotfix.plugins.module_utils import sms_proc
from ansible_collections.sms.hotfix.plugins.plugin_utils import _sms_bytecode as sms_bytecode

MODULE = "sms_client_upgrade"

# The SMSRUN32 stand-in: idle (sleeps), busy (spins), stubborn (ignores TERM).
CHILD = r"""
import ctypes, signal, sys, time
ctypes.CDLL(None).prctl(15, b"SMSRUN32", 0, 0, 0)
mode = sys.argv[1]
if "stubborn" in mode:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
end = time.monotonic() + 120
while time.monotonic() < end:
    if "busy" in mode:
        x = 0
        for _ in range(200000):
            x += 1
    else:
        time.sleep(0.05)
"""

# start_argv: starts a detached SMSRUN32 stand-in and returns at once, like `net start`.
LAUNCHER = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], sys.argv[3]], "
    "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)"
)


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return None


def image(drive):
    return "--image=" + os.path.join(drive, "MS", "SMS", "BIN", "Smsrun32.exe")


def start_argv(drive, mode="idle"):
    return [sys.executable, "-c", LAUNCHER, CHILD, mode, image(drive)]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def smsrun():
    """spawn(drive, mode, count) -> pids; every SMSRUN32 of those drives is killed afterwards."""
    children, drives = [], set()

    def spawn(drive, mode="idle", count=1):
        drives.add(drive)
        pids = []
        for _instance in range(count):
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, mode, image(drive)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            children.append(proc)
            pids.append(proc.pid)
        assert wait_for(lambda: all(comm(pid) == "SMSRUN32" for pid in pids)), "stand-ins did not start"
        return pids

    spawn.drives = drives
    yield spawn
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    for drive in drives:  # the ones start_argv launched, detached
        for entry in sms_proc.list_processes("SMSRUN32", scope="drive", drive_root=drive):
            try:
                os.kill(entry["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def serve(logon_sms, manifest_path, platform="x86"):
    """Make a logon server serve the hotfix: payload into Logon.srv/<P>.bin."""
    base = os.path.dirname(manifest_path)
    folder = os.path.join(logon_sms, "Logon.srv", lab.DIRS[platform])
    for name in ("Smsrun32.exe", "Smssrv32.exe"):
        src = os.path.join(base, "payload", lab.DIRS[platform], name)
        for entry in os.listdir(folder):
            if entry.lower() == name.lower():
                os.unlink(os.path.join(folder, entry))
        shutil.copyfile(src, os.path.join(folder, name))
        stamp = lab_date(name)
        os.utime(os.path.join(folder, name), (stamp, stamp))


def lab_date(name):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_manifest import parse_iso_utc

    return parse_iso_utc(lab.HOTFIX_DATE[name])


def payload(manifest_path, platform, name):
    with open(os.path.join(os.path.dirname(manifest_path), "payload", lab.DIRS[platform], name), "rb") as handle:
        return handle.read()


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


class Site:
    def __init__(
        self,
        tmp_path,
        platforms=("x86", "alpha"),
        logon_platforms=("x86", "alpha"),
        served=True,
        client_platform="x86",
        server_version=42,
    ):
        self.root = str(tmp_path)
        self.manifest = lab.make_hotfix(tmp_path, platforms=platforms)
        self.hosts = os.path.join(self.root, "hosts")
        self.logon = lab.make_logon(self.hosts, "logon01", platforms=logon_platforms, version=server_version)
        if served:
            for platform in logon_platforms:
                serve(self.logon, self.manifest, platform)
        self.platform = client_platform
        self.client = lab.make_client(self.hosts, "client01", platform=client_platform, server="LOGON01")
        self.bin = os.path.join(self.client, "MS", "SMS", "BIN")
        self.ini = os.path.join(self.client, "SMS.INI")
        self.pattern = os.path.join(self.hosts, "{server}", "SMS", "Logon.srv")

    def args(self, **extra):
        # Every client shares this machine's process table: the drive scope, as in the lab.
        args = dict(
            drive_root=self.client,
            platform=self.platform,
            manifest=self.manifest,
            share_path_pattern=self.pattern,
            cpu_window=0.2,
            stop_timeout=3,
            process_scope="drive",
            logon_servers=["LOGON01"],
        )
        args.update(extra)
        return args

    def snap(self):
        return lab.snapshot(self.root)


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def expected_ini(version=b"42", phase=b"installed"):
    return (
        lab.sms_ini()
        .replace(b"CopyListVersion=41", b"CopyListVersion=" + version)
        .replace(b"SetupPhase=installed", b"SetupPhase=" + phase)
    )


def assert_upgraded(site):
    for name in ("Smsrun32.exe", "Smssrv32.exe"):
        path = os.path.join(site.bin, name)
        assert lab.sha(read(path)) == lab.sha(payload(site.manifest, site.platform, name))
        assert int(os.stat(path).st_mtime) == int(lab_date(name))
    assert read(site.ini) == expected_ini()


# --- the upgrade rhythm ------------------------------------------------------------


def test_rhythm_check_change_no_change_check(site, module_runner):
    before = site.snap()
    check = module_runner(MODULE, site.args(), check_mode=True, diff=True)
    assert check["changed"] is True and check["status"] == "upgraded"
    assert site.snap() == before, "check mode changed something"
    assert sorted(f["name"] for f in check["files"] if f["changed"]) == ["Smsrun32.exe", "Smssrv32.exe"]
    assert not [f for f in check["files"] if f["name"] == "Cli_nt.exe" and f["changed"]]
    assert "Smsrun32.exe sha256=" in check["diff"]["before"]
    assert "SMS.INI [SMS] CopyListVersion=41" in check["diff"]["before"]
    assert "SMS.INI [SMS] CopyListVersion=42" in check["diff"]["after"]
    assert "SetupPhase" not in check["diff"]["before"]  # already installed: not a change
    assert check["logon_server"] == "LOGON01" and check["copy_list_version"] == "42"

    done = module_runner(MODULE, site.args(), diff=True)
    assert done["changed"] is True and done["status"] == "upgraded", done
    assert done["reboot_required"] is True  # Smssrv32.exe is a service
    assert_upgraded(site)
    journal = os.path.join(site.client, "MS", "SMS", "Hotfix", "Q216552", "journal.json")
    assert os.path.isfile(journal)
    originals = lab.original_files("x86")
    for name in ("Smsrun32.exe", "Smssrv32.exe"):
        assert read(os.path.join(os.path.dirname(journal), "backup", "BIN", name)) == originals[name]
    assert read(os.path.join(os.path.dirname(journal), "backup", "INI", "SMS.INI")) == lab.sms_ini()
    assert read(os.path.join(site.bin, "Cli_nt.exe")) == originals["Cli_nt.exe"]

    after = site.snap()
    again = module_runner(MODULE, site.args())
    assert again["changed"] is False and again["status"] == "unchanged", again
    assert again["reboot_required"] is False
    assert module_runner(MODULE, site.args(), check_mode=True)["changed"] is False
    assert site.snap() == after


def disk_state(root):
    """Every file and folder below root, as it is on disk: path -> (inode, size, mtime_ns).

    A file rewritten (even with the same bytes, in the same second) or a
    temporary file made and removed in a folder shows here.
    """
    state = {}
    for folder, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            state[os.path.relpath(path, str(root))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state


def test_a_run_on_an_up_to_date_client_writes_nothing_and_echoes_one_line_for_its_manifest(site, module_runner):
    # What a client run must do and must not do (every re-run of a rollout
    # meets up-to-date clients): the first run upgrades and journals; the
    # next one, handed the manifest's content as the action plugin hands it,
    # finds the client current and touches nothing on its disk: no journal,
    # no backup, no temporary file, no SMS.INI rewritten.
    first = module_runner(MODULE, site.args())
    assert first["status"] == "upgraded" and first["changed"] is True, first
    journal = os.path.join(site.client, "MS", "SMS", "Hotfix", "Q216552", "journal.json")
    assert os.path.isfile(journal)
    before = disk_state(site.root)
    with open(site.manifest, encoding="utf-8") as handle:
        data = json.load(handle)
    args = site.args(manifest=None, manifest_data=data)
    del args["manifest"]
    # ansible-core 2.19 always returns the module's arguments; 2.20 and later when asked (inject_invocation)
    if "inject_invocation" in parameters.PASS_VARS:
        args["_ansible_inject_invocation"] = True
    again = module_runner(MODULE, args)
    assert again["status"] == "unchanged" and again["changed"] is False, again
    assert disk_state(site.root) == before
    # The result echoes a line for the manifest it was handed, not every platform's digests.
    assert again["invocation"]["module_args"]["manifest_data"] == "Q216552 (2 file(s) of x86, validated)"


# The module as Ansible ships it: AnsiballZ, the module and its utilities in a
# zip, imported with Python's zipimport. The action plugins add bytecode
# compiled on the controller (plugin_utils/_sms_bytecode.py), so the host
# compiles nothing; without it (another Python, or sms_module_bytecode off)
# zipimport compiles each file twice (for its spec, then to run it), and
# sms_zipimport makes that once for what the module imports after it.
COUNT_COMPILES = (
    lab.COMPILE_COUNTER
    + r"""
import json, runpy, sys
sys.argv = sys.argv[1:2]  # as when run: more arguments would be AnsiballZ's debug commands
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    sys.stderr.write("\nCOMPILED " + json.dumps(compiled) + "\n")
"""
)


def payload_zip(path):
    """(wrapper bytes, (start, end) of its base64 zip, the zip's entries by name)."""
    data = open(path, "rb").read()
    start, end = sms_bytecode.zip_span(data)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(data[start:end]))) as zipped:
        return data, (start, end), {info.filename: zipped.read(info) for info in zipped.infolist()}


def as_another_python(path, out):
    """The payload at `path` written to `out` with a foreign magic number in every .pyc."""
    data, (start, end), entries = payload_zip(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, content in entries.items():
            zipped.writestr(name, b"\xff\xff\r\n" + content[4:] if name.endswith(".pyc") else content)
    out.write_bytes(data[:start] + base64.b64encode(buffer.getvalue()) + data[end:])
    return str(out)


def run_counting_compiles(path):
    done = subprocess.run(
        [sys.executable, "-c", COUNT_COMPILES, path], capture_output=True, text=True, timeout=60, check=False
    )
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    return result, json.loads(done.stderr.rsplit("COMPILED ", 1)[1])


def test_as_shipped_the_host_compiles_nothing_and_another_python_each_utility_once(site, tmp_path):
    remote_tmp = tmp_path / "remote-tmp"
    facts = {key: site.args()[key] for key in ("drive_root", "platform", "manifest", "cpu_window", "process_scope")}
    (tmp_path / "play.json").write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {"sms.hotfix.sms_client_upgrade": site.args(), "register": "upgrade"},
                        {"sms.hotfix.sms_client_info": facts},
                        {"sms.hotfix.sms_client_info": facts, "vars": {"sms_module_bytecode": False}},
                        {
                            "sms.hotfix.sms_client_info": facts,
                            "vars": {"sms_module_bytecode": "sometimes"},
                            "register": "wrong",
                            "ignore_errors": True,
                        },
                        # a module whose action sends the hotfix first: a wrong value sends nothing
                        {
                            "sms.hotfix.sms_hotfix_stage": {
                                "sms_root": str(tmp_path / "no-site"),
                                "manifest": site.manifest,
                                "transfer": "always",
                            },
                            "vars": {"sms_module_bytecode": "sometimes"},
                            "register": "wrong_stage",
                            "ignore_errors": True,
                        },
                        {
                            "ansible.builtin.assert": {
                                "that": [
                                    "upgrade.status == 'upgraded'",
                                    "wrong is failed and wrong.msg.startswith(\"sms_module_bytecode is 'sometimes'\")",
                                    "wrong_stage is failed and wrong_stage.msg.startswith(\"sms_module_bytecode is\")",
                                ]
                            }
                        },
                    ],
                }
            ]
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(lab.REPO, "ansible.cfg"),
        SMS_REPORT_DISABLE="1",
        ANSIBLE_KEEP_REMOTE_FILES="1",
        ANSIBLE_PIPELINING="0",
        ANSIBLE_REMOTE_TMP=str(remote_tmp),
        ANSIBLE_LOCAL_TMP=str(tmp_path / "local-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    done = subprocess.run(
        [
            playbook,
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}),
            str(tmp_path / "play.json"),
        ],
        cwd=lab.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Only the modules that ran were sent (remote files are kept): no hotfix copy for the refused stage.
    sent = sorted(name for _top, _dirs, names in os.walk(remote_tmp) for name in names)
    assert sent == ["AnsiballZ_sms_client_info.py"] * 2 + ["AnsiballZ_sms_client_upgrade.py"], sent
    utils = "ansible_collections/sms/hotfix/plugins/module_utils/"
    done_as = {
        "sms_client_upgrade": lambda result: result["status"] == "unchanged",
        "sms_client_info": lambda result: result["compliance"]["compliant"] is True,
    }
    source_only = []
    for module, expected in done_as.items():
        shipped = sorted(
            os.path.join(top, name)
            for top, _dirs, names in os.walk(remote_tmp)
            for name in names
            if name == "AnsiballZ_%s.py" % module
        )
        # (the task with a wrong sms_module_bytecode failed before it sent anything)
        assert len(shipped) == (2 if module == "sms_client_info" else 1), (module, shipped)
        with_pyc = [path for path in shipped if any(name.endswith(".pyc") for name in payload_zip(path)[2])]
        source_only += [path for path in shipped if path not in with_pyc]
        assert len(with_pyc) == 1, (module, shipped)
        entries = payload_zip(with_pyc[0])[2]
        sources = {name for name in entries if name.endswith(".py")}
        assert {name[:-1] for name in entries if name.endswith(".pyc")} == sources, module
        # The same payload again, compiles counted (the client is up to date now): none from the zip.
        result, compiled = run_counting_compiles(with_pyc[0])
        assert expected(result), result
        assert not [name for name in compiled if name.startswith(("ansible/", "ansible_collections/"))], compiled
        # A Python of another version ignores the bytecode and compiles the sources.
        result, compiled = run_counting_compiles(as_another_python(with_pyc[0], tmp_path / ("other-" + module)))
        assert expected(result), result
        ours = {name: count for name, count in compiled.items() if name.startswith(utils)}
        needed = ["sms_client.py", "sms_fs.py", "sms_ini.py", "sms_manifest.py", "sms_proc.py"]
        needed += ["sms_client_run.py"] if module == "sms_client_upgrade" else []
        assert {utils + name for name in needed} <= set(ours), (module, compiled)
        # imported the way Python does, before it takes over
        assert ours.pop(utils + "sms_zipimport.py") == 2 and ours.pop(utils + "__init__.py") == 2
        assert set(ours.values()) == {1}, (module, ours)
        # What ran before it is compiled twice: ansible-core's own utilities, and the module file.
        assert compiled["ansible/module_utils/basic.py"] == 2
        assert compiled["ansible_collections/sms/hotfix/plugins/modules/%s.py" % module] == 2
    # sms_module_bytecode: false ships the sources alone, and they run.
    assert len(source_only) == 1
    result, compiled = run_counting_compiles(source_only[0])
    assert done_as["sms_client_info"](result), result
    assert compiled["ansible/module_utils/basic.py"] == 2


# ansible-playbook with ansible-core's AnsiballZ wrapper in a format
# sms_bytecode does not read (as a later ansible-core's may be): its mark
# written another way, the wrapper's code otherwise the same.
CHANGED_WRAPPER_PLAYBOOK = r"""
import sys
from ansible.executor import module_common
real = module_common._get_ansiballz_code
def changed(shebang):
    code = real(shebang)
    assert "\n_ANSIBALLZ_WRAPPER = True\n" in code
    return code.replace("\n_ANSIBALLZ_WRAPPER = True\n", "\n_ANSIBALLZ_WRAPPER = bool(1)  # another format\n")
module_common._get_ansiballz_code = changed
from ansible.cli.playbook import main
sys.argv[0] = "ansible-playbook"
sys.exit(main())
"""


def test_a_wrapper_format_it_does_not_read_goes_as_ansible_core_built_it_and_says_so(site, tmp_path):
    remote_tmp = tmp_path / "remote-tmp"
    facts = {key: site.args()[key] for key in ("drive_root", "platform", "manifest", "cpu_window", "process_scope")}
    (tmp_path / "play.json").write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {"sms.hotfix.sms_client_upgrade": site.args(), "register": "upgrade"},
                        {"sms.hotfix.sms_client_info": facts, "register": "info"},
                        {
                            "ansible.builtin.copy": {
                                "dest": str(tmp_path / "results.json"),
                                "content": "{{ {'upgrade': upgrade, 'info': info} | to_json }}",
                            }
                        },
                    ],
                }
            ]
        )
    )
    script = tmp_path / "changed-wrapper-playbook.py"
    script.write_text(CHANGED_WRAPPER_PLAYBOOK)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(lab.REPO, "ansible.cfg"),
        SMS_REPORT_DISABLE="1",
        ANSIBLE_KEEP_REMOTE_FILES="1",
        ANSIBLE_PIPELINING="0",
        ANSIBLE_REMOTE_TMP=str(remote_tmp),
        ANSIBLE_LOCAL_TMP=str(tmp_path / "local-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "-vvv",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}),
            str(tmp_path / "play.json"),
        ],
        cwd=lab.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    # The modules ran, and did their work, from ansible-core's own payload.
    assert results["upgrade"]["status"] == "upgraded" and results["upgrade"]["changed"] is True, results["upgrade"]
    assert_upgraded(site)
    assert results["info"]["compliance"]["compliant"] is True, results["info"]
    shipped = sorted(
        os.path.join(top, name)
        for top, _dirs, names in os.walk(remote_tmp)
        for name in names
        if name.startswith("AnsiballZ_sms_")
    )
    assert len(shipped) == 2, shipped
    for path in shipped:
        data = open(path, "rb").read()
        assert b"_ANSIBALLZ_WRAPPER = bool(1)  # another format" in data, path
        assert b"zip_data='" in data
        start = data.index(b"zip_data='") + len(b"zip_data='")
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(data[start : data.index(b"'", start)]))) as zipped:
            assert not [name for name in zipped.namelist() if name.endswith(".pyc")], path
    # Said in the result and at -vvv, with why.
    for module in ("sms_client_upgrade", "sms_client_info"):
        said = results[module.replace("sms_client_", "")]["sms_module_bytecode_skipped"]
        assert said.startswith("sms.hotfix.%s: sent as ansible-core built it, without bytecode (" % module), said
        assert "AnsiballZ wrapper is not the one this collection reads (no _ANSIBALLZ_WRAPPER mark)" in said
        assert "sms_module_bytecode: " + said in done.stdout, done.stdout[-3000:]


def test_sms_ini_changes_only_the_two_keys(site, module_runner):
    original = (
        b"; SMS.INI \xe9crit par Client Setup\r\n"
        b"[SMS]\r\n"
        b"SMS_Unique_ID=LAB00001\r\n"
        b"  CopyListVersion = 41   \r\n"
        b"Odd Key With Spaces=a=b=c\r\n"
        b"\r\n"
        b"[Servers]\r\n"
        b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\n"
        b"Logon_Server_List=\\\\LOGON01\\SMS_SHR,\\\\LOGON02\\SMS_SHR\r\n"
        b"[local]\r\n"
        b"setupphase=verify_files\r\n"
        b"; a comment we do not know\r\n"
        b"[Unknown Vendor Section]\r\n"
        b"Whatever=\t tabs kept\r\n"
        b"# hash comment\r\n"
        b"Last=no newline at end"
    )
    lab.write(site.ini, original)
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True, result
    wanted = original.replace(b"CopyListVersion = 41   ", b"CopyListVersion = 42   ").replace(
        b"setupphase=verify_files", b"setupphase=installed"
    )
    assert read(site.ini) == wanted
    assert {(i["key"], i["before"], i["after"]) for i in result["ini"]} == {
        ("CopyListVersion", "41", "42"),
        ("SetupPhase", "verify_files", "installed"),
    }
    assert module_runner(MODULE, site.args())["changed"] is False


def test_missing_keys_are_added_in_their_sections(site, module_runner):
    lab.write(site.ini, b"[SMS]\r\nSMS_Unique_ID=X\r\n[Servers]\r\nCurrent_Logon_Server=\\\\LOGON01\\SMS_SHR\r\n")
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True, result
    assert read(site.ini) == (
        b"[SMS]\r\nSMS_Unique_ID=X\r\nCopyListVersion=42\r\n[Servers]\r\n"
        b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\n[Local]\r\nSetupPhase=installed\r\n"
    )


def test_logon_server_list_is_the_fallback(site, module_runner):
    lab.write(
        site.ini,
        lab.sms_ini().replace(
            b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR", b"Current_Logon_Server=\r\nLogon_Server_List=LOGON01,LOGON02"
        ),
    )
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True and result["logon_server"] == "LOGON01", result


def test_file_names_match_case_insensitively_and_keep_the_clients_name(site, module_runner):
    os.rename(os.path.join(site.bin, "Smsrun32.exe"), os.path.join(site.bin, "SMSRUN32.EXE"))
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True, result
    assert sorted(os.listdir(site.bin)) == ["Cli_nt.exe", "SMSRUN32.EXE", "Smssrv32.exe"]
    assert read(os.path.join(site.bin, "SMSRUN32.EXE")) == payload(site.manifest, "x86", "Smsrun32.exe")


def test_reboot_required_only_when_a_service_file_changes(site, module_runner):
    lab.write(os.path.join(site.bin, "Smssrv32.exe"), payload(site.manifest, "x86", "Smssrv32.exe"))
    result = module_runner(MODULE, site.args())
    assert [f["name"] for f in result["files"] if f["changed"]] == ["Smsrun32.exe"]
    assert result["reboot_required"] is False


def test_alpha_client(tmp_path, module_runner):
    site = Site(tmp_path, client_platform="alpha")
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True, result
    assert_upgraded(site)


# --- SMSRUN32 ------------------------------------------------------------------------


def test_hung_two_instances_cured_upgraded_and_restarted(site, smsrun, module_runner):
    hung = smsrun(site.client, "idle", count=2)
    check = module_runner(MODULE, site.args(start_argv=start_argv(site.client)), check_mode=True)
    assert check["smsrun32"]["hung"] is True and check["changed"] is True
    assert sorted(check["smsrun32"]["stopped"]) == sorted(hung)
    assert all(sms_proc.alive(pid) for pid in hung), "check mode stopped a process"

    result = module_runner(MODULE, site.args(start_argv=start_argv(site.client)))
    assert result["changed"] is True and result["status"] == "upgraded", result
    assert result["smsrun32"]["hung"] is True and "2 instances" in result["smsrun32"]["reason"]
    assert sorted(result["smsrun32"]["stopped"]) == sorted(hung)
    assert result["smsrun32"]["signals"] == ["TERM"]
    assert result["smsrun32"]["restarted"] is True
    assert not any(sms_proc.alive(pid) for pid in hung)
    assert_upgraded(site)
    fresh = wait_for(
        lambda: [p["pid"] for p in sms_proc.list_processes("SMSRUN32", scope="drive", drive_root=site.client)]
    )
    assert len(fresh) == 1 and fresh[0] not in hung

    again = module_runner(MODULE, site.args(start_argv=start_argv(site.client)))
    assert again["changed"] is False, again
    assert again["smsrun32"]["hung"] is False and [p["pid"] for p in again["smsrun32"]["found"]] == fresh


def test_one_busy_instance_above_the_threshold_is_hung(site, smsrun, module_runner):
    (pid,) = smsrun(site.client, "busy")
    calm = module_runner(MODULE, site.args(hung_cpu_threshold=150), check_mode=True)
    assert calm["smsrun32"]["hung"] is False, calm  # one core is 100 % at most
    # a low threshold keeps the test honest on a loaded CI machine; an idle one stays near 0 %
    check = module_runner(MODULE, site.args(hung_cpu_threshold=5), check_mode=True)
    assert check["smsrun32"]["hung"] is True, check
    assert check["smsrun32"]["found"][0]["cpu"] > 5
    assert sms_proc.alive(pid)

    result = module_runner(MODULE, site.args(hung_cpu_threshold=5))
    assert result["changed"] is True and result["smsrun32"]["stopped"] == [pid], result
    assert not sms_proc.alive(pid)
    assert result["smsrun32"]["restarted"] is False and "start_argv is empty" in result["smsrun32"]["note"]
    assert_upgraded(site)


def test_hung_cured_even_when_files_are_current(site, smsrun, module_runner):
    assert module_runner(MODULE, site.args())["changed"] is True
    hung = smsrun(site.client, "idle", count=2)
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True and result["smsrun32"]["hung"] is True, result
    assert not any(f["changed"] for f in result["files"])
    assert not any(sms_proc.alive(pid) for pid in hung)
    assert module_runner(MODULE, site.args())["changed"] is False


def test_healthy_instance_restart_policy(site, smsrun, module_runner):
    (pid,) = smsrun(site.client, "idle")
    result = module_runner(MODULE, site.args(start_argv=start_argv(site.client)))
    assert result["changed"] is True and result["status"] == "upgraded", result
    assert result["smsrun32"]["hung"] is False and result["smsrun32"]["stopped"] == [pid]
    assert result["smsrun32"]["restarted"] is True
    assert not sms_proc.alive(pid)
    assert_upgraded(site)
    fresh = wait_for(
        lambda: [p["pid"] for p in sms_proc.list_processes("SMSRUN32", scope="drive", drive_root=site.client)]
    )
    assert len(fresh) == 1 and fresh[0] != pid


def test_healthy_instance_not_stopped_when_no_file_changes(site, smsrun, module_runner):
    lab.write(os.path.join(site.bin, "Smsrun32.exe"), payload(site.manifest, "x86", "Smsrun32.exe"))
    lab.write(os.path.join(site.bin, "Smssrv32.exe"), payload(site.manifest, "x86", "Smssrv32.exe"))
    (pid,) = smsrun(site.client, "idle")
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True and result["smsrun32"]["stopped"] == [], result  # only the INI key
    assert sms_proc.alive(pid)
    assert read(site.ini) == expected_ini()


def test_healthy_instance_defer_policy(site, smsrun, module_runner):
    (pid,) = smsrun(site.client, "idle")
    bin_before = lab.snapshot(site.bin)
    check = module_runner(MODULE, site.args(running_policy="defer"), check_mode=True, diff=True)
    assert check["status"] == "deferred" and check["changed"] is True
    assert check["diff"]["after"] == "SMS.INI [Local] SetupPhase=verifying_files\n"
    result = module_runner(MODULE, site.args(running_policy="defer"))
    assert result["status"] == "deferred" and result["pending_restart"] is True and result["changed"] is True
    assert result["smsrun32"]["stopped"] == [] and sms_proc.alive(pid)
    assert lab.snapshot(site.bin) == bin_before
    assert read(site.ini) == expected_ini(version=b"41", phase=b"verifying_files")
    assert [f["name"] for f in result["files"] if f.get("pending")] == ["Smsrun32.exe", "Smssrv32.exe"]

    again = module_runner(MODULE, site.args(running_policy="defer"))
    assert again["changed"] is False and again["status"] == "deferred", again

    os.kill(pid, signal.SIGKILL)  # the client restarts: SMSRUN32 is gone
    wait_for(lambda: not sms_proc.alive(pid))
    after_restart = module_runner(MODULE, site.args(running_policy="defer"))
    assert after_restart["status"] == "upgraded", after_restart
    assert_upgraded(site)


def test_stubborn_hung_instance_fails_and_touches_nothing(site, smsrun, module_runner):
    pids = smsrun(site.client, "stubborn", count=2)
    before = site.snap()
    result = module_runner(MODULE, site.args(hung_signals=["TERM"], stop_timeout=0.3))
    assert result.get("failed") is True, result
    assert "did not exit after TERM within 0.3s" in result["msg"]
    assert "pid %d on client01" % pids[0] in result["msg"] and "Task Manager" in result["msg"]
    assert site.snap() == before
    assert all(sms_proc.alive(pid) for pid in pids)


def test_stubborn_hung_instance_ends_with_kill(site, smsrun, module_runner):
    pids = smsrun(site.client, "stubborn", count=2)
    result = module_runner(MODULE, site.args(stop_timeout=0.3))
    assert result["changed"] is True and result["smsrun32"]["signals"] == ["TERM", "KILL"], result
    assert not any(sms_proc.alive(pid) for pid in pids)
    assert_upgraded(site)


def test_healthy_instance_refusing_to_stop_fails(site, smsrun, module_runner):
    (pid,) = smsrun(site.client, "stubborn")
    before = site.snap()
    result = module_runner(MODULE, site.args(stop_timeout=0.3))
    assert result.get("failed") is True and "pid %d" % pid in result["msg"], result
    assert site.snap() == before


def test_processes_of_other_clients_are_left_alone(tmp_path, smsrun, module_runner):
    site = Site(tmp_path)
    other = lab.make_client(site.hosts, "client02")
    pids = smsrun(other, "idle", count=2)
    result = module_runner(MODULE, site.args())
    assert result["smsrun32"]["found"] == [] and result["changed"] is True
    assert all(sms_proc.alive(pid) for pid in pids)


# --- stands on its own ---------------------------------------------------------


def test_skipped_when_the_logon_server_does_not_serve_the_hotfix(tmp_path, smsrun, module_runner):
    site = Site(tmp_path, served=False)
    hung = smsrun(site.client, "idle", count=2)
    before = site.snap()
    result = module_runner(MODULE, site.args())
    assert result["changed"] is False and result["skipped"] is True and result["status"] == "skipped", result
    assert "\\\\LOGON01\\SMS_SHR" in result["msg"] and "Smsrun32.exe" in result["msg"]
    assert sorted(s["name"] for s in result["stale_files"]) == ["Smsrun32.exe", "Smssrv32.exe"]
    assert site.snap() == before
    assert all(sms_proc.alive(pid) for pid in hung), "a skipped client must not lose its processes"


def test_skipped_when_only_one_file_arrived(tmp_path, module_runner):
    site = Site(tmp_path, served=False)
    folder = os.path.join(site.logon, "Logon.srv", "X86.bin")
    lab.write(os.path.join(folder, "Smsrun32.exe"), payload(site.manifest, "x86", "Smsrun32.exe"))
    result = module_runner(MODULE, site.args())
    assert result["status"] == "skipped" and [s["name"] for s in result["stale_files"]] == ["Smssrv32.exe"]


def test_check_mode_previews_against_the_manifest_before_the_server_has_it(tmp_path, module_runner):
    # A dry run of the whole rollout reaches the clients before the servers
    # have the files: the preview must still show what the client will get.
    site = Site(tmp_path, served=False)
    before = site.snap()
    result = module_runner(MODULE, site.args(), check_mode=True, diff=True)
    assert result["changed"] is True and result.get("projected") is True, result
    assert result["status"] == "upgraded" and "skipped" not in result
    changed = sorted(f["name"].lower() for f in result["files"] if f["changed"])
    assert changed == ["smsrun32.exe", "smssrv32.exe"]
    manifest = {f["name"].lower(): f["sha256"] for f in lab_manifest(site.manifest)["platforms"]["x86"]["files"]}
    for entry in result["files"]:
        if entry["changed"]:
            assert entry["after_sha256"] == manifest[entry["name"].lower()]
    assert "SetupPhase=installed" in result["diff"]["after"] or all(
        i["after"] == "installed" for i in result["ini"] if i["key"] == "SetupPhase"
    )
    assert "does not serve it yet" in result["msg"]
    assert site.snap() == before
    # without check mode the same client is skipped, untouched
    assert module_runner(MODULE, site.args())["status"] == "skipped"
    assert site.snap() == before


def lab_manifest(path):
    import json

    with open(path) as handle:
        return json.load(handle)


# --- rollback --------------------------------------------------------------------


def test_rollback_returns_the_original_bytes(site, smsrun, module_runner):
    bin_before = lab.snapshot(site.bin)
    ini_before = read(site.ini)
    assert module_runner(MODULE, site.args())["changed"] is True
    upgraded = site.snap()

    check = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True, diff=True)
    assert check["changed"] is True and site.snap() == upgraded
    assert "SMS.INI [SMS] CopyListVersion=41" in check["diff"]["after"]

    (pid,) = smsrun(site.client, "idle")
    result = module_runner(MODULE, site.args(state="rolled_back", start_argv=start_argv(site.client)))
    assert result["changed"] is True and result["status"] == "rolled_back", result
    assert result["smsrun32"]["stopped"] == [pid] and result["smsrun32"]["restarted"] is True
    assert result["reboot_required"] is True
    assert lab.snapshot(site.bin) == bin_before  # bytes and dates
    assert read(site.ini) == ini_before

    again = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True)
    assert again["changed"] is False
    again = module_runner(MODULE, site.args(state="rolled_back"))
    assert again["changed"] is False and again["status"] == "unchanged", again


def test_rollback_removes_a_file_the_client_did_not_have(site, module_runner):
    os.unlink(os.path.join(site.bin, "Smssrv32.exe"))
    bin_before = lab.snapshot(site.bin)
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True
    assert os.path.isfile(os.path.join(site.bin, "Smssrv32.exe"))
    module_runner(MODULE, site.args(state="rolled_back"))
    assert lab.snapshot(site.bin) == bin_before


def test_rollback_without_journal_does_nothing(site, module_runner):
    before = site.snap()
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result["changed"] is False and "nothing to roll back" in result["msg"], result
    assert site.snap() == before


def test_rollback_refuses_a_damaged_backup(site, module_runner):
    module_runner(MODULE, site.args())
    backup = os.path.join(site.client, "MS", "SMS", "Hotfix", "Q216552", "backup", "BIN", "Smsrun32.exe")
    lab.write(backup, b"damaged")
    before = lab.snapshot(site.client)
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result.get("failed") is True and backup in result["msg"], result
    assert lab.snapshot(site.client) == before


# --- bad input: a clear per-host error, nothing changed -------------------------


def assert_failed_untouched(site, module_runner, args, *needles):
    before = site.snap()
    result = module_runner(MODULE, args)
    assert result.get("failed") is True, result
    assert result["msg"].startswith("client01: "), result["msg"]
    for needle in needles:
        assert needle in result["msg"], result["msg"]
    assert site.snap() == before
    return result


def test_sms_ini_missing(site, module_runner):
    os.unlink(site.ini)
    assert_failed_untouched(site, module_runner, site.args(), "SMS.INI is missing", site.ini)


def test_sms_ini_malformed(site, module_runner):
    lab.write(site.ini, lab.sms_ini().replace(b"[Local]", b"[Local\r\nthis is not ini"))
    result = assert_failed_untouched(site, module_runner, site.args(), "SMS.INI is malformed", "line 8")
    assert result["line"] == 8


def test_sms_ini_without_logon_server(site, module_runner):
    lab.write(site.ini, lab.sms_ini().replace(b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR", b"Other=1"))
    assert_failed_untouched(site, module_runner, site.args(), "names no logon server")


def test_platform_without_its_bin_folder_on_the_logon_server(tmp_path, module_runner):
    site = Site(tmp_path, logon_platforms=("x86",), client_platform="alpha")
    assert_failed_untouched(
        site, module_runner, site.args(), "has no Alpha.bin for platform alpha", "\\\\LOGON01\\SMS_SHR"
    )


def test_logon_server_share_unreachable(site, module_runner):
    lab.write(site.ini, lab.sms_ini(server="LOGON09"))
    share = os.path.join(site.hosts, "logon09", "SMS", "Logon.srv")
    assert_failed_untouched(
        site,
        module_runner,
        site.args(logon_servers=["LOGON01", "LOGON09"]),
        "logon server share \\\\LOGON09\\SMS_SHR unreachable at %s" % share,
    )


def test_copy_list_missing(site, module_runner):
    os.unlink(os.path.join(site.logon, "Logon.srv", "Cl_nt.txt"))
    assert_failed_untouched(site, module_runner, site.args(), "no copy list Cl_nt.txt")


@pytest.fixture
def read_only():
    """Make a folder read-only: a read-only tmpfs as root (root ignores modes), chmod otherwise."""
    mounts, chmods = [], []

    def make(path):
        if os.geteuid() == 0:
            saved = {}
            for name in os.listdir(path):
                full = os.path.join(path, name)
                saved[name] = (read(full), os.stat(full).st_mtime)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", path], check=True)
            mounts.append(path)
            for name, (data, mtime) in saved.items():
                lab.write(os.path.join(path, name), data, mtime)
            subprocess.run(["mount", "-o", "remount,ro", path], check=True)
        else:
            os.chmod(path, 0o555)
            chmods.append(path)

    yield make
    for path in mounts:
        subprocess.run(["umount", path], check=False)
    for path in chmods:
        os.chmod(path, 0o755)


def test_client_bin_read_only(site, read_only, module_runner):
    read_only(site.bin)
    assert_failed_untouched(site, module_runner, site.args(), "cannot write in %s: it is read-only" % site.bin)


def test_client_bin_missing(site, module_runner):
    shutil.rmtree(site.bin)
    assert_failed_untouched(site, module_runner, site.args(), "%s does not exist" % site.bin)


def test_failure_mid_replacement_puts_back_what_this_run_replaced(site, module_runner, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs

    real = sms_fs.LocalVolume.copy_from
    calls = []

    def flaky(volume, source, src_parts, parts, **kwargs):
        if parts[-2] == "BIN":  # the second client file replaced (backups go elsewhere)
            calls.append(parts)
            if len(calls) == 2:
                raise sms_fs.SmsFileError(
                    "no space left on the device holding %s" % volume.path(parts), path=volume.path(parts)
                )
        return real(volume, source, src_parts, parts, **kwargs)

    monkeypatch.setattr(sms_fs.LocalVolume, "copy_from", flaky)
    bin_before = lab.snapshot(site.bin)
    ini_before = read(site.ini)
    result = module_runner(MODULE, site.args())
    assert result.get("failed") is True and "were put back" in result["msg"], result
    assert lab.snapshot(site.bin) == bin_before
    assert read(site.ini) == ini_before
    # nothing of the failed run is left: no journal, no backups, no folders
    assert not os.path.exists(os.path.join(site.client, "MS", "SMS", "Hotfix")), lab.snapshot(site.client)


def test_bad_signal_name(site, module_runner):
    result = module_runner(MODULE, site.args(hung_signals=["TERM", "NOPE"]))
    assert result.get("failed") is True and "NOPE" in result["msg"]


def test_failure_writing_sms_ini_puts_the_files_back(site, module_runner, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_client_run
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_client import ClientError

    def broken(drive, parts, data, entry, targets, tx, first=None):
        path = drive.path(parts)
        raise ClientError("no space left on the device holding %s: free space and run again" % path, path=path)

    monkeypatch.setattr(sms_client_run, "write_ini_keys", broken)
    bin_before = lab.snapshot(site.bin)
    ini_before = read(site.ini)
    result = module_runner(MODULE, site.args())
    assert result.get("failed") is True and "no space left" in result["msg"], result
    assert "were put back" in result["msg"]
    assert lab.snapshot(site.bin) == bin_before and read(site.ini) == ini_before
    assert not os.path.exists(os.path.join(site.client, "MS", "SMS", "Hotfix")), lab.snapshot(site.client)


def test_rollback_repairs_a_damaged_sms_ini(site, module_runner):
    ini_before = read(site.ini)
    module_runner(MODULE, site.args())
    lab.write(site.ini, b"\x00garbage")
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result["changed"] is True, result
    assert read(site.ini) == ini_before


def test_rollback_ends_a_hung_smsrun32(site, smsrun, module_runner):
    module_runner(MODULE, site.args())
    hung = smsrun(site.client, "idle", count=2)
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result["status"] == "rolled_back" and sorted(result["smsrun32"]["stopped"]) == sorted(hung), result
    assert not any(sms_proc.alive(pid) for pid in hung)
    assert read(os.path.join(site.bin, "Smsrun32.exe")) == lab.original_files("x86")["Smsrun32.exe"]


# --- rollback of SMS.INI: the two keys only ------------------------------------------


def state_dir(site):
    return os.path.join(site.client, "MS", "SMS", "Hotfix", "Q216552")


def diff_lines(result, side):
    return [line for line in result["diff"][side].splitlines() if line.startswith("SMS.INI")]


def test_rollback_puts_back_only_the_two_keys_and_keeps_what_sms_changed_since(site, module_runner):
    lab.write(site.ini, lab.sms_ini(phase="verifying_files"))
    assert module_runner(MODULE, site.args())["changed"] is True
    assert read(site.ini) == lab.sms_ini(version=42)
    # since the upgrade, SMS moved the client to another logon server and wrote keys we do not know
    changed_by_sms = (
        lab.sms_ini(version=42, server="LOGON02").replace(
            b"SMS_Unique_ID=LAB00001\r\n", b"SMS_Unique_ID=LAB00001\r\nNew_Key=\xe9t\xe9\r\n"
        )
        + b"[Vendor Section]\r\nWhatever=1\r\n"
    )
    lab.write(site.ini, changed_by_sms)
    upgraded = site.snap()

    check = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True, diff=True)
    assert check["changed"] is True and check["ini_restore"] == "keys", check
    assert site.snap() == upgraded
    assert diff_lines(check, "before") == ["SMS.INI [SMS] CopyListVersion=42", "SMS.INI [Local] SetupPhase=installed"]
    assert diff_lines(check, "after") == [
        "SMS.INI [SMS] CopyListVersion=41",
        "SMS.INI [Local] SetupPhase=verifying_files",
    ]
    assert "sha256" not in "".join(line for line in check["diff"]["before"].splitlines() if "SMS.INI" in line)
    assert {(i["key"], i["before"], i["after"], i["changed"]) for i in check["ini"]} == {
        ("CopyListVersion", "42", "41", True),
        ("SetupPhase", "installed", "verifying_files", True),
    }

    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result["changed"] is True and result["status"] == "rolled_back", result
    assert read(site.ini) == changed_by_sms.replace(b"CopyListVersion=42", b"CopyListVersion=41").replace(
        b"SetupPhase=installed", b"SetupPhase=verifying_files"
    )
    assert "every other line kept" in result["msg"], result["msg"]
    assert read(os.path.join(site.bin, "Smsrun32.exe")) == lab.original_files("x86")["Smsrun32.exe"]


def test_rollback_with_nothing_else_changed_gives_the_original_bytes_even_for_added_keys(site, module_runner):
    original = b"[SMS]\r\nSMS_Unique_ID=X\r\n[Servers]\r\nCurrent_Logon_Server=\\\\LOGON01\\SMS_SHR"
    lab.write(site.ini, original)  # no CopyListVersion, no [Local], no final newline
    module_runner(MODULE, site.args())
    assert read(site.ini) != original
    result = module_runner(MODULE, site.args(state="rolled_back"), diff=True)
    assert result["changed"] is True and result["ini_restore"] == "keys", result
    assert read(site.ini) == original
    assert diff_lines(result, "after") == [
        "SMS.INI [SMS] CopyListVersion=(absent)",
        "SMS.INI [Local] SetupPhase=(absent)",
    ]


def test_rollback_removes_only_the_line_of_a_key_the_original_lacked(site, module_runner):
    original = lab.sms_ini().replace(b"CopyListVersion=41\r\n", b"")
    lab.write(site.ini, original)
    module_runner(MODULE, site.args())
    assert b"CopyListVersion=42\r\n" in read(site.ini)
    later = read(site.ini).replace(b"Hardware_Scan = 1", b"Hardware_Scan = 0")
    lab.write(site.ini, later)
    module_runner(MODULE, site.args(state="rolled_back"))
    assert read(site.ini) == later.replace(b"CopyListVersion=42\r\n", b"")


def test_rollback_restores_the_whole_file_when_sms_ini_cannot_be_parsed(site, module_runner):
    ini_before = read(site.ini)
    module_runner(MODULE, site.args())
    lab.write(site.ini, lab.sms_ini(version=42) + b"not ini at all\r\n")
    check = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True, diff=True)
    assert check["ini_restore"] == "whole_file" and "cannot be parsed" in check["msg"], check
    assert "%s sha256=" % site.ini in check["diff"]["before"]
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result["changed"] is True and result["ini_restore"] == "whole_file", result
    assert "cannot be parsed" in result["msg"] and "the whole file was restored" in result["msg"], result["msg"]
    assert read(site.ini) == ini_before


# --- the journal is retired after a completed rollback --------------------------------


def test_completed_rollback_retires_the_journal_and_a_second_finds_nothing(site, module_runner):
    module_runner(MODULE, site.args())
    journal = os.path.join(state_dir(site), "journal.json")
    check = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True)
    assert check["changed"] is True and "would be retired" in check["msg"], check
    assert os.path.isfile(journal), "check mode retired the journal"

    result = module_runner(MODULE, site.args(state="rolled_back"))
    retired = result["journal_retired"]
    assert retired and os.path.dirname(retired) == os.path.join(state_dir(site), "retired"), result
    assert not os.path.exists(journal) and not os.path.exists(os.path.join(state_dir(site), "backup"))
    assert os.path.isfile(os.path.join(retired, "journal.json"))
    assert read(os.path.join(retired, "backup", "INI", "SMS.INI")) == lab.sms_ini()
    assert "retired to %s" % retired in result["msg"], result["msg"]

    after = site.snap()
    for check_mode in (True, False):
        again = module_runner(MODULE, site.args(state="rolled_back"), check_mode=check_mode)
        assert again["changed"] is False and again["status"] == "unchanged", again
        assert "nothing to roll back" in again["msg"]
    assert site.snap() == after


def test_a_rollout_after_a_rollback_backs_up_the_files_it_finds_then(site, module_runner):
    module_runner(MODULE, site.args())
    module_runner(MODULE, site.args(state="rolled_back"))
    service_pack = b"Smsrun32.exe from a later service pack"
    lab.write(os.path.join(site.bin, "Smsrun32.exe"), service_pack)
    assert module_runner(MODULE, site.args())["changed"] is True
    assert read(os.path.join(state_dir(site), "backup", "BIN", "Smsrun32.exe")) == service_pack
    module_runner(MODULE, site.args(state="rolled_back"))
    assert read(os.path.join(site.bin, "Smsrun32.exe")) == service_pack


def test_deferred_rollback_keeps_the_journal(site, smsrun, module_runner):
    module_runner(MODULE, site.args())
    smsrun(site.client, "idle")
    result = module_runner(MODULE, site.args(state="rolled_back", running_policy="defer"))
    assert result["status"] == "deferred", result
    assert os.path.isfile(os.path.join(state_dir(site), "journal.json"))


def test_a_journal_that_cannot_be_retired_fails_naming_it(site, module_runner, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, SmsFileError

    def broken(self):
        raise SmsFileError("cannot write in %s (Read-only file system)" % self.root, path=self.root)

    monkeypatch.setattr(BackupJournal, "retire", broken)
    ini_before = read(site.ini)
    module_runner(MODULE, site.args())
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result.get("failed") is True and result["changed"] is True, result
    assert result["msg"].startswith("client01: the original files are back, but setting the journal aside")
    assert os.path.join(state_dir(site), "journal.json") in result["msg"]
    assert read(site.ini) == ini_before


# --- the copy list: 0x85 does not end a line ----------------------------------------


def test_copy_list_comment_with_an_odd_byte_is_not_a_version(site, module_runner):
    path = os.path.join(site.logon, "Logon.srv", "Cl_nt.txt")
    data = read(path)
    assert data.startswith(b"[Copy List]\r\n")
    lab.write(path, b"[Copy List]\r\n; was\x85CopyListVersion=99\r\n" + data[len(b"[Copy List]\r\n") :])
    result = module_runner(MODULE, site.args())
    assert result["copy_list_version"] == "42", result
    assert read(site.ini) == expected_ini()


def test_sms_ini_with_an_odd_byte_in_a_comment_is_upgraded(site, module_runner):
    original = b"; Setup\x85 done\r\n" + lab.sms_ini()
    lab.write(site.ini, original)
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True, result
    assert read(site.ini) == b"; Setup\x85 done\r\n" + expected_ini()


# --- client_name ---------------------------------------------------------------------


def test_messages_name_the_client(site, module_runner):
    result = module_runner(MODULE, site.args(client_name="pc042.corp.example"), check_mode=True)
    assert result["msg"].startswith("pc042.corp.example: "), result["msg"]
    os.unlink(site.ini)
    failed = module_runner(MODULE, site.args(client_name="pc042.corp.example"))
    assert failed["msg"].startswith("pc042.corp.example: SMS.INI is missing"), failed["msg"]
    bad = module_runner(MODULE, site.args(client_name="pc042.corp.example", hung_signals=["NOPE"]))
    assert bad["msg"].startswith("pc042.corp.example: hung_signals"), bad["msg"]
    default = module_runner(MODULE, site.args())
    assert default["msg"].startswith("client01: "), default["msg"]


# --- a client's disk is untrusted (issue "Safety at the edges", item 1) -----------------------
# Each case plants what a person with write access to the client (or a link in
# a share) could, and asserts that the client is failed with a message naming
# it and that nothing changed anywhere: the whole tmp tree (client, servers and
# the "outside" files) is compared byte for byte, with dates.


def outside(site, name="outside.exe", data=b"a file outside the client's drive and the shares"):
    folder = os.path.join(site.root, "outside")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def test_a_logon_server_name_with_a_path_is_refused(site, module_runner):
    # \\..\..\..\tmp\evil: once read as a server called "..", the share path left the shares
    evil = os.path.join(site.root, "evil", "X86.bin")
    os.makedirs(evil)
    for name in ("Smsrun32.exe", "Smssrv32.exe"):
        shutil.copyfile(os.path.join(site.logon, "Logon.srv", "X86.bin", name), os.path.join(evil, name))
    lab.write(site.ini, lab.sms_ini().replace(b"\\\\LOGON01\\SMS_SHR", b"\\\\..\\..\\..\\tmp\\evil"))
    result = assert_failed_untouched(
        site, module_runner, site.args(), "not \\\\NAME\\SMS_SHR with a plain server name", "left untouched"
    )
    assert result["logon_server_entry"] == "\\\\..\\..\\..\\tmp\\evil"


def test_a_server_that_is_not_one_of_the_sites_logon_servers_is_refused(site, module_runner):
    # The client names itself and plants a "share" in its own drive, with a link to an outside file
    share = os.path.join(site.client, "SMS", "Logon.srv", "X86.bin")
    os.makedirs(share)
    os.symlink(outside(site), os.path.join(share, "Smsrun32.exe"))
    lab.write(os.path.join(site.client, "SMS", "Logon.srv", "Cl_nt.txt"), b"[Copy List]\r\nCopyListVersion=99\r\n")
    lab.write(site.ini, lab.sms_ini(server="CLIENT01"))
    assert_failed_untouched(
        site, module_runner, site.args(), "\\\\CLIENT01\\SMS_SHR", "not one of the site's logon servers (LOGON01)"
    )


def test_a_link_in_the_logon_servers_share_is_refused(site, module_runner):
    folder = os.path.join(site.logon, "Logon.srv", "X86.bin")
    os.unlink(os.path.join(folder, "Cli_nt.exe"))
    os.symlink(outside(site), os.path.join(folder, "Cli_nt.exe"))
    assert_failed_untouched(
        site, module_runner, site.args(), os.path.join(folder, "Cli_nt.exe"), "symbolic link", "left untouched"
    )


def test_a_client_bin_that_is_a_link_is_refused(site, module_runner):
    elsewhere = os.path.join(site.root, "outside", "BIN")
    shutil.copytree(site.bin, elsewhere)
    shutil.rmtree(site.bin)
    os.symlink(elsewhere, site.bin)
    assert_failed_untouched(site, module_runner, site.args(), site.bin, "symbolic link")


def test_a_hotfix_state_folder_that_is_a_link_is_refused(site, module_runner):
    elsewhere = os.path.join(site.root, "outside", "Hotfix")
    os.makedirs(elsewhere)
    os.symlink(elsewhere, os.path.join(site.client, "MS", "SMS", "Hotfix"))
    assert_failed_untouched(
        site, module_runner, site.args(), os.path.join(site.client, "MS", "SMS", "Hotfix"), "symbolic link"
    )
    assert os.listdir(elsewhere) == []


def test_an_sms_ini_that_is_a_link_is_refused(site, module_runner):
    target = outside(site, "SMS.INI", lab.sms_ini())
    os.unlink(site.ini)
    os.symlink(target, site.ini)
    assert_failed_untouched(site, module_runner, site.args(), site.ini, "symbolic link")


def test_a_client_file_that_is_a_link_is_refused_before_any_backup(site, module_runner):
    target = outside(site, "secret.bin", b"whatever the link points at must not be copied into a backup")
    os.unlink(os.path.join(site.bin, "Smssrv32.exe"))
    os.symlink(target, os.path.join(site.bin, "Smssrv32.exe"))
    assert_failed_untouched(site, module_runner, site.args(), os.path.join(site.bin, "Smssrv32.exe"), "symbolic link")
    assert not os.path.exists(os.path.join(site.client, "MS", "SMS", "Hotfix"))


@pytest.mark.parametrize("section", [b"[SMS]", b"[Servers]"])
def test_sms_ini_without_its_sms_or_servers_section_is_not_a_client(site, module_runner, section):
    lab.write(site.ini, lab.sms_ini().replace(section, b"[Elsewhere]"))
    assert_failed_untouched(
        site, module_runner, site.args(), "has no %s section" % section.decode(), "not a working SMS client"
    )


def test_stale_temporary_files_of_a_killed_run_are_removed_by_the_next(site, module_runner):
    # a writer that is gone (pid 2**22 + 1 does not exist) left its temporary file
    stale = os.path.join(site.bin, ".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1))
    lab.write(stale, b"half a file")
    check = module_runner(MODULE, site.args(), check_mode=True)
    assert check["stale_temporary_files"] == [stale] and os.path.exists(stale)
    result = module_runner(MODULE, site.args())
    assert result["changed"] is True and not os.path.exists(stale)
    assert_upgraded(site)
    assert not [n for n in os.listdir(site.bin) if n.startswith(".sms-tmp-")]


# --- issue 23: nothing lost, for real ---------------------------------------------

STATE = ("MS", "SMS", "Hotfix", "Q216552")


def state_path(site, *parts):
    return os.path.join(site.client, *(STATE + parts))


def fill_up(folder):
    """Fill the file system of `folder` to the last byte (a real full disk)."""
    import errno

    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


@pytest.fixture(params=["tmpfs", "simulated"])
def full_disk_site(request, tmp_path):
    """A client whose drive fills up right after its first file is replaced.

    tmpfs: the drive (state folder included) is moved onto a 2 MiB tmpfs that
    is filled for real; simulated: every write into BIN fails with ENOSPC from
    then on (the logic, wherever a tmpfs cannot be mounted).
    """
    site = Site(tmp_path)
    site.fs = None
    if request.param == "tmpfs":
        mnt = tmp_path / "small"
        mnt.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (%s); the simulated variant covers the logic" % done.stderr.strip())
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False))
        shutil.copytree(site.client, str(mnt / "client01"), copy_function=shutil.copy2)
        site.client = str(mnt / "client01")
        site.bin = os.path.join(site.client, "MS", "SMS", "BIN")
        site.ini = os.path.join(site.client, "SMS.INI")
        site.fs = str(mnt)
    return site


def test_a_failed_put_back_keeps_the_backup_and_a_rollback_finishes_it(full_disk_site, module_runner, monkeypatch):
    site = full_disk_site
    originals = {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)}
    ini_before = read(site.ini)
    # copies into BIN, sorted: Smsrun32.exe then Smssrv32.exe; the disk is full before the second
    lab.disk_fills_at(monkeypatch, site.bin + os.sep, 2, fill=(lambda: fill_up(site.fs)) if site.fs else None)
    result = module_runner(MODULE, site.args())
    assert result.get("failed") is True and "ALSO failed" in result["msg"], result
    backup = state_path(site, "backup", "BIN", "Smsrun32.exe")
    journal_path = state_path(site, "journal.json")
    assert backup in result["msg"] and journal_path in result["msg"], result["msg"]
    assert result["backups_kept"] == [backup]
    assert read(backup) == originals["Smsrun32.exe"], "the only copy of the original is gone"
    with open(journal_path) as handle:
        entries = json.load(handle)["entries"]
    assert "BIN/smsrun32.exe" in entries, "the journal no longer says what is owed"
    assert read(os.path.join(site.bin, "Smsrun32.exe")) == payload(site.manifest, "x86", "Smsrun32.exe")
    assert read(site.ini) == ini_before
    # space is freed; the rollback finishes what is owed, byte for byte
    monkeypatch.undo()
    if site.fs:
        os.unlink(os.path.join(site.fs, "filler"))
    rolled = module_runner(MODULE, site.args(state="rolled_back"))
    assert not rolled.get("failed") and rolled["changed"] is True, rolled
    for name, data in originals.items():
        assert read(os.path.join(site.bin, name)) == data, name
    assert read(site.ini) == ini_before
    assert not os.path.exists(journal_path), "the rollback left the journal in place"


def test_after_a_failed_put_back_the_next_rollout_converges_and_keeps_what_is_owed(site, module_runner, monkeypatch):
    original = read(os.path.join(site.bin, "Smsrun32.exe"))
    lab.disk_fills_at(monkeypatch, site.bin + os.sep, 2)
    assert module_runner(MODULE, site.args()).get("failed") is True
    monkeypatch.undo()
    done = module_runner(MODULE, site.args())
    assert not done.get("failed") and done["changed"] is True, done
    assert_upgraded(site)
    assert module_runner(MODULE, site.args())["changed"] is False
    module_runner(MODULE, site.args(state="rolled_back"))
    assert read(os.path.join(site.bin, "Smsrun32.exe")) == original


def test_a_client_file_with_a_second_hard_link_is_refused_before_any_backup(site, module_runner):
    secret = outside(site, "secret.bin", b"a file outside every managed folder")
    os.chmod(secret, 0o600)
    target = os.path.join(site.bin, "Smsrun32.exe")
    os.unlink(target)
    os.link(secret, target)
    result = assert_failed_untouched(site, module_runner, site.args(), target, "2 hard links")
    assert result.get("refused") is True
    assert not os.path.exists(os.path.join(site.client, "MS", "SMS", "Hotfix"))


def test_a_served_file_with_a_second_hard_link_is_refused(site, module_runner):
    served = os.path.join(site.logon, "Logon.srv", "X86.bin", "Smsrun32.exe")
    elsewhere = os.path.join(site.root, "outside-served.exe")
    os.link(served, elsewhere)
    assert_failed_untouched(site, module_runner, site.args(), served, "2 hard links")


def test_a_backup_keeps_the_originals_mode_and_owner_and_a_rollback_gives_it_back(site, module_runner):
    target = os.path.join(site.bin, "Smsrun32.exe")
    os.chmod(target, 0o600)
    if os.geteuid() == 0:
        os.chown(target, 4242, 4343)
    module_runner(MODULE, site.args())
    backup = state_path(site, "backup", "BIN", "Smsrun32.exe")
    st = os.stat(backup)
    assert stat_mode(st) == 0o600, oct(stat_mode(st))
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4242, 4343)
    os.unlink(target)  # the rollback must not fall back to 0644 when the file is gone
    module_runner(MODULE, site.args(state="rolled_back"))
    st = os.stat(target)
    assert stat_mode(st) == 0o600, oct(stat_mode(st))
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4242, 4343)


def stat_mode(st):
    import stat as stat_module

    return stat_module.S_IMODE(st.st_mode)


def other_writer(site, monkeypatch, times=1):
    """Another writer changes SMS.INI `times` times inside the run's window (during the SMSRUN32 sample)."""
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_client_run

    real = sms_client_run.smsrun_state
    done = {"n": 0}

    def sample(*args, **kwargs):
        state = real(*args, **kwargs)
        done["n"] += 1
        data = read(site.ini)
        lab.write(site.ini, data.replace(b"[Servers]\r\n", b"[Servers]\r\nAddedBy=ClientSetup\r\n"))
        return state

    monkeypatch.setattr(sms_client_run, "smsrun_state", sample)
    return done


def test_another_writers_change_to_sms_ini_in_the_window_survives(site, module_runner, monkeypatch):
    done = other_writer(site, monkeypatch)
    result = module_runner(MODULE, site.args())
    assert done["n"] == 1
    assert not result.get("failed") and result["changed"] is True, result
    data = read(site.ini)
    assert b"AddedBy=ClientSetup\r\n" in data, "the other writer's change was lost"
    assert data == expected_ini().replace(b"[Servers]\r\n", b"[Servers]\r\nAddedBy=ClientSetup\r\n")
    assert result["ini_rebuilt"] == 1 and "another writer" in result["msg"]
    monkeypatch.undo()
    assert module_runner(MODULE, site.args())["changed"] is False


def test_a_writer_that_never_stops_fails_the_client_cleanly_naming_sms_ini(site, module_runner, monkeypatch):
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs

    real = sms_fs.LocalVolume.write
    writes = {"n": 0}

    def busy(volume, parts, chunks, **kwargs):
        if kwargs.get("unchanged") is not None:  # the other writer gets in just before every rename
            writes["n"] += 1
            with open(site.ini, "ab") as handle:
                handle.write(b"; touched %d\r\n" % writes["n"])
        return real(volume, parts, chunks, **kwargs)

    monkeypatch.setattr(sms_fs.LocalVolume, "write", busy)
    bin_before = lab.snapshot(site.bin)
    result = module_runner(MODULE, site.args())
    assert result.get("failed") is True and site.ini in result["msg"] and "another writer" in result["msg"], result
    assert writes["n"] == 3
    assert lab.snapshot(site.bin) == bin_before, "the files were not put back"
    assert read(site.ini) == lab.sms_ini() + b"".join(b"; touched %d\r\n" % n for n in (1, 2, 3)), (
        "the other writer's last content is not what is on disk"
    )


@pytest.mark.parametrize("folder", [("backup", "BIN"), ("backup", "INI"), ()])
def test_stale_temporary_files_in_the_state_folder_are_removed(site, module_runner, folder):
    module_runner(MODULE, site.args())  # the state folder and its backup folders exist
    stale = state_path(site, *(folder + (".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1),)))
    lab.write(stale, b"half a backup")
    serve_other_version(site)
    check = module_runner(MODULE, site.args(), check_mode=True)
    assert stale in check["stale_temporary_files"] and os.path.exists(stale)
    result = module_runner(MODULE, site.args())
    assert not result.get("failed") and stale in result["stale_temporary_files"], result
    assert not os.path.exists(stale)


def serve_other_version(site):
    """The copy list moves on, so a re-run has work to do."""
    path = os.path.join(site.logon, "Logon.srv", "Cl_nt.txt")
    lab.write(path, read(path).replace(b"CopyListVersion=42", b"CopyListVersion=43"))


WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.sms.hotfix.plugins.module_utils.sms_fs import LocalVolume

def chunks():
    yield b"the first block of a backup"
    print("ready", flush=True)
    time.sleep(60)
    yield b"never"

volume = LocalVolume(sys.argv[2])
volume.makedirs(("backup", "BIN"))
volume.write(("backup", "BIN", "Smsrun32.exe"), chunks())
"""


def test_a_backup_write_killed_by_sigkill_leaves_a_temp_file_the_next_run_removes(site, module_runner):
    from sms_testlib import REPO

    state = state_path(site)
    os.makedirs(state)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, os.path.join(REPO, "collections"), state], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.kill()
        child.wait()
    temps = [n for n in os.listdir(os.path.join(state, "backup", "BIN")) if n.startswith(".sms-tmp-%d-" % child.pid)]
    assert len(temps) == 1, os.listdir(os.path.join(state, "backup", "BIN"))
    result = module_runner(MODULE, site.args())
    assert not result.get("failed") and result["changed"] is True, result
    assert_upgraded(site)
    assert sorted(os.listdir(os.path.join(state, "backup", "BIN"))) == ["Smsrun32.exe", "Smssrv32.exe"]


def test_a_fifo_for_sms_ini_fails_without_ansibles_file_facts(site, module_runner):
    os.unlink(site.ini)
    os.mkfifo(site.ini)
    bin_before = lab.snapshot(site.bin)  # (a snapshot of the whole drive would block opening the FIFO)
    result = module_runner(MODULE, site.args())
    assert result.get("failed") is True and site.ini in result["msg"] and "not a regular file" in result["msg"], result
    # Ansible's add_path_info would say "state": "file", "size": 0; `state` is the state the module ran
    assert result["state"] == "present" and "size" not in result, result
    assert lab.snapshot(site.bin) == bin_before and not os.path.exists(os.path.join(site.client, "MS", "SMS", "Hotfix"))


def test_a_utf16_sms_ini_is_named_as_such_and_left_alone(site, module_runner):
    lab.write(site.ini, lab.sms_ini().decode("latin-1").encode("utf-16"))
    assert_failed_untouched(
        site, module_runner, site.args(), site.ini, "UTF-16 little-endian with a byte-order mark", "Encoding: ANSI"
    )


def test_another_writers_change_to_sms_ini_during_a_rollback_survives(site, module_runner, monkeypatch):
    ini_before = read(site.ini)
    module_runner(MODULE, site.args())
    lab.write(site.ini, read(site.ini) + b"; SMS wrote this since\r\n")  # so the keys mode applies
    done = other_writer(site, monkeypatch)
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert done["n"] == 1 and not result.get("failed"), result
    assert (
        read(site.ini)
        == ini_before.replace(b"[Servers]\r\n", b"[Servers]\r\nAddedBy=ClientSetup\r\n") + b"; SMS wrote this since\r\n"
    )
    assert result["ini_rebuilt"] == 1


def test_a_rollback_removes_stale_temporary_files_of_a_killed_run(site, module_runner):
    module_runner(MODULE, site.args())
    stale = [
        state_path(site, "backup", "BIN", ".sms-tmp-%d-0badc0de-Smsrun32.exe" % (2**22 + 1)),
        os.path.join(site.bin, ".sms-tmp-%d-0badc0de-Smssrv32.exe" % (2**22 + 1)),
    ]
    for path in stale:
        lab.write(path, b"half a file")
    check = module_runner(MODULE, site.args(state="rolled_back"), check_mode=True)
    assert sorted(check["stale_temporary_files"]) == sorted(stale) and all(os.path.exists(p) for p in stale)
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert not result.get("failed") and sorted(result["stale_temporary_files"]) == sorted(stale), result
    assert not any(os.path.exists(p) for p in stale)


def test_a_rollback_whose_put_back_fails_keeps_the_journal_and_a_second_rollback_finishes(
    site, module_runner, monkeypatch
):
    originals = {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)}
    module_runner(MODULE, site.args())
    lab.disk_fills_at(monkeypatch, site.bin + os.sep, 2)  # the second restore finds the disk full
    result = module_runner(MODULE, site.args(state="rolled_back"))
    journal = state_path(site, "journal.json")
    assert result.get("failed") is True and "ALSO failed" in result["msg"] and journal in result["msg"], result
    assert os.path.exists(journal) and os.path.exists(state_path(site, "backup", "BIN", "Smsrun32.exe"))
    monkeypatch.undo()
    again = module_runner(MODULE, site.args(state="rolled_back"))
    assert not again.get("failed"), again
    for name, data in originals.items():
        assert read(os.path.join(site.bin, name)) == data, name


def test_a_rollback_that_fails_half_way_puts_back_what_it_restored_and_keeps_the_journal(
    site, module_runner, monkeypatch
):
    from ansible_collections.sms.hotfix.plugins.module_utils.sms_files import BackupJournal, SmsFileError

    originals = {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)}
    module_runner(MODULE, site.args())
    upgraded = {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)}
    ini_upgraded = read(site.ini)
    journal = os.path.join(state_dir(site), "journal.json")
    journal_before = read(journal)
    real, calls = BackupJournal.restore, []

    def second_fails(self, entry, volume, parts):
        calls.append(parts)
        if len(calls) == 2:
            raise SmsFileError(
                "cannot write in %s (Input/output error)" % volume.path(parts[:-1]), path=volume.path(parts[:-1])
            )
        return real(self, entry, volume, parts)

    monkeypatch.setattr(BackupJournal, "restore", second_fails)
    result = module_runner(MODULE, site.args(state="rolled_back"))
    assert result.get("failed") is True, result
    assert "; the files this run had restored were put back" in result["msg"], result
    assert len(result["restored"]) == 1 and "ALSO" not in result["msg"]
    # The client is as the upgrade left it, and the journal still names every backup.
    assert {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)} == upgraded
    assert read(site.ini) == ini_upgraded and read(journal) == journal_before
    monkeypatch.undo()
    again = module_runner(MODULE, site.args(state="rolled_back"))
    assert not again.get("failed") and again["status"] == "rolled_back", again
    assert {name: read(os.path.join(site.bin, name)) for name in os.listdir(site.bin)} == originals
