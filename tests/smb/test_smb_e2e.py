"""The rollout over SMB, against a real Samba (issue "Reach Windows hosts the way SMS itself does").

Every host of a lab site is reached the way an operator reaches a Windows
site: its shares (the SMS root `SMS_SHRC`, `Logon.srv` as `SMS_SHR`, a
client's `C$`) are served by Samba in a network namespace, and the modules
run on the controller through `sms_access: smb`. Assertions are on the files
on disk behind the shares.

Runs as root (CI is root); otherwise skipped, saying why.
"""

import json
import os
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from samba import available  # noqa: E402
from sms_e2e import MANIFEST, REPO, Run  # noqa: E402
from sms_testlib import sha  # noqa: E402

AVAILABLE, WHY = available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not AVAILABLE, reason=WHY)]
X86 = ("SMS", "Site.srv", "Maincfg.box", "Client.src", "X86.bin")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from smbsite import SmbSite

    smb = SmbSite(tmp_path_factory.mktemp("smb")).start()
    yield smb
    leftovers = smb.stop()
    assert leftovers == [], "Samba left behind: %s" % leftovers


def run(site, tmp_path, playbook="rollout.yml", extravars=None, verbosity=0, on_event=None, name="run"):
    import ansible_runner

    private = tmp_path / name
    private.mkdir()
    reports = tmp_path / (name + "-reports")
    env = {
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "SMS_REPORT_DIR": str(reports),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=REPO,
        playbook=os.path.join(REPO, playbook),
        inventory=site.inventory,
        extravars=extravars or {},
        envvars=env,
        quiet=True,
        verbosity=verbosity,
        event_handler=on_event,
        timeout=900,
    )
    result = Run(runner, str(reports))
    result.private = str(private)
    return result


