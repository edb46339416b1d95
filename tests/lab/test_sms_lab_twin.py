"""Behaviour of the SMS 1.2 lab twin (lab/sms-lab): the tree, the Maintenance
Manager twin, SMSRUN32 processes, determinism, teardown and the payload."""

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from smslab_testutil import TOOL, processes_naming, sms_lab
from smslab import inventory
from smslab.spec import Spec

KB_TABLE = {
    "X86.bin/Smsrun32.exe": (89792, "1999-01-14T23:21:00"),
    "X86.bin/Smssrv32.exe": (89792, "1999-02-04T22:27:00"),
    "Alpha.bin/Smsrun32.exe": (181008, "1999-01-14T23:19:00"),
    "Alpha.bin/Smssrv32.exe": (181008, "1999-02-04T22:27:00"),
}
LOGON_SERVERS = ("smssite", "logon01", "logon02")
COPY_LISTS = ("Cl_nt.txt", "Cl_win95.txt", "Cl_win.txt", "Cl_dos.txt", "Cl_os2.txt")


# -- helpers ------------------------------------------------------------------
def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def utc(path):
    ts = os.stat(path).st_mtime
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def manifest(top):
    """{relative path: (sha256 or 'dir', mtime_ns)} for a whole tree."""
    out = {}
    for folder, dirs, files in os.walk(top):
        for d in dirs:
            p = os.path.join(folder, d)
            out[os.path.relpath(p, top) + "/"] = ("dir", os.stat(p).st_mtime_ns)
        for f in files:
            p = os.path.join(folder, f)
            out[os.path.relpath(p, top)] = (sha(p), os.stat(p).st_mtime_ns)
    return out


def copy_list_versions(root, server):
    """{copy list: CopyListVersion} on one logon server."""
    out = {}
    for name in COPY_LISTS:
        with open(os.path.join(root, "hosts", server, "SMS", "Logon.srv", name), "rb") as fh:
            text = fh.read().decode("ascii")
        section = re.search(r"^\[Copy List\]\r\n(.*?)(?=^\[|\Z)", text, re.M | re.S | re.I).group(1)
        out[name] = int(re.search(r"^CopyListVersion=(\d+)\r$", section, re.M | re.I).group(1))
    return out


def version_of(root, server):
    versions = set(copy_list_versions(root, server).values())
    assert len(versions) == 1, versions
    return versions.pop()


def logon_file(root, server, platform_dir, name):
    return os.path.join(root, "hosts", server, "SMS", "Logon.srv", platform_dir, name)


