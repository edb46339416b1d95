"""What the rollout says is what happened, on real runs against the lab twin.

- Every console sample in README.md and docs/REPORTS.md (a fenced block after
  a `<!-- console sample: NAME -->` comment) is the output of the run named
  here, compared line by line; only timings and paths may differ.
- A plan alone reports as a plan; a successful --check says how to apply; a
  run with no lab built says `make lab`; a successful rollout prints no wave
  that did not run and its timeline holds only the plays that ran.

The runs go through `.venv/bin/ansible-playbook` from the checkout with the
default (lab) inventory, as `make rollout` does.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from sms_e2e import REPO

PROGRAM = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
SAMPLE = re.compile(r"<!-- console sample: ([a-z0-9-]+) -->\n```\n(.*?)```", re.S)


def run(lab_root, playbook, *args, reports):
    """`make rollout`'s command line, against a lab built under lab_root."""
    env = dict(os.environ)
    env.pop("SMS_REPORT_DISABLE", None)
    env.update(
        {
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "SMS_LAB_ROOT": str(lab_root),
            "SMS_REPORT_DIR": str(reports),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        }
    )
    proc = subprocess.run(
        [PROGRAM, playbook] + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    return proc


def report_of(reports):
    folders = sorted(os.listdir(str(reports)))
    with open(os.path.join(str(reports), folders[-1], "report.json")) as handle:
        return json.load(handle)


def summary(out):
    """The lines after the last PLAY RECAP's blank line: the callback's summary."""
    tail = out.rsplit("PLAY RECAP", 1)[-1]
    return tail.split("\n\n", 1)[-1].strip().splitlines() if "\n\n" in tail else []


def normal(line):
    """A line with what changes from run to run (timings, folders, the holder) made neutral."""
    line = line.rstrip()
    line = re.sub(r" \*+$", "", line)  # ansible's TASK/PLAY rulers
    line = re.sub(r"report: \S+?/(\d{8}T\d{6}Z-)", "report: reports/<stamp>-", line)
    line = re.sub(r"\b\d+\.\ds\b", "<t>s", line)
    line = re.sub(r"highest CPU \d+\.\d %", "highest CPU <cpu> %", line)  # the watch's sample of the moment
    line = re.sub(r"still held by \S+ on", "still held by <holder> on", line)
    line = re.sub(r'"lock holder: [^"]*"', '"lock holder: <holder>"', line)
    return line


def samples(name):
    """{document: [lines]} of every console sample called `name` in README.md and docs/*.md."""
    found = {}
    for doc in ["README.md"] + sorted(
        os.path.join("docs", n) for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md")
    ):
        with open(os.path.join(REPO, doc), encoding="utf-8") as handle:
            for sample, body in SAMPLE.findall(handle.read()):
                if sample == name:
                    found.setdefault(doc, []).append(body.splitlines())
    return found


def assert_sample_is_the_output(lines, out):
    """The sample's runs of lines (split at `...`) appear in the output, in order, each run as consecutive lines."""
    output = [normal(line) for line in out.splitlines()]
    chunks, chunk = [], []
    for line in lines:
        if line.strip() == "...":
            if chunk:
                chunks.append(chunk)
            chunk = []
        else:
            chunk.append(normal(line))
    if chunk:
        chunks.append(chunk)
    position = 0
    for chunk in chunks:
        for start in range(position, len(output) - len(chunk) + 1):
            if output[start : start + len(chunk)] == chunk:
                position = start + len(chunk)
                break
        else:
            raise AssertionError(
                "this part of the sample is not what the run printed (after line %d):\n%s\n\n"
                "the run printed:\n%s" % (position, "\n".join(chunk), "\n".join(output[position:]))
            )


def test_every_docs_sample_is_a_real_run_with_a_stopped_wave(make_lab, tmp_path):
    """README's "What a rollout looks like" and REPORTS.md's console samples: the
    lab's 12 clients, client04 and client06 without SMS.INI (2 of wave 3's 6:
    33 % > 20 %, wave 4 never starts); then, both fixed, the re-run."""
    lab = make_lab(cycle=2)
    for client in ("client04", "client06"):
        os.rename(lab.host(client, "SMS.INI"), lab.host(client, "SMS.INI.moved"))
    stopped = run(lab.root, "rollout.yml", reports=tmp_path / "reports1")
    out = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0, out
    docs = samples("rollout-stopped")
    assert sorted(docs) == ["README.md", "docs/REPORTS.md"], docs
    for blocks in docs.values():
        for lines in blocks:
            assert_sample_is_the_output(lines, stopped.stdout)
    report = report_of(tmp_path / "reports1")
    assert report["stop"]["hosts"] == ["client04", "client06"] and report["stop"]["threshold"] == 20
    assert report["next_step"]["text"].startswith("fix client04, client06 ")
    assert " .venv/bin/ansible-playbook rollout.yml " in report["next_step"]["text"]

    # fixed, the same command goes on: the summary of a run that finished (and no wave that did not run)
    for client in ("client04", "client06"):
        os.rename(lab.host(client, "SMS.INI.moved"), lab.host(client, "SMS.INI"))
    again = run(lab.root, "rollout.yml", reports=tmp_path / "reports2")
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    for blocks in samples("rollout-done").values():
        for lines in blocks:
            assert_sample_is_the_output(lines, again.stdout)
    assert_only_what_ran(again.stdout, report_of(tmp_path / "reports2"))


def assert_only_what_ran(out, report):
    """No wave line of a play that had no client, no rollback play on the timeline, each wave once."""
    waves = [(w["wave"], w["planned"]) for w in report["waves"]]
    lines = re.findall(r"^sms_client_upgrade: wave (\d+)/(\d+) finished .* of (\d+)$", out, re.M)
    assert [(int(n), int(p)) for n, _of, p in lines] == waves, out
    assert len(re.findall(r"^sms_client_upgrade: wave", out, re.M)) == len(waves), out
    labels = [span["label"] for span in report["timeline"] if span["kind"] == "play"]
    assert not any("Restore" in label or "rollback" in label.lower() or "Forget" in label for label in labels), labels
    numbers = [span["wave"] for span in report["timeline"] if span["kind"] == "wave"]
    assert numbers == sorted(set(numbers)) == [w for w, _p in waves], report["timeline"]


def test_a_plan_alone_reports_a_plan_and_a_check_says_how_to_apply(make_lab, tmp_path):
    lab = make_lab(clients=2, alpha=0, cycle=2)
    inventory = ["-i", lab.inventory]  # the small lab's own (the default one names 12 clients)
    plan = run(lab.root, "playbooks/plan.yml", *inventory, reports=tmp_path / "plan")
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out
    lines = summary(plan.stdout)
    assert lines[1].startswith("plan          hotfix verified, every input and every server checked"), lines
    text = "\n".join(lines)
    for untrue in ("already staged", "System.map bumped", "rollout lock", "rollback", "BASELINE"):
        assert untrue not in text, text
    assert lines[-1] == (
        "apply         .venv/bin/ansible-playbook rollout.yml -i %s  (the rollout this plan checked)" % lab.inventory
    )
    report = report_of(tmp_path / "plan")
    assert report["lock"] is None and report["site_servers"] == [] and report["logon_servers"] == []

    check = run(lab.root, "rollout.yml", "--check", "--diff", *inventory, reports=tmp_path / "check")
    out = check.stdout + check.stderr
    assert check.returncode == 0, out
    lines = summary(check.stdout)
    assert lines[-1] == "apply         .venv/bin/ansible-playbook rollout.yml -i %s" % lab.inventory, lines
    assert not any("reboot required" in line for line in lines), lines
    assert any(
        line.strip().startswith("would need a reboot (client service would change): client01") for line in lines
    ), lines
    report = report_of(tmp_path / "check")
    assert report["ok"] is True and report["check_mode"] is True
    assert_only_what_ran(check.stdout, report)


def test_no_lab_built_says_make_lab(tmp_path):
    missing = tmp_path / "no-lab"
    proc = run(missing, "rollout.yml", reports=tmp_path / "reports")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "set sms_root" not in out, out
    assert (
        "this inventory is the lab twin's (sms_lab_root=%s) and no lab is built there; run `make lab`" % missing in out
    ), out
    assert summary(proc.stdout)[-1] == "go on         make lab, then: .venv/bin/ansible-playbook rollout.yml"
    assert not missing.exists(), "nothing is created where the lab is missing"


@pytest.fixture(autouse=True)
def _no_reports_in_the_checkout():
    before = os.path.isdir(os.path.join(REPO, "reports"))
    yield
    if not before and os.path.isdir(os.path.join(REPO, "reports")):
        shutil.rmtree(os.path.join(REPO, "reports"))
        raise AssertionError("a run wrote reports/ into the checkout")
