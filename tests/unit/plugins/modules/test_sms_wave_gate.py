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


@pytest.mark.parametrize(
    "bad,stops",
    [
        (4, True),  # 4 of 15 = 27 %: failed or unreachable, it is the same for the gate
        (3, False),  # 20 %: not above the threshold
        (5, True),
    ],
)
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


# --- after the wave (sms_rollout_on_failure=rollback): judged by the registered results ---


def test_after_the_wave_failed_and_unreachable_results_count():
    from ansible_collections.sms.hotfix.plugins.action.sms_wave_gate import judged_after

    third = HOSTS[4:19]
    outcomes = dict((h, {"changed": True}) for h in HOSTS)
    outcomes[third[0]] = {"failed": True, "msg": "x"}
    outcomes[third[1]] = {"unreachable": True}
    outcomes[third[2]] = {"failed": True}
    wave, hosts, bad, stop, later, count = judged_after(HOSTS, third, HOSTS, outcomes, WAVES, 20)
    assert (wave, hosts, bad, stop, later, count) == (3, third, third[:3], False, HOSTS[19:], 4)  # 3 of 15 = 20 %
    outcomes[third[3]] = {"failed": True}
    assert judged_after(HOSTS, third, HOSTS, outcomes, WAVES, 20)[2:4] == (third[:4], True)  # 27 %


def test_after_the_wave_a_client_gone_from_the_play_counts_against_the_whole_wave():
    from ansible_collections.sms.hotfix.plugins.action.sms_wave_gate import judged_after

    # a canary removed from the play by a failure nothing ignored: the batch Ansible hands over is empty
    wave, hosts, bad, stop, later, _count = judged_after(HOSTS, [], HOSTS[1:], {}, WAVES, 20)
    assert (wave, hosts, bad, stop) == (1, HOSTS[:1], HOSTS[:1], True) and later == HOSTS[1:]
    # one of three gone, the batch holds the other two
    second = HOSTS[1:4]
    active = [h for h in HOSTS if h != second[1]]
    assert judged_after(HOSTS, [second[0], second[2]], active, {}, WAVES, 20)[1:4] == (second, [second[1]], True)


def test_after_the_wave_the_reached_clients_are_every_result_but_the_unreachable():
    from ansible_collections.sms.hotfix.plugins.action.sms_wave_gate import reached

    # waves 1-3 ran: 19 results; wave 4 never started (no result)
    outcomes = dict((h, {"changed": True}) for h in HOSTS[:19])
    outcomes["client06"] = {"unreachable": True, "msg": "ssh: connect"}
    outcomes["client07"] = {"failed": True}  # failed, reached: its journal undoes what it did
    outcomes["client08"] = {"skipped": True, "skip_reason": "platform"}
    assert reached(HOSTS, outcomes) == [h for h in HOSTS[:19] if h != "client06"]
    assert reached(HOSTS, {}) == []


# ---- the action plugin itself: what it returns as `status` for each outcome ----


def run_gate(args, active, batch, hostvars=None):
    from types import SimpleNamespace

    from ansible_collections.sms.hotfix.plugins.action.sms_wave_gate import ActionModule

    task = SimpleNamespace(args=args, async_val=0, check_mode=False, action="sms.hotfix.sms_wave_gate")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    plugin = ActionModule(task, connection, None, None, None)
    return plugin.run(
        task_vars={
            "ansible_play_hosts_all": HOSTS,
            "ansible_play_batch": batch,
            "ansible_play_hosts": active,
            "hostvars": hostvars or {},
        }
    )


def test_status_says_what_the_gate_did():
    second = HOSTS[1:4]
    passed = run_gate({"waves": WAVES, "max_fail_percentage": 0}, HOSTS, second)
    assert passed["status"] == "passed" and not passed.get("failed") and passed["wave"] == 2, passed
    stopped = run_gate({"waves": WAVES, "max_fail_percentage": 0}, HOSTS[1:], second)  # client01 gone
    assert stopped["status"] == "stopped" and stopped["failed"] is True and stopped["wave_gate"]["stopped"], stopped
    closed = run_gate({"waves": WAVES, "window": "22:00-05:00", "now": "2026-11-24T12:00:00"}, HOSTS, second)
    assert closed["status"] == "outside_window" and closed["failed"] is True, closed
    assert closed["wave_gate"]["outside_window"] is True
    forced = run_gate(
        {"waves": WAVES, "window": "22:00-05:00", "now": "2026-11-24T12:00:00", "force": True}, HOSTS, second
    )
    assert forced["status"] == "passed" and not forced.get("failed"), forced
    refused = run_gate({"waves": WAVES, "judge": "sideways"}, HOSTS, second)
    assert refused["status"] == "refused" and refused["failed"] is True, refused


def test_status_after_a_wave_judged_by_its_registered_results():
    first = HOSTS[:1]
    ok = run_gate({"waves": WAVES, "judge": "current"}, HOSTS, first, {HOSTS[0]: {"sms_client_result": {}}})
    assert ok["status"] == "passed" and ok["wave_gate"]["stopped"] is False, ok
    bad = run_gate(
        {"waves": WAVES, "judge": "current"}, HOSTS, first, {HOSTS[0]: {"sms_client_result": {"failed": True}}}
    )
    # judged after the wave, a stop does not fail the task: the play ends and the rollout rolls back
    assert bad["status"] == "stopped" and bad["wave_gate"]["stopped"] is True and not bad.get("failed"), bad
