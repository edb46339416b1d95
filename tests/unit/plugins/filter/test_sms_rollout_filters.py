"""Filters sms_waves and sms_in_window (plugins/filter/sms_rollout.py)."""

import datetime
import os
import sys

import pytest
from ansible.errors import AnsibleFilterError
from ansible.executor.playbook_executor import PlaybookExecutor

from sms_testlib import REPO  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "plugins", "filter"))

from sms_rollout import FilterModule, sms_in_window, sms_waves  # noqa: E402


class _Inventory:
    def __init__(self, count):
        self.hosts = ["h%03d" % i for i in range(count)]

    def get_hosts(self, pattern, order=None):
        return list(self.hosts)


class _Play:
    hosts = "all"
    order = None

    def __init__(self, serial):
        self.serial = serial


class _Executor:
    def __init__(self, count):
        self._inventory = _Inventory(count)


def ansible_batches(count, serial_list):
    """Batch sizes from ansible-core's own PlaybookExecutor._get_serialized_batches."""
    batches = PlaybookExecutor._get_serialized_batches(_Executor(count), _Play(serial_list))
    return [len(batch) for batch in batches]


SERIALS = [
    [],
    [1],
    [3],
    ["3"],
    [0],
    [-1],
    ["100%"],
    ["10%"],
    ["1%"],
    ["0%"],
    [1, "10%", "50%", "100%"],
    [1, 5, "25%"],
    [2, "30%", 10],
    ["50%", 1],
    [1, 1, 2, 3, 5, 8],
]


@pytest.mark.parametrize("count", [0, 1, 2, 7, 12, 13, 100, 1001])
@pytest.mark.parametrize("serial", SERIALS, ids=[repr(s) for s in SERIALS])
def test_sms_waves_matches_ansible(count, serial):
    expected = ansible_batches(count, serial)
    assert sms_waves(count, serial) == expected
    assert sum(expected) == count


def test_sms_waves_examples():
    assert sms_waves(12, [1, "10%", "50%", "100%"]) == [1, 1, 6, 4]
    assert sms_waves(5) == [5]
    assert sms_waves(5, None) == [5]
    assert sms_waves(7, 3) == [3, 3, 1]  # a scalar serial, as the play keyword allows
    assert sms_waves(7, "40%") == [2, 2, 2, 1]
    assert sms_waves("9", [2]) == [2, 2, 2, 2, 1]  # counts from templating arrive as strings
    assert sms_waves(0, [1]) == []


@pytest.mark.parametrize(
    "count, serial, fragment",
    [
        ("many", [1], "host_count 'many' is not an integer"),
        (-1, [1], "negative"),
        (10, ["ten%"], "serial value 'ten%' is not an integer"),
        (10, [1, "x"], "serial value 'x'"),
    ],
)
def test_sms_waves_bad_input(count, serial, fragment):
    with pytest.raises(AnsibleFilterError, match=fragment):
        sms_waves(count, serial)


# 2026-11-27 is a Friday, 2026-11-28 a Saturday, 2026-11-30 a Monday.
@pytest.mark.parametrize(
    "now, window, expected",
    [
        ("2026-11-24T23:00:00", "22:00-05:00", True),
        ("2026-11-24T04:59:59", "22:00-05:00", True),
        ("2026-11-24T05:00:00", "22:00-05:00", False),  # end is exclusive
        ("2026-11-24T22:00:00", "22:00-05:00", True),  # start is inclusive
        ("2026-11-24T12:00:00", "22:00-05:00", False),
        ("2026-11-24T12:00:00", "09:00-17:00", True),
        ("2026-11-24T17:00:00", "09:00-17:00", False),
        ("2026-11-28T03:00:00", "Sat,Sun 01:00-06:00", True),
        ("2026-11-27T03:00:00", "Sat,Sun 01:00-06:00", False),
        ("2026-11-28T03:00:00", "Mon-Fri 22:00-05:00", True),  # Friday night's window runs into Saturday
        ("2026-11-28T23:00:00", "Mon-Fri 22:00-05:00", False),  # Saturday evening is not in Mon-Fri
        ("2026-11-30T03:00:00", "Mon-Fri 22:00-05:00", False),  # Monday morning belongs to Sunday night
        ("2026-11-30T23:30:00", "Mon-Fri 22:00-05:00", True),
        ("2026-11-30T23:30:00", "Fri-Mon 22:00-05:00", True),  # a day range across the week's end
        ("2026-11-25T23:30:00", "Fri-Mon 22:00-05:00", False),
        ("2026-11-28T12:00:00", "sat 00:00-00:00", True),  # equal ends: the whole day
        ("2026-11-28T12:00:00", "Mon-Fri 22:00-05:00; Sat,Sun 08:00-20:00", True),
        ("2026-11-28T12:00:00", ["Mon-Fri 22:00-05:00", "Saturday 08:00-20:00"], True),
        ("2026-11-28T21:00:00", "Mon-Fri 22:00-05:00; Sat,Sun 08:00-20:00", False),
        ("2026-11-24T23:00:00Z", "22:00-05:00", True),
        ("2026-11-24T23:00:00+01:00", "22:00-05:00", True),  # read on the value's own wall clock
        ("2026-11-24T23:59:00", "22:00-24:00", True),
        ("2026-11-24T12:00:00", "", True),
        ("2026-11-24T12:00:00", None, True),
        ("2026-11-24T12:00:00", [], True),
    ],
)
def test_sms_in_window(now, window, expected):
    assert sms_in_window(now, window) is expected


