# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report folder: its name, and its three files written atomically.

Shared by the sms_rollout_report callback and `bin/sms-report merge`.
"""

from __future__ import annotations

import os
import re

from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_atomic import write_bytes
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_html import render_html
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_json import render_json
from ansible_collections.sms.hotfix.plugins.plugin_utils._sms_report_junit import render_junit

RENDERERS = (("report.json", render_json), ("junit.xml", render_junit), ("report.html", render_html))


def _safe(text):
    """A folder-name part from a value AWX or the operator chose."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "x"


def folder_name(started, playbook, awx=None):
    """(parent parts, name): `[awx-workflow-<id>/]<UTC stamp>-<playbook>[-job-<id>]`.

    Under AWX each job (each slice of a sliced job too) has its own id, so
    concurrent jobs never share a folder, and every job of one workflow lands
    in that workflow's folder."""
    awx = awx or {}
    stem = os.path.splitext(os.path.basename(str(playbook or "playbook")))[0]
    name = "%s-%s" % (started.strftime("%Y%m%dT%H%M%SZ"), _safe(stem))
    if awx.get("job_id") is not None:
        name += "-job-%s" % _safe(awx["job_id"])
    parents = []
    if awx.get("workflow_job_id") is not None:
        parents.append("awx-workflow-%s" % _safe(awx["workflow_job_id"]))
    return parents, name


def make_folder(base, started, playbook, awx=None):
    """Create a new, unique report folder under `base` and return its path."""
    parents, name = folder_name(started, playbook, awx)
    parent = os.path.join(os.path.abspath(os.path.expanduser(str(base))), *parents)
    os.makedirs(parent, exist_ok=True)
    suffix = 1
    while True:
        folder = os.path.join(parent, name if suffix == 1 else "%s-%d" % (name, suffix))
        try:
            # mkdir, not exists-then-create: two slices starting in the same
            # second must not end up in one folder
            os.mkdir(folder)
            return folder
        except FileExistsError:
            suffix += 1


def write_text(folder, name, text):
    """Write `folder/name` (UTF-8) through a temporary file and an atomic rename."""
    write_bytes(folder, name, text.encode("utf-8"))


def render_all(report):
    """[(file name, text)] of every renderer: all rendered before anything is written."""
    return [(name, render(report)) for name, render in RENDERERS]


def write_report(report, folder):
    """report.json, junit.xml and report.html of `report` into an existing folder.

    Every file is rendered before the first is written, so a renderer that
    fails leaves the folder as it was."""
    report["report_dir"] = os.path.abspath(folder)
    for name, text in render_all(report):
        write_text(folder, name, text)
    return report["report_dir"]