def listing(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            data = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    data = sha(handle.read())
            out[os.path.relpath(path, root)] = (data, st.st_size if data else None, st.st_mtime_ns if data else None)
    return out


def manifest_hashes(platform):
    with open(MANIFEST) as handle:
        data = json.load(handle)
    return {f["name"].lower(): f["sha256"] for f in data["platforms"][platform]["files"]}


def failures(result):
    return [
        (e["event_data"].get("host"), str((e["event_data"].get("res") or {}).get("msg", "")))
        for e in result.events
        if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
    ]


def test_rollout_rerun_compliance_and_rollback_over_smb(site, tmp_path):
    lab = site.lab
    hosts = os.path.join(lab.root, "hosts")
    before = listing(hosts)
    rollout = run(site, tmp_path, name="rollout")
    assert rollout.rc == 0, rollout.stdout[-4000:]
    # the site server, through its SMS_SHRC share: Client.src holds the hotfix, System.map was bumped
    for platform, folder in (("x86", "X86.bin"), ("alpha", "Alpha.bin")):
        assert manifest_hashes(platform).items() <= lab.files("smssite", *X86[:-1], folder).items()
        # ...and the Maintenance Manager carried it to every logon server, read through SMS_SHRC
        for server in lab.logon_servers():
            assert manifest_hashes(platform).items() <= lab.files(server, "SMS", "Logon.srv", folder).items()
    stage = rollout.results("sms_hotfix_stage")["smssite"]
    assert stage["system_map"]["bumped"] is True and stage["files"][0]["path"].startswith("\\\\")
    # clients over C$: no process table over SMB, so they are left to Client Setup, and say so
    clients = rollout.results("sms_client_upgrade")
    assert sorted(clients) == lab.clients()
    for client, result in clients.items():
        assert result["status"] == "deferred", (client, result)
        assert result["smsrun32"]["hung"] is None and "SMB" in result["smsrun32"]["note"]
        assert lab.ini_value(client, "SetupPhase") == "verify_files"
        assert listing(lab.host(client, "MS", "SMS", "BIN")) == {
            k[len("%s/MS/SMS/BIN/" % client) :]: v for k, v in before.items() if k.startswith("%s/MS/SMS/BIN/" % client)
        }

    again = run(site, tmp_path, name="again")
    assert again.rc == 0 and again.changed() == 0, again.stdout[-4000:]

    compliance = run(site, tmp_path, "playbooks/compliance.yml", name="compliance")
    assert compliance.rc == 0, compliance.stdout[-3000:]
    facts = compliance.results("sms_client_info")
    for result in facts.values():
        state = result["compliance"]
        assert state["compliant"] is False and state["setup_phase"] == "verify_files"
        assert state["smsrun32"]["known"] is False and state["smsrun32"]["hung"] is None

    rollback = run(site, tmp_path, "playbooks/rollback.yml", name="rollback")
    assert rollback.rc == 0, rollback.stdout[-4000:]
    after = listing(hosts)

    # every file outside the product's own state folders is back, byte for byte and dated as before
    def user_files(state):
        return {
            k: v
            for k, v in state.items()
            if v[0] is not None and "/Hotfix/" not in "/" + k + "/" and not k.endswith("/Hotfix")
        }

    changed = {
        k
        for k in set(user_files(before)) | set(user_files(after))
        if user_files(before).get(k) != user_files(after).get(k)
    }
    # the copy lists and System.map carry the bumps the rollout and the rollback made (Q166771)
    assert {k for k in changed if not (k.endswith("System.map") or "/Cl_" in k)} == set(), sorted(changed)


def test_wrong_password_is_refused_and_changes_nothing(site, tmp_path):
    before = listing(os.path.join(site.lab.root, "hosts"))
    site.write_inventory(password="not-the-password")
    try:
        result = run(site, tmp_path, name="wrong")
    finally:
        site.write_inventory()
    assert result.rc != 0
    found = failures(result)
    assert found and any("wrong user or password" in msg for _h, msg in found), found
    assert listing(os.path.join(site.lab.root, "hosts")) == before


def test_a_missing_share_is_refused_and_changes_nothing(site, tmp_path):
    before = listing(os.path.join(site.lab.root, "hosts"))
    site.write_inventory(sms_smb_sms_share="SMS_NOPE")
    try:
        result = run(site, tmp_path, name="noshare")
    finally:
        site.write_inventory()
    assert result.rc != 0
    found = failures(result)
    assert any("SMS_NOPE does not exist" in msg for _h, msg in found), found
    assert listing(os.path.join(site.lab.root, "hosts")) == before


def test_a_file_held_open_on_the_server_fails_cleanly_and_nothing_is_half_written(site, tmp_path):
    """Another program opens a hotfix file in Client.src (no sharing) once the run has passed its plan.

    Samba (unlike Windows) lets a rename replace a file another client holds
    open without FILE_SHARE_DELETE, so the share mode that stops a replace
    here is a hold that shares nothing: the site tier meets it while reading
    the files it is about to replace, fails naming the file, and changes
    nothing; once the file is closed the same holder's re-run goes on.
    """
    import smbclient

    lab = site.lab
    run(site, tmp_path, "playbooks/rollback.yml", name="clean")  # start from the originals
    folder = lab.host("smssite", *X86[:-1], "Alpha.bin")
    name = [n for n in os.listdir(folder) if n.lower() == "smssrv32.exe"][0]
    before = listing(lab.host("smssite", *X86[:-1]))
    address = site.samba.addresses["smssite"]
    unc = "\\\\%s\\SMS_SHRC\\Site.srv\\Maincfg.box\\Client.src\\Alpha.bin\\%s" % (address, name)
    held = []

    def on_event(event):
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and not held and "Take the rollout lock" in data.get("task", ""):
            smbclient.register_session(address, username="smsrolltest", password=site.samba.password)
            held.append(smbclient.open_file(unc, mode="rb", share_access=None))
        return True

    try:
        result = run(site, tmp_path, on_event=on_event, name="held")
    finally:
        for handle in held:
            handle.close()
        smbclient.reset_connection_cache()
    assert held, "the hold never started"
    assert result.rc != 0
    stage = result.results("sms_hotfix_stage")["smssite"]
    assert stage["_event"] == "runner_on_failed"
    assert "held open on the server (sharing violation)" in stage["msg"] and name in stage["msg"], stage["msg"]
    assert listing(lab.host("smssite", *X86[:-1])) == before, "nothing half-written in Client.src"
    # closed again: the same holder's re-run goes on and converges
    again = run(site, tmp_path, name="held-again")
    assert again.rc == 0, again.stdout[-3000:]
    assert manifest_hashes("alpha").items() <= lab.files("smssite", *X86[:-1], "Alpha.bin").items()


def test_a_server_gone_mid_wave_counts_as_unreachable_for_the_wave_gate(site, tmp_path):
    lab = site.lab
    run(site, tmp_path, "playbooks/rollback.yml", name="clean2")
    clients = lab.clients()  # waves 1, 2, 1 of 4: client01 | client02, client03 | client04
    gone, later = clients[1], clients[3]
    untouched = listing(lab.host(later))
    dropped = threading.Event()

    def on_event(event):
        data = event.get("event_data") or {}
        if (
            event.get("event") == "runner_on_ok"
            and data.get("host") == clients[0]
            and data.get("task_action", "").endswith("sms_client_upgrade")
            and not dropped.is_set()
        ):
            site.samba.drop(gone)  # wave 1 is done: one client's server goes away before wave 2
            dropped.set()
        return True

    try:
        result = run(
            site,
            tmp_path,
            on_event=on_event,
            name="midwave",
            extravars={"sms_rollout_waves": [1, 2, 1], "sms_rollout_max_fail_percentage": 20},
        )
    finally:
        if dropped.is_set():
            site.samba.restore(gone)
    assert dropped.is_set()
    assert result.rc != 0
    assert gone in set(result.stats.get("dark") or {}), (result.stats, failures(result))
    assert gone not in set(result.stats.get("failures") or {})
    # wave 2 had one unreachable client of two (50% > 20%): the gate stops wave 3
    gate = [msg for _h, msg in failures(result) if "does not start" in msg]
    assert gate and gone in gate[0] and "wave 3 of 3" in gate[0], failures(result)
    assert later not in result.results("sms_client_upgrade")
    assert listing(lab.host(later)) == untouched
    status = {entry["host"]: entry["status"] for entry in result.report()["clients"]}
    assert status[gone] == "unreachable" and status[later] == "not_reached", status
    # back again: a re-run finishes what is left
    again = run(site, tmp_path, name="after")
    assert again.rc == 0, again.stdout[-3000:]


def test_the_smb_password_is_in_no_output_report_or_journal(site, tmp_path):
    secret = site.samba.password
    result = run(site, tmp_path, verbosity=4, name="secret")
    assert result.rc == 0, result.stdout[-3000:]
    assert secret not in result.stdout
    seen = []
    for top in (result.report_dir, result.private, os.path.join(site.lab.root, "hosts")):
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                if os.path.islink(path) or path == site.inventory:
                    continue
                with open(path, "rb") as handle:
                    if secret.encode() in handle.read():
                        seen.append(path)
    assert seen == [], "the password was written to %s" % seen
    # where the -vvvv output shows the module arguments (ansible-core 2.19; 2.20 and later leave a result's
    # invocation out), the password among them is masked
    if "module_args" in result.stdout:
        assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in result.stdout


def test_a_hard_link_in_client_src_is_refused_over_smb(site, tmp_path):
    """Samba reports the link count: a Client.src file that is also a file outside the share is refused."""
    lab = site.lab
    run(site, tmp_path, "playbooks/rollback.yml", name="clean-link")  # start from the originals
    folder = lab.host("smssite", *X86)
    name = [n for n in os.listdir(folder) if n.lower() == "smsrun32.exe"][0]
    outside = os.path.join(str(lab.root), "outside-the-share.exe")
    os.link(os.path.join(folder, name), outside)
    before = listing(lab.host("smssite", *X86[:-1]))
    try:
        result = run(site, tmp_path, name="hardlink")
    finally:
        os.unlink(outside)
    assert result.rc != 0
    stage = result.results("sms_hotfix_stage")["smssite"]
    assert stage["_event"] == "runner_on_failed"
    assert "2 hard links" in stage["msg"] and name in stage["msg"], stage["msg"]
    assert listing(lab.host("smssite", *X86[:-1])) == before, "Client.src changed"
