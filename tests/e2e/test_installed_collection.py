"""The collection as a collection user has it: `ansible-galaxy collection
build`, the tarball installed into an empty collections path, every entry
point run by FQCN (`ansible-playbook sms.hotfix.rollout`) from a folder
outside the checkout, with no ansible.cfg of the checkout, against a lab twin.

The hotfix lives where the operator puts it (here: a folder of the test
holding a copy of the checkout's manifest.json and payload), named by
sms_hotfix_manifest; the collection ships none. The report callback is
enabled as README says a collection user enables it (ANSIBLE_CALLBACKS_ENABLED).
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from sms_e2e import MANIFEST, REPO, load_manifest_json

pytestmark = pytest.mark.slow

BIN = os.path.dirname(sys.executable)
ENTRY_POINTS = (
    "rollout",
    "plan",
    "site",
    "logon",
    "clients",
    "unlock",
    "rollback",
    "compliance",
    "report",
    "on_failure",
)
HOTFIX = load_manifest_json()
WANT = {
    platform: {f["name"].lower(): f["sha256"] for f in spec["files"]} for platform, spec in HOTFIX["platforms"].items()
}
DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin"}


def user_env(collections, **extra):
    """A collection user's environment: the installed collection's path only, nothing of the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "SMS_", "MOLECULE_", "PYTEST_"))
    }
    env.update(
        {
            "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    env.update(extra)
    return env


def run(argv, cwd, env, timeout=900):
    return subprocess.run(argv, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tarball, collections path, a working folder outside the checkout)."""
    top = tmp_path_factory.mktemp("installed")
    work = top / "work"
    work.mkdir()
    env = user_env(top / "collections")
    built = run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(top / "dist"), REPO],
        cwd=work,
        env=env,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tarballs = os.listdir(top / "dist")
    assert tarballs == ["sms-hotfix-%s.tar.gz" % galaxy_version()], tarballs
    tarball = top / "dist" / tarballs[0]
    done = run(
        [
            os.path.join(BIN, "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            str(tarball),
            "-p",
            str(top / "collections"),
        ],
        cwd=work,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.path.isfile(top / "collections" / "ansible_collections" / "sms" / "hotfix" / "MANIFEST.json")
    return tarball, top / "collections", work


def galaxy_version():
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["version"]


@pytest.fixture
def hotfix_store(tmp_path):
    """The operator's hotfix folder, outside the checkout: manifest.json with its payload beside it."""
    store = tmp_path / "hotfixes" / "Q216552"
    shutil.copytree(os.path.dirname(MANIFEST), store)
    assert os.path.isdir(store / "payload"), "no payload in the checkout: run make payload"
    return store / "manifest.json"


def playbook(installed, name, lab, *args, env=None):
    _tarball, collections, work = installed
    return run(
        [os.path.join(BIN, "ansible-playbook"), "-i", lab.inventory, "sms.hotfix." + name, *args],
        cwd=work,
        env=env or user_env(collections),
    )


def has_hotfix(files, platform):
    return all(files.get(name) == sha for name, sha in WANT[platform].items())


def platform_of(lab, client):
    with open(lab.inventory) as handle:
        return "alpha" if "%s:" % client in handle.read().split("clients_alpha:", 1)[1] else "x86"


def test_the_tarball_holds_what_a_collection_user_runs_and_nothing_of_the_checkouts_tests(installed):
    tarball, collections, _work = installed
    with tarfile.open(tarball) as archive:
        names = {member.name.rstrip("/") for member in archive.getmembers()}
    tops = {name.split("/", 1)[0] for name in names}
    for needed in ("MANIFEST.json", "meta", "plugins", "roles", "playbooks", "README.md"):
        assert needed in tops, needed
    for name in ENTRY_POINTS:
        assert "playbooks/%s.yml" % name in names, name
    assert {
        "meta/runtime.yml",
        "playbooks/vars/rollout.yml",
        "plugins/callback/sms_rollout_report.py",
        "awx/sms_workflow_report.py",
        "bin/sms-hotfix-manifest",
    } <= names
    for left_out in (
        "tests",
        "fleet",
        "benchmarks",
        "lab",
        "molecule",
        "hotfixes",
        "collections",
        "Makefile",
        "ansible.cfg",
        "pytest.ini",
        "requirements.txt",
        "requirements-2.19.lock",
        "requirements-2.20.lock",
        "requirements-2.21.lock",
        "execution-environment.yml",
        ".venv",
        ".lab",
        "reports",
        ".ci",
    ):
        assert left_out not in tops, left_out
    # the AWX side is the checkout's, but for the report node's program; no screenshot, no payload
    assert {name for name in names if name.startswith("awx/")} == {"awx/sms_workflow_report.py"}
    assert not [name for name in names if name.endswith((".png", ".exe", ".EXE", ".pyc", ".tar.gz"))]
    # no hotfix: no hotfix manifest (MANIFEST.json is the collection's own), no payload folder
    assert not [name for name in names if name.endswith("manifest.json") or "payload" in name.split("/")]
    installed_root = collections / "ansible_collections" / "sms" / "hotfix"
    assert sorted(os.listdir(installed_root / "playbooks")) == sorted(
        name for name in os.listdir(os.path.join(REPO, "playbooks")) if name != "collections"
    )


def test_every_entry_point_is_found_by_its_fqcn(installed):
    _tarball, collections, work = installed
    result = run(
        [os.path.join(BIN, "ansible-playbook"), "--syntax-check", *("sms.hotfix." + name for name in ENTRY_POINTS)],
        cwd=work,
        env=user_env(collections),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # each one is the installed collection's, not the checkout's
    root = collections / "ansible_collections" / "sms" / "hotfix" / "playbooks"
    for name in ENTRY_POINTS:
        assert "playbook: %s" % (root / (name + ".yml")) in result.stdout.splitlines(), name
    # (the running virtualenv's own paths aside: Python's warnings name its site-packages)
    venv = os.path.dirname(BIN)
    said = [line for line in (result.stdout + result.stderr).splitlines() if venv not in line]
    assert not [line for line in said if REPO in line], said


def test_without_sms_hotfix_manifest_the_plan_refuses_says_how_and_changes_nothing(installed, make_lab, hotfix_store):
    _tarball, collections, work = installed
    lab = make_lab(no_mm=True)
    before = lab.snapshot()
    # the report callback not enabled: refused first, saying how a collection user enables it
    result = playbook(installed, "rollout", lab)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "ANSIBLE_CALLBACKS_ENABLED=sms.hotfix.sms_rollout_report" in out, out[-3000:]
    assert "ANSIBLE_CONFIG=" not in out, "an installed collection has no ansible.cfg to name"
    assert lab.snapshot() == before, "a refused run changed the lab"
    result = playbook(
        installed, "rollout", lab, env=user_env(collections, ANSIBLE_CALLBACKS_ENABLED="sms.hotfix.sms_rollout_report")
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "set sms_hotfix_manifest to the path of the hotfix's manifest.json" in out, out[-3000:]
    tool = os.path.join(str(collections), "ansible_collections", "sms", "hotfix", "bin", "sms-hotfix-manifest")
    assert tool + " record --manifest" in out and "make payload" in out
    recap = out.split("PLAY RECAP", 1)[1]
    assert "localhost" in recap and "smssite" not in recap and "client01" not in recap, recap
    assert lab.snapshot() == before, "a refused run changed the lab"
    # the tool the message names runs from the installed collection
    verified = run(
        [sys.executable, tool, "verify", "--manifest", str(hotfix_store)], cwd=work, env=user_env(collections)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "manifest and payload verified" in verified.stdout


def test_rollout_report_and_rollback_run_by_fqcn_from_the_installed_collection(
    installed, make_lab, hotfix_store, tmp_path
):
    _tarball, collections, _work = installed
    lab = make_lab(cycle=2, hung=0)
    clients = lab.clients()
    before = {c: (lab.snapshot(c, "MS", "SMS", "BIN"), lab.sms_ini(c)) for c in clients}
    site_before = lab.snapshot("smssite", "SMS", "Site.srv", "Maincfg.box", "Client.src")
    reports = tmp_path / "reports"
    env = user_env(collections, ANSIBLE_CALLBACKS_ENABLED="sms.hotfix.sms_rollout_report", SMS_REPORT_DIR=str(reports))
    hotfix = "sms_hotfix_manifest=%s" % hotfix_store

    rollout = playbook(installed, "rollout", lab, "-e", hotfix, env=env)
    assert rollout.returncode == 0, (rollout.stdout + rollout.stderr)[-3000:]
    for client in clients:
        assert has_hotfix(lab.files(client, "MS", "SMS", "BIN"), platform_of(lab, client)), client
        assert lab.ini_value(client, "SetupPhase") == "installed"
    for platform, folder in DIRS.items():
        assert has_hotfix(lab.files("smssite", "SMS", "Site.srv", "Maincfg.box", "Client.src", folder), platform)
    # the callback, enabled by the environment, wrote the run's report
    (folder,) = os.listdir(reports)
    with open(reports / folder / "report.json") as handle:
        report = json.load(handle)
    assert report["ok"] is True and report["playbook"] == "rollout.yml"
    assert sorted(c["host"] for c in report["clients"] if c["status"] == "done") == clients
    assert "SMS rollout Q216552" in rollout.stdout

    # compliance reads the clients' state: every one has the hotfix
    compliant = playbook(installed, "compliance", lab, "-e", hotfix, "-e", "sms_compliance_fail=true", env=env)
    assert compliant.returncode == 0, (compliant.stdout + compliant.stderr)[-3000:]
    assert '"compliant: %d/%d"' % (len(clients), len(clients)) in compliant.stdout

    # the workflow report node's program runs from the installed collection too
    merged = playbook(installed, "report", lab, "-e", "sms_report_workflow_dir=%s" % reports, env=env)
    assert merged.returncode == 0, (merged.stdout + merged.stderr)[-3000:]
    with open(reports / "workflow" / "report.json") as handle:
        assert sorted(c["host"] for c in json.load(handle)["clients"] if c["status"] == "done") == clients

    rollback = playbook(installed, "rollback", lab, "-e", hotfix, env=env)
    assert rollback.returncode == 0, (rollback.stdout + rollback.stderr)[-3000:]
    for client in clients:
        assert (lab.snapshot(client, "MS", "SMS", "BIN"), lab.sms_ini(client)) == before[client], client
    assert lab.snapshot("smssite", "SMS", "Site.srv", "Maincfg.box", "Client.src") == site_before
    after = playbook(installed, "compliance", lab, "-e", hotfix, "-e", "sms_compliance_fail=true", env=env)
    assert after.returncode != 0 and '"compliant: 0/%d"' % len(clients) in after.stdout, after.stdout[-3000:]
