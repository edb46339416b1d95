"""The HTML report in a real browser (issue 13).

A lab rollout with a failed wave (two clients of wave 3 have no SMS.INI, one
defers by policy; wave 4 is never reached) writes its report; Debian's
headless Chromium opens report.html from the report folder, runs its script,
and the test reads the DOM Chromium built: the outcome, the picture (a bar per
wave, the timeline, the logon servers' times) with report.json's counts, and
the client filter hiding rows. A screenshot is saved in the report folder,
where an operator finds it for the change ticket.

Chromium runs with a fresh profile and everything that talks to the network
turned off. Without Chromium the test is skipped when not root (saying how to
install it) and fails as root, where `make browser-deps` installs it.
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile

import jsonschema
import pytest

from sms_e2e import REPO
from sms_html import parse

pytestmark = pytest.mark.slow

SCHEMA = os.path.join(REPO, "docs", "report.schema.json")
STATUSES = ("done", "failed", "skipped", "deferred", "unreachable", "not_reached")
BROKEN = ["client04", "client06"]  # wave 3 of [1, 1, 6, 4]: 2 of 6 failed > 20 %
DEFERRED = "client05"
SHOT_SIZE = (1280, 1500)


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.geteuid() == 0:
        pytest.fail(
            "chromium is not installed; `make browser-deps` (part of `make test`) installs Debian's chromium as root"
        )
    pytest.skip(
        "no chromium and not root: run `make browser-deps` as root (apt-get install chromium) "
        "to enable the browser test"
    )


class Browser:
    """Headless Chromium, one process per page load, each with its own profile."""

    FLAGS = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-extensions",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
    ]

    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, str(workdir)

    def run(self, url, *flags):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.workdir)
        argv = [self.binary] + self.FLAGS + ["--user-data-dir=" + profile] + list(flags) + [url]
        # its own session, so whatever Chromium leaves behind is ended with it (and nothing else)
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=self.workdir
        )
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError("chromium did not finish loading %s within 120 s" % url)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert proc.returncode == 0, "chromium failed on %s: %s" % (url, err[-2000:])
        return out

    def dom(self, url):
        """The DOM after the page's scripts ran."""
        return parse(self.run(url, "--dump-dom"))

    def screenshot(self, url, path, size):
        self.run(url, "--screenshot=%s" % path, "--window-size=%d,%d" % size)


def png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    return struct.unpack(">II", head[16:24])


def visible_hosts(dom):
    return [row.find("td").text for row in dom.by_id("clients").find("tbody").find_all("tr") if not row.hidden]


def summary(run):
    lines = run.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("SMS rollout ") and " — report: " in line)
    return [line for line in lines[start:] if line.strip()]


