# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A logon server's SMS name from the inventory: what clients' SMS.INI calls it."""

from __future__ import annotations


def sms_server_name(host, hostvars=None):
    """`sms_server_name` of inventory host `host`, or its short name (`logon01` for `logon01.corp.example`)."""
    host = str(host)
    if hostvars is not None:
        try:
            values = hostvars[host]
            if "sms_server_name" in values and values["sms_server_name"]:
                return str(values["sms_server_name"])
        except KeyError:
            pass
    return host.split(".", maxsplit=1)[0]


class FilterModule:
    def filters(self):
        return {"sms_server_name": sms_server_name}