def client_src(root, platform_dir):
    return os.path.join(root, "hosts", "smssite", "SMS", "Site.srv", "Maincfg.box", "Client.src", platform_dir)


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def smsrun32_table(root):
    """{image path: [pids]} of live SMSRUN32 processes (by /proc comm) of the lab."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as fh:
                if fh.read().strip() != "SMSRUN32":
                    continue
            with open("/proc/%s/cmdline" % d, "rb") as fh:
                args = fh.read().decode().split("\0")
        except OSError:
            continue
        for a in args:
            if a.startswith("--image=" + root + "/hosts/"):
                table.setdefault(a[len("--image=") :], []).append(int(d))
    return table


def cpu_seconds(pids, interval=1.0):
    def ticks(pid):
        with open("/proc/%d/stat" % pid) as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    before = {p: ticks(p) for p in pids}
    time.sleep(interval)
    hz = os.sysconf("SC_CLK_TCK")
    return {p: (ticks(p) - before[p]) / hz for p in pids}


def status(root):
    return json.loads(sms_lab("status", "--root", root).stdout)


# -- payload ------------------------------------------------------------------
def test_payload_matches_kb_table_and_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sms_lab("payload", "--out", a)
    sms_lab("payload", "--out", b)
    first = {rel: sha(a / rel) for rel in KB_TABLE}
    for rel, (size, when) in KB_TABLE.items():
        assert os.path.getsize(a / rel) == size, rel
        assert utc(a / rel) == when, rel
        assert sha(b / rel) == first[rel], rel
        platform = "x86" if rel.startswith("X86") else "alpha"
        with open(a / rel, "rb") as fh:
            assert fh.read(64).startswith(("Q216552 stand-in payload %s %s" % (platform, rel.split("/")[1])).encode())
    assert len(set(first.values())) == 4
    assert sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()) == sorted(KB_TABLE)
    sms_lab("payload", "--out", a)  # idempotent
    assert {rel: sha(a / rel) for rel in KB_TABLE} == first
    assert all(utc(a / rel) == KB_TABLE[rel][1] for rel in KB_TABLE)


# -- the tree -----------------------------------------------------------------
def test_tree_layout_ini_files_and_no_lab_state_in_hosts(lab):
    root = lab("--no-mm", "--no-smsrun")
    hosts = os.path.join(root, "hosts")
    assert sorted(os.listdir(hosts)) == sorted(list(LOGON_SERVERS) + ["client%02d" % i for i in range(1, 13)])
    assert sorted(os.listdir(root)) == ["hosts", "inventory.yml", "lab.json", "run"]

    # Client.src: pre-hotfix files, the x86 run file upper case on the site server
    x86_src = client_src(root, "X86.bin")
    assert sorted(os.listdir(x86_src)) == sorted(
        ["SMSRUN32.EXE", "Smssrv32.exe", "Cli_nt.exe", "Invwin32.exe", "Sender32.dll"]
    )
    assert os.path.getsize(os.path.join(x86_src, "SMSRUN32.EXE")) == 87552
    assert os.path.getsize(os.path.join(x86_src, "Smssrv32.exe")) == 88064
    assert utc(os.path.join(x86_src, "SMSRUN32.EXE")) == "1998-06-22T12:00:00"

    # every logon server holds the same bytes and mtimes, normal names
    for server in LOGON_SERVERS:
        for pdir in ("X86.bin", "Alpha.bin"):
            src = client_src(root, pdir)
            for name in os.listdir(src):
                dest = logon_file(root, server, pdir, name if name != "SMSRUN32.EXE" else "Smsrun32.exe")
                assert sha(dest) == sha(os.path.join(src, name))
                assert os.stat(dest).st_mtime_ns == os.stat(os.path.join(src, name)).st_mtime_ns
        assert version_of(root, server) == 41

    # clients: SMS.INI (CRLF, upper-case server names, round-robin) and BIN
    expected_server = {1: "SMSSITE", 2: "LOGON01", 3: "LOGON02", 4: "SMSSITE", 12: "LOGON02"}
    for i in range(1, 13):
        client = "client%02d" % i
        with open(os.path.join(hosts, client, "SMS.INI"), "rb") as fh:
            raw = fh.read()
        assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
        text = raw.decode("ascii")
        assert "CopyListVersion=41\r\n" in text and "SetupPhase=installed\r\n" in text
        assert "[Inventory Agent]" in text and "Hardware_Scan = 1" in text
        if i in expected_server:
            assert "Current_Logon_Server=\\\\%s\\SMS_SHR\r\n" % expected_server[i] in text
        bin_dir = os.path.join(hosts, client, "MS", "SMS", "BIN")
        names = sorted(os.listdir(bin_dir))
        assert ("SMSSRV32.EXE" in names) == (client == "client02")
        pdir = "Alpha.bin" if i > 10 else "X86.bin"
        for name in names:
            src_name = {"SMSSRV32.EXE": "Smssrv32.exe", "Smsrun32.exe": "Smsrun32.exe"}.get(name, name)
            if pdir == "X86.bin" and src_name == "Smsrun32.exe":
                src_name = "SMSRUN32.EXE"
            assert sha(os.path.join(bin_dir, name)) == sha(os.path.join(client_src(root, pdir), src_name))
    assert os.path.getsize(os.path.join(hosts, "client12", "MS", "SMS", "BIN", "Smsrun32.exe")) == 176640

    # every INI-like file is CRLF-only; no lab state hidden in the host folders
    for folder, _dirs, files in os.walk(hosts):
        for f in files:
            assert not f.startswith("."), os.path.join(folder, f)
            if f.lower().endswith((".ini", ".txt", ".map")):
                with open(os.path.join(folder, f), "rb") as fh:
                    raw = fh.read()
                assert b"\n" not in raw.replace(b"\r\n", b""), f
                assert b"hung" not in raw.lower(), f


def test_build_twice_gives_the_same_lab(lab, tmp_path):
    root = lab("--cycle", "0.5", "--no-smsrun")
    sms_lab("pass-now", "--root", root)  # a converged tree: the twin changes nothing
    first = manifest(os.path.join(root, "hosts"))
    first_top = {
        n: (sha(os.path.join(root, n)), os.stat(os.path.join(root, n)).st_mtime_ns)
        for n in ("inventory.yml", "lab.json")
    }
    lab("--cycle", "0.5", "--no-smsrun")  # build runs `down` first
    sms_lab("pass-now", "--root", root)
    assert manifest(os.path.join(root, "hosts")) == first
    assert {
        n: (sha(os.path.join(root, n)), os.stat(os.path.join(root, n)).st_mtime_ns)
        for n in ("inventory.yml", "lab.json")
    } == first_top
    # another root: the same host tree
    other = lab("--no-mm", "--no-smsrun", "--cycle", "0.5", name="other")
    assert manifest(os.path.join(other, "hosts")) == first


# -- Maintenance Manager twin -------------------------------------------------
def test_replication_copy_list_version_and_skipped_server(lab, tmp_path):
    cycle = 1.0
    root = lab("--cycle", cycle, "--no-smsrun", "--skip", "logon02")
    payload = tmp_path / "payload"
    sms_lab("payload", "--out", payload)
    new_run = payload / "X86.bin" / "Smsrun32.exe"
    new_srv_alpha = payload / "Alpha.bin" / "Smssrv32.exe"
    old_logon02 = sha(logon_file(root, "logon02", "X86.bin", "Smsrun32.exe"))

    # stage in Client.src keeping the on-disk names (as the product would)
    for src, dest in (
        (new_run, os.path.join(client_src(root, "X86.bin"), "SMSRUN32.EXE")),
        (new_srv_alpha, os.path.join(client_src(root, "Alpha.bin"), "Smssrv32.exe")),
    ):
        shutil.copy2(src, dest + ".tmp")
        os.replace(dest + ".tmp", dest)
    with open(os.path.join(root, "run", "mm.state.json")) as handle:
        passes_at_staging = json.load(handle).get("passes", 0)

    def arrived():
        return all(
            os.path.exists(logon_file(root, s, "X86.bin", "Smsrun32.exe"))
            and sha(logon_file(root, s, "X86.bin", "Smsrun32.exe")) == sha(new_run)
            and sha(logon_file(root, s, "Alpha.bin", "Smssrv32.exe")) == sha(new_srv_alpha)
            for s in ("smssite", "logon01")
        )

    assert wait_for(arrived, 20 * cycle), "files did not reach the logon servers"
    # within one cycle: by the first pass that started after the staging (the
    # pass under way while we staged may have missed them), counted from the
    # twin's own log rather than from the wall clock of a busy machine
    copied_in = pass_of_first(root, "copied X86.bin/")
    assert copied_in is not None and copied_in <= passes_at_staging + 2, (copied_in, passes_at_staging)
    for s in ("smssite", "logon01"):
        x86 = os.path.join(root, "hosts", s, "SMS", "Logon.srv", "X86.bin")
        assert "Smsrun32.exe" in os.listdir(x86) and "SMSRUN32.EXE" not in os.listdir(x86)
        assert utc(os.path.join(x86, "Smsrun32.exe")) == "1999-01-14T23:21:00"
    # the skipped server got nothing
    assert sha(logon_file(root, "logon02", "X86.bin", "Smsrun32.exe")) == old_logon02

    # a new file travels under its own name; dot-files (temp files) never do;
    # same bytes with another date get the source's date
    x86_src = client_src(root, "X86.bin")
    with open(os.path.join(x86_src, "Smsapi.dll"), "wb") as fh:
        fh.write(b"new client file")
    with open(os.path.join(x86_src, ".ansible_tmpXYZSmssrv32.exe"), "wb") as fh:
        fh.write(b"half written")
    os.utime(logon_file(root, "logon01", "X86.bin", "Cli_nt.exe"), (1e9, 1e9))

    # a file change alone does not bump CopyListVersion
    sms_lab("pass-now", "--root", root)
    for s in ("smssite", "logon01"):
        x86 = os.path.join(root, "hosts", s, "SMS", "Logon.srv", "X86.bin")
        assert sorted(os.listdir(x86)) == sorted(
            ["Smsrun32.exe", "Smssrv32.exe", "Cli_nt.exe", "Invwin32.exe", "Sender32.dll", "Smsapi.dll"]
        )
    assert (
        os.stat(logon_file(root, "logon01", "X86.bin", "Cli_nt.exe")).st_mtime_ns
        == os.stat(os.path.join(x86_src, "Cli_nt.exe")).st_mtime_ns
    )
    os.unlink(os.path.join(x86_src, ".ansible_tmpXYZSmssrv32.exe"))
    assert [version_of(root, s) for s in LOGON_SERVERS] == [41, 41, 41]

    # a new System.map timestamp (same content) does, on non-skipped servers
    smap = os.path.join(root, "hosts", "smssite", "SMS", "System.map")
    before = sha(smap)
    now = time.time()
    os.utime(smap, (now, now))
    out = sms_lab("pass-now", "--root", root).stdout
    assert "CopyListVersion 42" in out
    assert sha(smap) == before
    assert [version_of(root, s) for s in LOGON_SERVERS] == [42, 42, 41]
    sms_lab("pass-now", "--root", root)  # no new timestamp: no new version
    assert [version_of(root, s) for s in LOGON_SERVERS] == [42, 42, 41]
    assert sha(logon_file(root, "logon02", "X86.bin", "Smsrun32.exe")) == old_logon02
    st = status(root)
    assert st["skip"] == ["logon02"] and st["copy_list_version"] == 42 and st["mm"]["alive"]

    # unskip: logon02 catches up (files and the current version) on the next pass
    sms_lab("unskip", "--root", root, "logon02")
    sms_lab("pass-now", "--root", root)
    assert sha(logon_file(root, "logon02", "X86.bin", "Smsrun32.exe")) == sha(new_run)
    assert [version_of(root, s) for s in LOGON_SERVERS] == [42, 42, 42]

    # skip again by command; another System.map touch bumps only the others
    sms_lab("skip", "--root", root, "logon01")
    os.utime(smap, (now + 5, now + 5))
    sms_lab("pass-now", "--root", root)
    assert [version_of(root, s) for s in LOGON_SERVERS] == [43, 42, 43]
    assert sms_lab("skip", "--root", root, "client01", check=False).returncode == 2


def test_pass_now_fails_without_the_twin(lab):
    root = lab("--no-mm", "--no-smsrun", "--clients", "1", "--alpha", "0", "--hung", "0")
    proc = sms_lab("pass-now", "--root", root, "--timeout", "2", check=False)
    assert proc.returncode != 0 and "not running" in proc.stderr


def test_twin_and_smsrun32_have_bounded_lives(lab):
    root = lab("--cycle", "0.3", "--idle-timeout", "1", "--clients", "2", "--alpha", "0", "--hung", "0")
    mm_pid = status(root)["mm"]["pid"]
    assert mm_pid
    # nothing to do: the twin leaves on its own after its idle timeout
    assert wait_for(lambda: not os.path.exists("/proc/%d/cmdline" % mm_pid) or status(root)["mm"]["alive"] is False, 5)
    assert smsrun32_table(root)
    # the run folder disappears: SMSRUN32s leave within about a second
    shutil.rmtree(os.path.join(root, "run"))
    assert wait_for(lambda: not smsrun32_table(root), 2.5)


# -- SMSRUN32 -----------------------------------------------------------------
def test_hung_client_shows_two_busy_smsrun32(lab):
    root = lab("--no-mm")  # defaults: 12 clients, client01 hung
    table = smsrun32_table(root)
    images = {path.split("/hosts/")[1].split("/")[0]: path for path in table}
    assert sorted(images) == ["client%02d" % i for i in range(1, 13)]
    assert images["client01"] == os.path.join(root, "hosts", "client01", "MS", "SMS", "BIN", "Smsrun32.exe")
    hung = table[images["client01"]]
    healthy = [p for c, path in images.items() if c != "client01" for p in table[path]]
    assert len(hung) == 2 and len(healthy) == 11
    # CPU share per second of wall time; the hung pair aims at 0.6 of a core
    # each. On a loaded 2-core machine they get less: take the best of up to
    # six samples, and ask only that they clearly burn CPU while healthy ones
    # sleep (the product's threshold is tested in its own unit tests).
    best = {}
    for _sample in range(6):
        rate = {p: s / 1.0 for p, s in cpu_seconds(hung + healthy[:3], 1.0).items()}
        best = {p: max(best.get(p, 0.0), r) for p, r in rate.items()}
        if all(best[p] > 0.25 for p in hung):
            break
    for pid in hung:
        assert best[pid] > 0.15, best
    for pid in healthy[:3]:
        assert best[pid] < 0.05, best
    st = status(root)
    assert sorted(st["smsrun32"]["client01"]) == sorted(hung)
    assert st["mm"]["alive"] is False


def test_smsrun_starts_one_idle_instance_and_returns(lab):
    root = lab("--no-mm", "--no-smsrun", "--clients", "3", "--alpha", "1", "--hung", "0")
    started = time.monotonic()
    sms_lab("smsrun", "--root", root, "--host", "client03")
    assert time.monotonic() - started < 3
    table = smsrun32_table(root)
    image = os.path.join(root, "hosts", "client03", "MS", "SMS", "BIN", "Smsrun32.exe")
    assert list(table) == [image] and len(table[image]) == 1
    assert cpu_seconds(table[image], 0.5)[table[image][0]] < 0.05
    proc = sms_lab("smsrun", "--root", root, "--host", "nosuch", check=False)
    assert proc.returncode == 2
    # --hung starts two instances
    sms_lab("smsrun", "--root", root, "--host", "client01", "--hung", "--lifetime", "5")
    assert len(smsrun32_table(root)[image.replace("client03", "client01")]) == 2


# -- teardown -----------------------------------------------------------------
def test_down_leaves_no_process_and_no_files(lab, tmp_path):
    root = lab("--cycle", "1")
    sms_lab("smsrun", "--root", root, "--host", "client05", "--stubborn")
    assert len(processes_naming(root)) >= 14  # twin + 13 SMSRUN32
    sms_lab("down", "--root", root)
    assert processes_naming(root) == []
    assert not os.path.exists(root)
    sms_lab("down", "--root", root)  # idempotent
    # never removes a folder that is not a lab
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert sms_lab("down", "--root", precious, check=False).returncode == 2
    assert (precious / "notes.txt").exists()


# -- inventory ----------------------------------------------------------------
def test_inventory_groups_vars_and_static_version(lab):
    yaml = pytest.importorskip("yaml")
    root = lab("--no-mm", "--no-smsrun")
    with open(os.path.join(root, "inventory.yml")) as fh:
        text = fh.read()
    assert sms_lab("inventory", "--root", root).stdout == text
    inv = yaml.safe_load(text)["all"]
    v = inv["vars"]
    assert v["ansible_connection"] == "local"
    assert v["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    assert v["sms_lab_root"] == root and v["sms_lab_tool"] == TOOL
    assert v["sms_drive_root"] == "{{ sms_lab_root }}/hosts/{{ inventory_hostname }}"
    assert v["sms_share_path_pattern"] == "{{ sms_lab_root }}/hosts/{server}/SMS/Logon.srv"
    assert v["sms_replication_trigger_argv"] == [
        "{{ ansible_playbook_python }}",
        "{{ sms_lab_tool }}",
        "pass-now",
        "--root",
        "{{ sms_lab_root }}",
    ]
    assert v["sms_client_smsrun_argv"][2:] == [
        "smsrun",
        "--root",
        "{{ sms_lab_root }}",
        "--host",
        "{{ inventory_hostname }}",
    ]
    assert v["sms_client_restart"] == "service"
    for action in ("start", "stop", "status"):
        assert v["sms_client_service_%s_argv" % action][2:] == [
            "service",
            "--root",
            "{{ sms_lab_root }}",
            "--host",
            "{{ inventory_hostname }}",
            action,
        ]
    assert v["sms_client_reboot_stand_in_argv"][2:] == [
        "reboot",
        "--root",
        "{{ sms_lab_root }}",
        "--host",
        "{{ inventory_hostname }}",
    ]
    assert 0 < v["sms_client_verify_seconds"] < v["sms_client_canary_verify_seconds"] <= 5
    ch = inv["children"]
    assert list(ch["site_server"]["hosts"]) == ["smssite"]
    assert list(ch["logon_servers"]["hosts"]) == list(LOGON_SERVERS)
    x86 = ch["clients"]["children"]["clients_x86"]
    alpha = ch["clients"]["children"]["clients_alpha"]
    assert x86["vars"] == {"sms_client_platform": "x86"}
    assert alpha["vars"] == {"sms_client_platform": "alpha"}
    assert list(x86["hosts"]) == ["client%02d" % i for i in range(1, 11)]
    assert list(alpha["hosts"]) == ["client11", "client12"]

    static = sms_lab("inventory", "--static").stdout
    assert static == inventory.render_static(Spec())
    sv = yaml.safe_load(static)["all"]["vars"]
    assert sv["sms_lab_root"] == (
        "{{ lookup('ansible.builtin.env', 'SMS_LAB_ROOT') | default(inventory_dir ~ '/../../.lab', true) }}"
    )
    assert sv["sms_lab_tool"] == (
        "{{ lookup('ansible.builtin.env', 'SMS_LAB_TOOL') | default(inventory_dir ~ '/../../lab/sms-lab', true) }}"
    )
    assert yaml.safe_load(static)["all"]["children"] == ch

    ansible_inventory = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if os.path.exists(ansible_inventory):
        out = subprocess.run(
            [ansible_inventory, "-i", os.path.join(root, "inventory.yml"), "--list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        groups = json.loads(out)
        assert sorted(groups["clients_alpha"]["hosts"]) == ["client11", "client12"]
        assert groups["logon_servers"]["hosts"] == list(LOGON_SERVERS)


def test_the_committed_lab_inventory_matches_the_default_lab():
    """inventories/lab/hosts.yml is what the lab builder writes for its default lab."""
    committed = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "inventories", "lab", "hosts.yml"
    )
    with open(committed) as handle:
        assert handle.read() == inventory.render_static(Spec()), (
            "regenerate it: lab/sms-lab inventory --static > inventories/lab/hosts.yml"
        )


def pass_of_first(root, text):
    """The number of the twin's pass whose log first mentions `text`."""
    number = 1
    with open(os.path.join(root, "run", "mm.log"), encoding="utf-8") as handle:
        for line in handle:
            if text in line:
                return number
            match = re.search(r"pass (\d+) done", line)
            if match:
                number = int(match.group(1)) + 1
    return None