def test_the_report_of_a_failed_wave_in_a_browser(make_lab, run_playbook, tmp_path):
    browser = Browser(chromium(), tmp_path)
    lab = make_lab(cycle=2)
    clients = lab.clients()
    for client in BROKEN:
        os.rename(lab.host(client, "SMS.INI"), lab.host(client, "SMS.INI.moved"))
    # one client of wave 3 leaves its running SMSRUN32 alone and waits for a restart
    os.makedirs(os.path.join(lab.root, "host_vars"))
    with open(os.path.join(lab.root, "host_vars", "%s.yml" % DEFERRED), "w") as handle:
        handle.write("sms_client_running_policy: defer\n")

    run = run_playbook(lab, "rollout.yml")
    assert run.rc != 0, run.stdout[-3000:]
    report = run.report()
    with open(SCHEMA) as handle:
        jsonschema.Draft202012Validator(json.load(handle)).validate(report)
    status = {entry["host"]: entry["status"] for entry in report["clients"]}
    assert sorted(h for h, s in status.items() if s == "failed") == BROKEN
    assert status[DEFERRED] == "deferred"
    unreached = sorted(h for h, s in status.items() if s == "not_reached")
    assert unreached == clients[8:]

    # the console names the clients that need a look and says how to go on
    lines = summary(run)
    assert "              failed (2): client04, client06" in lines
    assert "              not reached (4): %s" % ", ".join(unreached) in lines
    assert lines[-1].startswith("go on         ") and "ansible-playbook rollout.yml" in lines[-1], lines[-1]
    assert any(
        line.startswith("sms_client_upgrade: wave 3/4 finished after ")
        and line.endswith(": 3 done, 2 failed, 1 deferred of 6")
        for line in run.stdout.splitlines()
    )

    page = "file://" + os.path.join(report["report_dir"], "report.html")
    dom = browser.dom(page)

    # the outcome first, in words and colour
    outcome = dom.by_id("outcome")
    assert outcome.attrs["data-level"] == "red" and "red" in outcome.classes()
    # why it stopped, with the arithmetic, then what it left
    assert outcome.text.startswith(
        "Stopped: wave 3: 2 of 6 failed or unreachable = 33 % > 20 % "
        "(sms_rollout_max_fail_percentage): wave 4 of 4 not started"
    ), outcome.text
    assert "2 clients failed (wave 3); 4 clients not reached" in outcome.text, outcome.text

    # a bar per wave with report.json's counts; wave 4, never started, all "not reached"
    bars = dom.by_id("wave-chart").find_all("g", cls="wave")
    assert [g.attrs["data-wave"] for g in bars] == ["1", "2", "3", "4"]
    for row, wave_bar in zip(report["waves"], bars):
        for name in STATUSES:
            assert int(wave_bar.attrs["data-" + name.replace("_", "-")]) == row[name], (row, name)
        segments = wave_bar.find_all("rect", cls="seg")
        assert sorted(s.attrs["data-status"] for s in segments) == sorted(n for n in STATUSES if row[n])
    assert bars[3].attrs["data-not-reached"] == str(report["totals"]["clients"]["not_reached"]) == "4"
    assert [s.attrs["data-status"] for s in bars[2].find_all("rect", cls="seg")] == ["done", "failed", "deferred"]

    # the timeline of the tiers, each logon server's wait, each wave that ran
    labels = [g.find("text", cls="label").text for g in dom.by_id("timeline").find_all("g", cls="span")]
    for label in ("plan", "lock", "baseline", "stage", "logon wait", "wave 1", "wave 2", "wave 3", "unlock") + tuple(
        "wait %s" % server for server in lab.logon_servers()
    ):
        if label == "unlock":
            assert label not in labels, "the run stopped before the unlock step"
        else:
            assert label in labels, (label, labels)
    servers = dom.by_id("logon-chart").find_all("g", cls="server")
    elapsed = {e["host"]: e["elapsed"] for e in report["logon_servers"]}
    assert sorted(g.attrs["data-host"] for g in servers) == sorted(elapsed)

    # the table with the script run: every row shown, the filter visible and counting
    rows = dom.by_id("clients").find("tbody").find_all("tr")
    assert len(rows) == len(report["clients"]) and [r.find("td").text for r in rows][:2] == BROKEN
    assert not dom.by_id("client-filter").hidden
    assert dom.by_id("client-shown").text == "12 of 12 shown"

    # the filter hides rows: a status from the URL, then a search
    failed = browser.dom(page + "#status=failed")
    assert visible_hosts(failed) == BROKEN
    assert failed.by_id("client-shown").text == "2 of 12 shown"
    assert failed.by_id("status-filter") is not None
    searched = browser.dom(page + "#q=" + DEFERRED)
    assert visible_hosts(searched) == [DEFERRED]
    unreached_only = browser.dom(page + "#status=not_reached")
    assert visible_hosts(unreached_only) == unreached

    # a screenshot in the report folder, for the change ticket
    shot = os.path.join(report["report_dir"], "report.png")
    browser.screenshot(page, shot, SHOT_SIZE)
    assert png_size(shot) == SHOT_SIZE and os.path.getsize(shot) > 20000
    if os.environ.get("SMS_DOCS_SCREENSHOT"):
        # how docs/report-screenshot.png is refreshed (see docs/REPORTS.md)
        shutil.copyfile(shot, os.environ["SMS_DOCS_SCREENSHOT"])
