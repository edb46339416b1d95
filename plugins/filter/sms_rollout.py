# -*- coding: utf-8 -*-
# Copyright: (c) 2026, the sms-hotfix-rollout authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Filters for planning the rollout on the controller: wave sizes, the
# maintenance window, the lock's holder. Pure functions, no I/O. Each filter's
# documentation is the .yml file of its name beside this one (ansible-doc -t filter).

from __future__ import annotations

import datetime
import os
import re
import socket

from ansible.errors import AnsibleFilterError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    "monday": "mon",
    "tuesday": "tue",
    "tues": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "thur": "thu",
    "thurs": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_WINDOW_FORM = (
    "expected '[DAYS ]HH:MM-HH:MM', e.g. '22:00-05:00', 'Sat,Sun 01:00-06:00' or "
    "'Mon-Fri 22:00-05:00' (several joined with ';')"
)
_WINDOW_RE = re.compile(
    r"^(?:(?P<days>[A-Za-z][A-Za-z,\- ]*?)\s+)?"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$"
)


def _serial_value(value, host_count):
    # ansible.utils.helpers.pct_to_int, with a clear error instead of a ValueError
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            return int((int(value.strip()[:-1]) / 100.0) * host_count) or 1
        if isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("sms_waves: serial value %r is not an integer or a 'N%%' percentage" % (value,))


def sms_waves(host_count, serial=None):
    """Batch sizes for host_count hosts and a play's serial, as Ansible makes them."""
    try:
        remaining = int(host_count)
    except (TypeError, ValueError):
        raise AnsibleFilterError("sms_waves: host_count %r is not an integer" % (host_count,))
    if remaining < 0:
        raise AnsibleFilterError("sms_waves: host_count %r is negative" % (host_count,))
    total = remaining
    if serial is None or serial == "":
        serial_list = []
    elif isinstance(serial, (list, tuple)):
        serial_list = list(serial)
    else:
        serial_list = [serial]
    if not serial_list:
        serial_list = [-1]

    batches = []
    cur_item = 0
    while remaining > 0:
        size = _serial_value(serial_list[cur_item], total)
        if size <= 0:
            batches.append(remaining)
            break
        take = min(size, remaining)
        batches.append(take)
        remaining -= take
        cur_item = min(cur_item + 1, len(serial_list) - 1)
    return batches


def _parse_clock(text, what, window):
    hours, minutes = text.split(":")
    hours, minutes = int(hours), int(minutes)
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or what == "start")):
        raise AnsibleFilterError(
            "sms_in_window: bad %s time %r in maintenance window %r; %s" % (what, text, window, _WINDOW_FORM)
        )
    return hours * 60 + minutes


def _day_index(name, window):
    key = name.strip().lower()
    key = _DAY_ALIASES.get(key, key)
    if key not in _DAYS:
        raise AnsibleFilterError(
            "sms_in_window: unknown day %r in maintenance window %r; %s" % (name.strip(), window, _WINDOW_FORM)
        )
    return _DAYS.index(key)


def _parse_days(text, window):
    days = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise AnsibleFilterError("sms_in_window: empty day in maintenance window %r; %s" % (window, _WINDOW_FORM))
        if "-" in part:
            first, last = part.split("-", 1)
            start, end = _day_index(first, window), _day_index(last, window)
            day = start
            days.add(day)
            while day != end:
                day = (day + 1) % 7
                days.add(day)
        else:
            days.add(_day_index(part, window))
    return days


def _parse_window(window):
    """[(days or None, start_minute, end_minute)] for a window string or list."""
    if isinstance(window, (list, tuple)):
        parts = []
        for item in window:
            if not isinstance(item, str):
                raise AnsibleFilterError(
                    "sms_in_window: maintenance window item %r is not a string; %s" % (item, _WINDOW_FORM)
                )
            parts.extend(item.split(";"))
    elif isinstance(window, str):
        parts = window.split(";")
    else:
        raise AnsibleFilterError("sms_in_window: maintenance window %r is not a string; %s" % (window, _WINDOW_FORM))
    spans = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        match = _WINDOW_RE.match(part)
        if not match:
            raise AnsibleFilterError("sms_in_window: cannot read maintenance window %r; %s" % (part, _WINDOW_FORM))
        days = _parse_days(match.group("days"), part) if match.group("days") else None
        spans.append(
            (days, _parse_clock(match.group("start"), "start", part), _parse_clock(match.group("end"), "end", part))
        )
    return spans


def _to_datetime(now):
    if isinstance(now, datetime.datetime):
        return now
    if isinstance(now, datetime.date):
        return datetime.datetime(now.year, now.month, now.day)
    if isinstance(now, str):
        text = now.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
    raise AnsibleFilterError(
        "sms_in_window: cannot read time %r; expected an ISO-8601 date and time "
        "such as '2026-11-24T22:15:00' or a datetime" % (now,)
    )


def sms_in_window(now, window=None):
    """True when `now` falls inside the maintenance window (always true without one)."""
    if window is None or (isinstance(window, (str, list, tuple)) and not window):
        return True
    spans = _parse_window(window)
    moment = _to_datetime(now)
    if not spans:
        return True
    minute = moment.hour * 60 + moment.minute
    today = moment.weekday()
    yesterday = (today - 1) % 7
    for days, start, end in spans:
        if start == end:
            if days is None or today in days:
                return True
        elif start < end:
            if start <= minute < end and (days is None or today in days):
                return True
        else:
            # crosses midnight: the evening part belongs to today, the
            # morning part to the window that started yesterday
            if minute >= start and (days is None or today in days):
                return True
            if minute < end and (days is None or yesterday in days):
                return True
    return False


def _account():
    """The account this controller process runs as, where no USER is set (cron, containers)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return "uid%s" % (os.getuid() if hasattr(os, "getuid") else "-unknown")


def sms_operator_holder(user):
    """`user@controller-host`: the rollout lock's holder for a run from the CLI.

    The controller's name makes two operators with the same account on two
    controllers two holders, so they cannot stage at once.
    """
    user = str(user or "").strip() or _account()
    return "%s@%s" % (user, socket.gethostname() or "controller")


class FilterModule:
    """Rollout planning filters."""

    def filters(self):
        return {
            "sms_waves": sms_waves,
            "sms_in_window": sms_in_window,
            "sms_operator_holder": sms_operator_holder,
        }
