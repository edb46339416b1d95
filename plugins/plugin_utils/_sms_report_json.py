# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.json: the report model as it is (schema: docs/report.schema.json)."""

from __future__ import annotations

import json


def render_json(report):
    """The report as indented JSON text, keys in the model's order."""
    return json.dumps(report, indent=2, sort_keys=False, default=str) + "\n"