# -- the symptom of Q216552 and the client service (issue 27) -----------------
def _smsrun(root, host):
    return json.loads(sms_lab("status", "--root", root).stdout)["smsrun32"].get(host, [])


def _cpu_percent(pids, window=0.5):
    tck = os.sysconf("SC_CLK_TCK")

    def ticks(pid):
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = {p: ticks(p) for p in pids}
    time.sleep(window)
    return {p: 100.0 * (ticks(p) - before[p]) / tck / window for p in pids}


def _install_hotfix_smsrun(root, host):
    from smslab import content

    path = os.path.join(root, "hosts", host, "MS", "SMS", "BIN", "Smsrun32.exe")
    with open(path, "wb") as fh:
        fh.write(content.payload_bytes("x86", "Smsrun32.exe"))


def test_ie401_setup_hangs_the_old_smsrun32_as_the_kb_says_and_not_the_hotfix(lab):
    root = lab("--logon-servers", "1", "--clients", "2", "--alpha", "0", "--hung", "0", "--no-mm")
    (healthy,) = _smsrun(root, "client01")
    out = sms_lab("ie-setup", "--root", root, "--host", "client01", "--lifetime", "4").stdout
    assert "the pre-hotfix SMSRUN32 hangs (Q216552)" in out, out
    hung = _smsrun(root, "client01")
    assert len(hung) == 2 and healthy not in hung  # Task Manager would show two instances
    cpu = _cpu_percent(hung)
    # they burn CPU, spinning 95 % of each period (the KB's > 90 %); on two cores shared with other work
    # the share measured is lower, so the check is that they burn, not the exact figure
    assert sum(cpu.values()) > 40, cpu
    # while the per-user setup runs, a pre-hotfix SMSRUN32 started again hangs again
    sms_lab("smsrun", "--root", root, "--host", "client01")
    assert len(_smsrun(root, "client01")) == 4
    # the hotfix's binary is not affected: one healthy instance
    _install_hotfix_smsrun(root, "client02")
    out = sms_lab("ie-setup", "--root", root, "--host", "client02").stdout
    assert "its SMSRUN32 is the hotfix's, not affected" in out, out
    (one,) = _smsrun(root, "client02")
    sms_lab("smsrun", "--root", root, "--host", "client02")
    assert len(_smsrun(root, "client02")) == 2  # the one before and the one just started: both idle
    assert all(value < 50 for value in _cpu_percent(_smsrun(root, "client02")).values())
    sms_lab("ie-setup", "--root", root, "--host", "client01", "--done")
    assert not os.path.exists(os.path.join(root, "run", "ie401.client01.json"))


