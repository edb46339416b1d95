"""Each role's README.md is what bin/sms-role-docs writes from its argument spec and defaults.

- The committed READMEs are the generator's output (`make role-docs` writes
  them); a README that drifts from its argument spec fails here.
- The generator itself: a changed description makes --check fail naming the
  README, and a write brings it back; a literal default written differently in
  defaults/main.yml and the argument spec is refused, naming both files.
- One source per default: the waves' default is written in sms_plan's
  defaults and argument spec only; the playbooks read it from there.
"""

import os
import re
import shutil
import subprocess
import sys

import yaml

from sms_testlib import REPO  # noqa: E402

PROGRAM = os.path.join(REPO, "bin", "sms-role-docs")
ROLES = os.path.join(REPO, "roles")


def docs(*args):
    return subprocess.run(
        [sys.executable, PROGRAM] + list(args), capture_output=True, text=True, check=False, timeout=120
    )


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_every_role_has_the_readme_its_argument_spec_makes():
    roles = sorted(r for r in os.listdir(ROLES) if os.path.isdir(os.path.join(ROLES, r)))
    assert roles == ["sms_client", "sms_plan", "sms_replication", "sms_stage"], roles
    proc = docs("--check")
    assert proc.returncode == 0, proc.stderr
    for role in roles:
        text = read(os.path.join(ROLES, role, "README.md"))
        assert text.startswith("# %s\n" % role)
        assert "`ansible-doc -t role sms.hotfix.%s`" % role in text
        # every variable of every entry point is in a table row, with Ansible's markup made Markdown
        specs = yaml.safe_load(read(os.path.join(ROLES, role, "meta", "argument_specs.yml")))["argument_specs"]
        for entry, spec in specs.items():
            assert "## Entry point `%s`" % entry in text
            for name in spec.get("options") or {}:
                assert re.search(r"^\| `%s` \|" % re.escape(name), text, re.M), (role, entry, name)
        assert not re.search(r"\b[CVOI]\(", text), role


def test_check_names_a_readme_that_differs_and_a_write_brings_it_back(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(os.path.join(ROLES, "sms_plan"), str(roles / "sms_plan"))
    spec = roles / "sms_plan" / "meta" / "argument_specs.yml"
    spec.write_text(
        spec.read_text().replace(
            "description: Inventory group of the clients.", "description: The group whose hosts are C(SMS) clients."
        )
    )
    before = (roles / "sms_plan" / "README.md").read_text()
    proc = docs("--check", "--roles", str(roles))
    assert proc.returncode == 1 and "sms_plan/README.md" in proc.stderr, proc.stderr
    assert (roles / "sms_plan" / "README.md").read_text() == before  # --check changes nothing
    assert docs("--roles", str(roles)).returncode == 0
    after = (roles / "sms_plan" / "README.md").read_text()
    assert "| `sms_plan_client_group` | str | `clients` | The group whose hosts are `SMS` clients. |" in after
    assert docs("--check", "--roles", str(roles)).returncode == 0
    assert sorted(os.listdir(str(roles / "sms_plan"))) == sorted(os.listdir(os.path.join(ROLES, "sms_plan")))


def test_a_literal_default_written_twice_must_be_the_same(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(os.path.join(ROLES, "sms_plan"), str(roles / "sms_plan"))
    defaults = roles / "sms_plan" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text().replace("sms_plan_client_group: clients", "sms_plan_client_group: pcs"))
    before = (roles / "sms_plan" / "README.md").read_text()
    proc = docs("--roles", str(roles))
    assert proc.returncode == 2, proc.stderr
    assert "sms_plan_client_group defaults to `pcs`" in proc.stderr and "says `clients`" in proc.stderr
    assert "defaults/main.yml" in proc.stderr and "argument_specs.yml" in proc.stderr
    assert (roles / "sms_plan" / "README.md").read_text() == before


def test_the_waves_default_is_written_in_one_place():
    defaults = yaml.safe_load(read(os.path.join(ROLES, "sms_plan", "defaults", "main.yml")))
    specs = yaml.safe_load(read(os.path.join(ROLES, "sms_plan", "meta", "argument_specs.yml")))["argument_specs"]
    assert defaults["sms_plan_waves"] == specs["main"]["options"]["sms_plan_waves"]["default"]
    literal = re.compile(r"""\[\s*1\s*,\s*['"]10%['"]\s*,\s*['"]50%['"]\s*,\s*['"]100%['"]\s*\]""")
    for top in ("playbooks", "roles"):
        for base, _dirs, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                path = os.path.join(base, name)
                if name.endswith((".yml", ".yaml", ".j2")) and path not in (
                    os.path.join(ROLES, "sms_plan", "defaults", "main.yml"),
                    os.path.join(ROLES, "sms_plan", "meta", "argument_specs.yml"),
                ):
                    assert not literal.search(read(path)), path
    # the playbooks' fallback reads it from the role's defaults
    assert "'../roles/sms_plan/defaults/main.yml'" in read(os.path.join(REPO, "playbooks", "vars", "rollout.yml"))
    readme = read(os.path.join(REPO, "README.md"))
    assert not literal.search(readme), "README repeats the waves' default: point at roles/sms_plan/README.md"
