"""execution-environment.yml: ansible-builder (3) makes its build context here
(no container engine is needed for that), from the project's own pins and
nothing from Galaxy. Building the image needs podman or docker: not here."""

import os
import re
import shutil
import subprocess
import sys

import yaml

from awx_rehearsal import REPO

EE_FILE = os.path.join(REPO, "execution-environment.yml")
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


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
    return subprocess.run([BUILDER, "create", "-f", str(ee_file), "-c", str(context),
                           "--output-filename", "Containerfile"],
                          capture_output=True, text=True, timeout=300, cwd=str(os.path.dirname(ee_file)), check=False)


def test_ansible_builder_makes_the_context_from_the_projects_pins_and_nothing_from_galaxy(tmp_path):
    context = tmp_path / "context"
    result = create(EE_FILE, context)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(EE_FILE, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    assert spec["version"] == 3 and "galaxy" not in spec["dependencies"]

    containerfile = (context / "Containerfile").read_text()
    lock = pins(os.path.join(REPO, "requirements-2.19.lock"))  # the EE still pins 2.19 (issue 24, item 4)
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile).group(1).split()
    assert sorted(refs) == ["ansible-core==%s" % lock["ansible-core"], "ansible-runner==%s" % lock["ansible-runner"]]
    assert 'ARG EE_BASE_IMAGE="%s"' % spec["images"]["base_image"]["name"] in containerfile
    assert "ansible-galaxy" not in containerfile and "AS galaxy" not in containerfile
    assert "ENV TZ=UTC" in containerfile

    # the run-time Python needs, as requirements.lock pins them
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