def test_the_client_service_stand_in_starts_stops_and_can_be_made_to_fail(lab):
    root = lab("--logon-servers", "1", "--clients", "1", "--alpha", "0", "--hung", "0", "--no-mm", "--no-smsrun")

    def service(action):
        return sms_lab("service", "--root", root, "--host", "client01", action, check=False)

    assert service("status").returncode == 3
    started = service("start")
    assert started.returncode == 0 and "started (pid" in started.stdout
    assert service("status").returncode == 0
    pid = int(started.stdout.rsplit("pid ", 1)[1].rstrip(")\n"))
    with open("/proc/%d/comm" % pid) as fh:
        assert fh.read().strip() == "SMSSRV32"
    assert service("stop").returncode == 0 and service("status").returncode == 3
    sms_lab("service-fault", "--root", root, "--host", "client01")
    failed = service("start")
    assert failed.returncode == 1 and "failed to start" in failed.stderr
    assert service("status").returncode == 3
    sms_lab("service-fault", "--root", root, "--host", "client01", "--clear")
    assert service("start").returncode == 0


def test_the_twins_reboot_restarts_the_clients_processes(lab):
    root = lab("--logon-servers", "1", "--clients", "1", "--alpha", "0", "--hung", "1", "--no-mm")
    before = _smsrun(root, "client01")
    assert len(before) == 2
    out = sms_lab("reboot", "--root", root, "--host", "client01").stdout
    assert "rebooted (lab stand-in" in out
    after = _smsrun(root, "client01")
    assert len(after) == 1 and not set(after) & set(before)
    assert sms_lab("service", "--root", root, "--host", "client01", "status", check=False).returncode == 0
    sms_lab("service-fault", "--root", root, "--host", "client01")
    assert sms_lab("reboot", "--root", root, "--host", "client01", check=False).returncode == 1
