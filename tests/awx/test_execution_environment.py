"""execution-environment.yml: ansible-builder (3) makes its build context here
(no container engine is needed for that), from the project's own pins and
nothing from Galaxy. Building the image needs podman or docker: not here."""

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from awx_rehearsal import REPO

EE_FILE = os.path.join(REPO, "execution-environment.yml")
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")
CURRENT_CORE_LINE = ">=2.21,<2.22"


def pins(path):
    """name (lower case) -> version of every `name==version` line."""
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[name.strip().lower()] = version.split()[0].strip()
    return found


def create(ee_file, context):
    assert os.path.exists(BUILDER), "ansible-builder is not installed: run make awx-deps"
    return subprocess.run(
        [BUILDER, "create", "-f", str(ee_file), "-c", str(context), "--output-filename", "Containerfile"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(os.path.dirname(ee_file)),
        check=False,
    )


def test_ansible_builder_makes_the_context_from_the_projects_pins_and_nothing_from_galaxy(tmp_path):
    context = tmp_path / "context"
    result = create(EE_FILE, context)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(EE_FILE, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    assert spec["version"] == 3 and "galaxy" not in spec["dependencies"]

    containerfile = (context / "Containerfile").read_text()
    lock = pins(os.path.join(REPO, "requirements-2.21.lock"))  # the EE runs the current line
    refs = sorted(re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile).group(1).split())
    # ansible-core of the current line (2.21), on the Python it needs (3.12+)
    assert len(refs) == 2 and refs[0].startswith("ansible-core==") and refs[1].startswith("ansible-runner=="), refs
    assert Version(refs[0].split("==")[1]) in SpecifierSet(CURRENT_CORE_LINE), refs
    assert refs[1] == "ansible-runner==%s" % lock["ansible-runner"]
    python = re.search(r'ARG PYCMD="/usr/bin/python(3\.\d+)"', containerfile)
    assert python and Version(python.group(1)) >= Version("3.12"), containerfile[:400]
    assert 'ARG EE_BASE_IMAGE="%s"' % spec["images"]["base_image"]["name"] in containerfile
    assert "AS galaxy" not in containerfile and "check_galaxy" not in containerfile
    # the one ansible-galaxy call installs the collection's own tarball, offline (test below)
    galaxy = [line for line in containerfile.splitlines() if "ansible-galaxy" in line]
    assert len(galaxy) == 1 and " collection install --offline /tmp/sms-hotfix-" in galaxy[0], galaxy
    assert "ENV TZ=UTC" in containerfile

    # the run-time Python needs, as requirements-2.21.lock pins them
    ee_pins = pins(os.path.join(REPO, spec["dependencies"]["python"]))
    assert ee_pins and all(lock.get(name) == version for name, version in ee_pins.items()), (ee_pins, lock)
    assert pins(str(context / "_build" / "requirements.txt")) == ee_pins
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "openssh-clients [platform:rpm]" in bindep


def test_ansible_builder_refuses_a_key_version_3_does_not_know(tmp_path):
    """What makes the test above mean something: the file is checked against
    builder's v3 schema, not taken on trust."""
    for name in ("requirements-ee.txt", "bindep.txt"):
        shutil.copy(os.path.join(REPO, name), tmp_path / name)
    with open(EE_FILE, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    spec["dependencies"]["colections"] = "requirements.yml"
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(spec))
    result = create(tmp_path / "execution-environment.yml", tmp_path / "context")
    assert result.returncode != 0
    assert "colections" in result.stdout + result.stderr


# ---- the collection's run-time needs, found in its code ----------------------

SHIPPED_PROGRAMS = ("plugins", "awx/sms_workflow_report.py", "bin/sms-hotfix-manifest", "bin/sms-report")
EE_PYTHON = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_system": "Linux",
    "extra": "",
}


def imported_top_names(path):
    """Top-level module names a Python file imports (absolute imports only)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports():
    """name -> files, for every import of the shipped code that is neither the standard library nor Ansible."""
    found = {}
    for entry in SHIPPED_PROGRAMS:
        top = os.path.join(REPO, entry)
        paths = (
            [top]
            if os.path.isfile(top)
            else [
                os.path.join(folder, name)
                for folder, _dirs, files in os.walk(top)
                for name in files
                if name.endswith(".py")
            ]
        )
        for path in paths:
            for name in imported_top_names(path):
                if name not in sys.stdlib_module_names and name not in ("ansible", "ansible_collections", "__future__"):
                    found.setdefault(name, []).append(os.path.relpath(path, REPO))
    return found


def distribution_closure(names):
    """Canonical distribution names of what provides `names`, and everything they require on the EE's
    Python (extras not asked for left out), from the installed metadata of this test's virtualenv."""
    providers = importlib.metadata.packages_distributions()
    todo = []
    for name in names:
        assert name in providers, "%s is imported but no installed distribution provides it" % name
        todo += providers[name]
    seen = set()
    while todo:
        dist = canonicalize_name(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        for line in importlib.metadata.requires(dist) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(EE_PYTHON):
                todo.append(requirement.name)
    return seen


def test_the_context_carries_every_run_time_need_of_the_collection_and_the_collection_itself(tmp_path):
    # the EE file with its inputs as in the checkout, and the tarball `make collection` builds
    project = tmp_path / "project"
    project.mkdir()
    with open(EE_FILE, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    for name in (os.path.basename(EE_FILE), spec["dependencies"]["python"], spec["dependencies"]["system"]):
        shutil.copy(os.path.join(REPO, name), project / name)
    built = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"),
            "collection",
            "build",
            "--output-path",
            str(project / "dist"),
            REPO,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    tarball_name = "sms-hotfix-%s.tar.gz" % version
    assert os.listdir(project / "dist") == [tarball_name]
    context = tmp_path / "context"
    result = create(project / os.path.basename(EE_FILE), context)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No matches" not in result.stdout + result.stderr

    # every library the shipped code imports, and what those need in turn, is pinned in the context
    imports = third_party_imports()
    assert {"smbclient", "smbprotocol", "jinja2", "yaml"} <= set(imports), imports
    needed = distribution_closure(imports)
    assert {"smbprotocol", "pyspnego", "cryptography", "jinja2", "markupsafe", "pyyaml"} <= needed, needed
    in_context = {
        canonicalize_name(name): version for name, version in pins(str(context / "_build" / "requirements.txt")).items()
    }
    assert sorted(needed - set(in_context)) == [], "run-time needs missing from the EE: %s" % sorted(
        needed - set(in_context)
    )
    installed = {name: importlib.metadata.version(name) for name in needed}
    assert {name: in_context[name] for name in needed} == installed, "the EE pins other versions than the tests ran"

    # the collection itself: the tarball built from this checkout, installed in the final image, offline
    copied = context / "_build" / "collection" / tarball_name
    assert copied.read_bytes() == (project / "dist" / tarball_name).read_bytes()
    with tarfile.open(copied) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("sms", "hotfix", version)
    containerfile = (context / "Containerfile").read_text()
    final = containerfile.split("FROM base AS final", 1)[1]
    assert "COPY _build/collection/%s /tmp/%s" % (tarball_name, tarball_name) in final
    install = [line for line in final.splitlines() if line.startswith("RUN ansible-galaxy collection install")]
    assert install == [
        "RUN ansible-galaxy collection install --offline /tmp/%s -p /usr/share/ansible/collections"
        " && rm -f /tmp/%s" % (tarball_name, tarball_name)
    ], install
    assert spec["options"]["tags"] == ["sms-hotfix-ee:%s" % version]
