"""The wave gate's arithmetic (plugins/action/sms_wave_gate.py): the previous
wave's failed AND unreachable clients against the threshold, with the waves
cut the way ansible-core cuts `serial`. End to end in tests/e2e/test_safety_e2e.py."""

import pytest

from ansible_collections.sms.hotfix.plugins.action.sms_wave_gate import batches, gate

HOSTS = ["client%02d" % i for i in range(1, 31)]
WAVES = [1, 3, 15, 11]


def test_batches_are_cut_like_serial():
    cut = batches(HOSTS, WAVES)
    assert [len(b) for b in cut] == [1, 3, 15, 11]
    assert cut[2][0] == "client05" and cut[3][0] == "client20"
    assert [len(b) for b in batches(HOSTS[:12], [1, "10%", "50%", "100%"])] == [1, 1, 6, 4]


def test_first_wave_always_starts():
    assert gate(HOSTS, HOSTS[:1], HOSTS, WAVES, 20) == (1, [], 0, False, HOSTS)


@pytest.mark.parametrize("bad,stops", [
    (4, True),   # 4 of 15 = 27 %: failed or unreachable, it is the same for the gate
    (3, False),  # 20 %: not above the threshold
    (5, True),
])
def test_the_previous_wave_counts_failed_and_unreachable(bad, stops):
    third = HOSTS[4:19]
    gone = set(third[:bad])
    active = [h for h in HOSTS if h not in gone]
    wave, found, size, stop, later = gate(HOSTS, HOSTS[19:], active, WAVES, 20)
    assert (wave, size, stop) == (4, 15, stops)
    assert found == third[:bad]
    assert later == HOSTS[19:]


def test_hosts_gone_in_earlier_waves_do_not_count_again():
    active = [h for h in HOSTS if h not in ("client01", "client02")]  # waves 1 and 2 already judged
    wave, found, size, stop, _later = gate(HOSTS, HOSTS[19:], active, WAVES, 20)
    assert (wave, found, size, stop) == (4, [], 15, False)
