"""The supported ansible-core range is said once per place that says it, and
every place says the same (issue 24): meta/runtime.yml's requires_ansible
(what ansible-core itself checks), requirements.txt (what pip installs), the
roles' min_ansible_version, the README, the Makefile's lines and their locks.
"""

import glob
import os
import re

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from sms_testlib import REPO  # noqa: E402


def read(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as handle:
        return handle.read()


def lines_of(spec):
    """The X.Y lines a specifier admits (each line's first and a late release), among 2.15 to 2.25."""
    lines = []
    for minor in range(15, 26):
        admitted = [Version("2.%d.%s" % (minor, patch)) in spec for patch in ("0", "99")]
        assert admitted[0] == admitted[1], "%s admits part of 2.%d only" % (spec, minor)
        if admitted[0]:
            lines.append("2.%d" % minor)
    return lines


def requires_ansible():
    return SpecifierSet(yaml.safe_load(read("meta/runtime.yml"))["requires_ansible"])


def requirements_spec(text):
    found = re.findall(r"^ansible-core\s*([<>=!~][^#\n]*)", text, re.M)
    assert len(found) == 1, found
    return SpecifierSet(found[0].strip())


def makefile_value(name):
    found = re.findall(r"^%s\s*[:?]?=\s*(.*)$" % re.escape(name), read("Makefile"), re.M)
    assert len(found) == 1, (name, found)
    return found[0].split()


def test_runtime_and_requirements_admit_the_same_lines():
    lines = lines_of(requires_ansible())
    assert lines == ["2.19", "2.20", "2.21"]
    assert lines_of(requirements_spec(read("requirements.txt"))) == lines


def test_every_role_names_the_first_supported_line():
    first = lines_of(requires_ansible())[0]
    metas = sorted(glob.glob(os.path.join(REPO, "roles", "*", "meta", "main.yml")))
    assert metas
    for meta in metas:
        with open(meta, encoding="utf-8") as handle:
            info = yaml.safe_load(handle)["galaxy_info"]
        assert str(info["min_ansible_version"]) == first, meta


def test_the_makefile_tests_every_line_and_runs_the_newest_by_default():
    lines = lines_of(requires_ansible())
    assert makefile_value("LINES") == lines
    assert makefile_value("LINE") == [lines[-1]]
    for line in lines:
        assert makefile_value("PYTHONS_%s" % line), line


@pytest.mark.parametrize("line", ["2.19", "2.20", "2.21"])
def test_each_line_has_a_lock_that_pins_an_ansible_core_of_that_line(line):
    pins = dict(
        entry.split("==", 1)
        for entry in read("requirements-%s.lock" % line).split()
        if "==" in entry and not entry.startswith("#")
    )
    version = Version(pins["ansible-core"])
    assert "%d.%d" % (version.major, version.minor) == line
    assert version in requires_ansible() and version in requirements_spec(read("requirements.txt"))
    # the lock pins everything requirements.txt names
    wanted = re.findall(r"^([A-Za-z0-9_.-]+)\s*[<>=]", read("requirements.txt"), re.M)
    assert {name.lower() for name in wanted} <= {name.lower() for name in pins}, line


def test_the_readme_says_the_same_range_and_lines():
    readme = read("README.md")
    section = readme.split("### Supported ansible-core", 1)[1].split("\n#", 1)[0]
    spec = requirements_spec(read("requirements.txt"))
    said = re.findall(r"ansible-core `([^`]+)`", section)
    assert [SpecifierSet(text) for text in said] == [spec], said
    rows = re.findall(r"^\| (2\.\d+)\b", section, re.M)
    assert sorted(rows, key=Version) == lines_of(requires_ansible())
    assert not glob.glob(os.path.join(REPO, "requirements.lock")), "one lock per line, no other"