def test_sms_in_window_takes_datetimes():
    assert sms_in_window(datetime.datetime(2026, 11, 28, 3, 0), "Sat 01:00-06:00") is True
    aware = datetime.datetime(2026, 11, 28, 3, 0, tzinfo=datetime.timezone.utc)
    assert sms_in_window(aware, "Fri 22:00-05:00") is True
    assert sms_in_window(datetime.date(2026, 11, 28), "00:00-01:00") is True


@pytest.mark.parametrize(
    "window, fragment",
    [
        ("22-05", r"cannot read maintenance window '22-05'"),
        ("22:00", r"cannot read maintenance window '22:00'"),
        ("25:00-05:00", r"bad start time '25:00'"),
        ("22:00-05:61", r"bad end time '05:61'"),
        ("24:00-05:00", r"bad start time '24:00'"),
        ("Funday 22:00-05:00", r"unknown day 'Funday'"),
        ("Mon-Fir 22:00-05:00", r"unknown day 'Fir'"),
        ("Sat,,Sun 01:00-02:00", r"empty day"),
        (42, r"maintenance window 42 is not a string"),
        ([22], r"item 22 is not a string"),
    ],
)
def test_sms_in_window_rejects_bad_windows(window, fragment):
    with pytest.raises(AnsibleFilterError, match=fragment) as info:
        sms_in_window("2026-11-24T12:00:00", window)
    assert "expected '[DAYS ]HH:MM-HH:MM'" in str(info.value)


def test_sms_in_window_rejects_bad_time():
    with pytest.raises(AnsibleFilterError, match="cannot read time 'tonight'"):
        sms_in_window("tonight", "22:00-05:00")


def test_filters_are_registered():
    filters = FilterModule().filters()
    assert filters["sms_waves"] is sms_waves
    assert filters["sms_in_window"] is sms_in_window


def test_operator_holder_names_the_user_and_the_controller():
    import socket
    from sms_rollout import sms_operator_holder

    assert sms_operator_holder("alice") == "alice@%s" % socket.gethostname()
    assert "sms_operator_holder" in FilterModule().filters()


def test_without_user_the_holder_is_the_account_so_two_accounts_are_two_holders(monkeypatch):
    # cron and containers set no USER: the account the controller runs as tells schedulers apart
    import pwd
    import socket
    from sms_rollout import sms_operator_holder

    assert sms_operator_holder("") == "%s@%s" % (pwd.getpwuid(os.getuid()).pw_name, socket.gethostname())
    monkeypatch.setattr(os, "getuid", lambda: 4242)

    def no_such_account(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_such_account)
    assert sms_operator_holder(" ") == "uid4242@%s" % socket.gethostname()


# ---- one documentation file per filter (what ansible-doc -t filter reads) ----

FILTERS = ("sms_waves", "sms_in_window", "sms_operator_holder", "sms_expect_from_stage")
# the examples that need no inventory, and what they give
EXAMPLE_VALUES = {
    "sms_waves": {"waves": [1, 1, 6, 4], "even": [4, 4, 4]},
    "sms_in_window": {"late": True, "weekend": False},
}


def test_each_filter_has_its_own_documentation():
    import json
    import subprocess

    names = ["sms.hotfix.%s" % name for name in FILTERS]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", "filter", "--json"] + names,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(names)
    shorts = set()
    for name in FILTERS:
        doc = docs["sms.hotfix.%s" % name]
        assert doc["doc"]["name"] == name
        assert doc["doc"]["filename"].endswith("plugins/filter/%s.yml" % name)
        assert doc["doc"]["description"] and doc["doc"]["options"]["_input"]["description"]
        assert "sms.hotfix.%s" % name in doc["examples"]
        assert doc["return"]["_value"]["description"]
        shorts.add(doc["doc"]["short_description"])
    assert len(shorts) == len(FILTERS), "every filter says what it does in its own words"


def test_documented_examples_give_what_they_say():
    import yaml
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=DataLoader())
    for name, expected in EXAMPLE_VALUES.items():
        with open(os.path.join(REPO, "plugins", "filter", "%s.yml" % name)) as handle:
            examples = yaml.safe_load(yaml.safe_load(handle)["EXAMPLES"])
        for key, value in expected.items():
            assert templar.template(trust_as_template(examples[key])) == value, (name, key, examples[key])
