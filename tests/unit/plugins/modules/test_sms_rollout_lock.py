"""sms_rollout_lock driven through its argument spec: free, re-entrant, live,
stale, unreadable, release, force, check mode, and a race of many takers."""

import json
import multiprocessing
import os
import time

import pytest

from sms_testlib import make_site, snapshot, write

MODULE = "sms_rollout_lock"


@pytest.fixture(autouse=True)
def target_side(monkeypatch):
    """Modules run on the target, where warnings go into the result. Another test
    importing controller code (a callback) flips this process-wide switch."""
    from ansible.module_utils import _internal

    monkeypatch.setattr(_internal, "is_controller", False)


@pytest.fixture
def site(tmp_path):
    sms = make_site(tmp_path)
    return {
        "sms": sms,
        "lock": os.path.join(sms, "Hotfix", "rollout.lock"),
        "site": os.path.join(str(tmp_path), "site"),
    }


@pytest.fixture
def lock(module_runner, site):
    def _run(holder="awx job 42", check_mode=False, **params):
        args = {"path": site["lock"], "holder": holder}
        args.update(params)
        return module_runner(MODULE, args, check_mode=check_mode)

    return _run


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def warnings(result):
    """Warning texts, whether plain strings or ansible-core 2.19's structured summaries."""
    return [w if isinstance(w, str) else json.dumps(w) for w in result.get("warnings", [])]


def plant(path, holder, age, purpose="rollout"):
    epoch = time.time() - age
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    write(path, json.dumps({"holder": holder, "purpose": purpose, "started": started, "epoch": epoch}).encode())
    return started


def test_acquire_a_free_lock(site, lock):
    result = lock()
    assert not result.get("failed"), result
    assert result["changed"] is False and result["acquired"] is True and result["reentrant"] is False
    assert (result["status"], result["state"]) == ("acquired", "acquired")
    data = json.loads(read(site["lock"]))
    assert data["holder"] == "awx job 42" and data["purpose"] == "rollout"
    assert abs(data["epoch"] - time.time()) < 60
    assert data["started"].endswith("Z") and data["started"] == result["lock"]["started"]
    assert result["lock"] == {
        "holder": "awx job 42",
        "purpose": "rollout",
        "started": data["started"],
        "path": site["lock"],
    }
    # No temporary files left beside it.
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_check_mode_writes_nothing(site, lock):
    before = snapshot(site["site"])
    result = lock(check_mode=True)
    assert result["acquired"] is True and result["changed"] is False
    assert (result["status"], result["state"]) == ("would_acquire", "acquired")
    assert not os.path.exists(os.path.dirname(site["lock"]))
    assert snapshot(site["site"]) == before


def test_same_holder_is_reentrant(site, lock):
    lock()
    first = json.loads(read(site["lock"]))
    again = lock()
    assert again["changed"] is False and again["acquired"] is True and again["reentrant"] is True
    assert again["status"] == "refreshed"
    now = json.loads(read(site["lock"]))
    assert (now["holder"], now["purpose"], now["started"]) == (first["holder"], first["purpose"], first["started"])
    assert now["epoch"] >= first["epoch"] and now["refreshed"].endswith("Z")
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_reentrant_acquire_refreshes_the_epoch(site, lock):
    started = plant(site["lock"], "awx job 42", age=1000, purpose="rollback")
    checked = lock(check_mode=True)
    assert checked["reentrant"] is True and json.loads(read(site["lock"]))["epoch"] < time.time() - 900
    assert checked["status"] == "would_refresh"

    again = lock()
    assert not again.get("failed"), again
    assert again["changed"] is False and again["reentrant"] is True
    data = json.loads(read(site["lock"]))
    assert data["holder"] == "awx job 42" and data["purpose"] == "rollback" and data["started"] == started
    assert abs(data["epoch"] - time.time()) < 60
    assert data["refreshed"] == again["lock"]["refreshed"] and data["refreshed"].endswith("Z")
    assert again["lock"]["started"] == started
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]
    # The stale rule counts from the refresh: the lock, 1000s old by its start, is alive.
    other = lock(holder="awx job 43", stale_after=500)
    assert other.get("failed") is True and "held by awx job 42" in other["msg"]
    assert json.loads(read(site["lock"]))["holder"] == "awx job 42"


def test_reentrant_acquire_of_an_own_stale_lock_refreshes_it(site, lock):
    started = plant(site["lock"], "awx job 42", age=7 * 3600)
    again = lock()
    assert again["changed"] is False and again["reentrant"] is True and "previous_holder" not in again
    assert again["status"] == "refreshed"
    data = json.loads(read(site["lock"]))
    assert data["started"] == started and abs(data["epoch"] - time.time()) < 60
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_live_lock_of_another_holder_is_refused(site, lock):
    lock(holder="alice@controller", purpose="rollback")
    before = snapshot(site["site"])
    held = read(site["lock"])
    started = json.loads(held)["started"]
    for check_mode in (False, True):
        result = lock(holder="awx job 43", check_mode=check_mode)
        assert result.get("failed") is True, result
        assert (result["status"], result["state"]) == ("refused", "acquired")
        msg = result["msg"]
        assert "rollout lock %s is held by alice@controller (rollback) since %s" % (site["lock"], started) in msg
        assert "stale after 21600s" in msg and "playbooks/unlock.yml -e sms_unlock_force=true" in msg
        assert result["lock"]["holder"] == "alice@controller"
        assert read(site["lock"]) == held
        assert snapshot(site["site"]) == before


def test_stale_lock_is_taken_over(site, lock):
    started = plant(site["lock"], "awx job 7", age=7 * 3600)
    held = read(site["lock"])
    checked = lock(check_mode=True)
    assert checked["changed"] is True and checked["previous_holder"]["holder"] == "awx job 7"
    assert checked["status"] == "would_take_over"
    assert read(site["lock"]) == held

    result = lock()
    assert not result.get("failed"), result
    assert result["changed"] is True and result["acquired"] is True and result["status"] == "taken_over"
    assert result["previous_holder"]["holder"] == "awx job 7"
    assert result["previous_holder"]["started"] == started
    assert result["previous_holder"]["age"] >= 7 * 3600 - 5
    assert any("stale" in w and "awx job 7" in w for w in warnings(result))
    assert json.loads(read(site["lock"]))["holder"] == "awx job 42"
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_stale_after_is_honoured(site, lock):
    plant(site["lock"], "awx job 7", age=120)
    assert lock(stale_after=3600).get("failed") is True
    assert lock(stale_after=60)["changed"] is True


def test_unreadable_lock_is_aged_by_its_date(site, lock):
    write(site["lock"], b"{garbage")
    refused = lock()
    assert refused.get("failed") and "unknown (unreadable lock file)" in refused["msg"]
    old = time.time() - 8 * 3600
    os.utime(site["lock"], (old, old))
    taken = lock()
    assert taken["changed"] is True and json.loads(read(site["lock"]))["holder"] == "awx job 42"


def test_release_own_lock(site, lock):
    lock()
    checked = lock(state="released", check_mode=True)
    assert checked["released"] is True and os.path.exists(site["lock"])
    assert (checked["status"], checked["state"]) == ("would_release", "released")
    result = lock(state="released")
    assert result["changed"] is False and result["released"] is True
    assert (result["status"], result["state"]) == ("released", "released")
    assert result["lock"]["holder"] == "awx job 42"
    assert not os.path.exists(site["lock"])
    again = lock(state="released")
    assert again["changed"] is False and again["released"] is False and "nothing to release" in again["msg"]
    assert again["status"] == "not_held"


def test_release_refuses_another_holders_lock(site, lock):
    plant(site["lock"], "alice@controller", age=10)
    held = read(site["lock"])
    result = lock(state="released")
    assert result.get("failed") is True
    assert (result["status"], result["state"]) == ("refused", "released")
    assert "held by alice@controller" in result["msg"] and "not by awx job 42" in result["msg"]
    assert "unlock.yml" in result["msg"]
    assert read(site["lock"]) == held


def test_forced_release_breaks_another_holders_lock(site, lock):
    plant(site["lock"], "alice@controller", age=10)
    checked = lock(holder="bob@controller", state="released", force=True, check_mode=True)
    assert checked["changed"] is True and os.path.exists(site["lock"]) and checked["status"] == "would_break"
    result = lock(holder="bob@controller", state="released", force=True)
    assert result["changed"] is True and result["released"] is True and result["status"] == "broken"
    assert result["previous_holder"]["holder"] == "alice@controller"
    assert any("broke the rollout lock" in w for w in warnings(result))
    assert not os.path.exists(site["lock"])


def test_lock_folder_is_created_but_not_the_sms_root(tmp_path, module_runner):
    missing_root = os.path.join(str(tmp_path), "nowhere", "SMS")
    path = os.path.join(missing_root, "Hotfix", "rollout.lock")
    result = module_runner(MODULE, {"path": path, "holder": "awx job 42"})
    assert result.get("failed") is True and result["status"] == "refused"
    assert missing_root in result["msg"] and "does not exist" in result["msg"]
    assert not os.path.exists(os.path.join(str(tmp_path), "nowhere"))


def test_argument_spec(site, module_runner):
    result = module_runner(MODULE, {"path": site["lock"]})
    assert result.get("failed") and "holder" in result["msg"]
    result = module_runner(MODULE, {"path": site["lock"], "holder": "x", "state": "taken"})
    assert result.get("failed") and "state" in result["msg"]
    result = module_runner(MODULE, {"path": site["lock"], "holder": "x", "stale_after": 0})
    assert result.get("failed") and "stale_after" in result["msg"] and result["status"] == "refused"


def _race(path, index, barrier, queue):
    from ansible_collections.sms.hotfix.plugins.modules import sms_rollout_lock

    barrier.wait()
    lock = sms_rollout_lock.Lock(path, {})
    payload = sms_rollout_lock.lock_payload("taker %d" % index, "race", time.time())
    won = lock.volume.create_exclusive(lock.parts, payload)
    queue.put((index, won))


def test_only_one_of_many_racing_takers_wins(site):
    os.makedirs(os.path.dirname(site["lock"]))
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(site["lock"], i, barrier, queue)) for i in range(8)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=30) for _proc in procs)
    for proc in procs:
        proc.join(timeout=30)
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert json.loads(read(site["lock"]))["holder"] == "taker %d" % winners[0]
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


class _Module:
    """What acquire() uses of AnsibleModule, for a child process."""

    def __init__(self, path, holder):
        self.params = {"path": path, "holder": holder, "purpose": "race", "stale_after": 3600, "force": False}
        self.check_mode = False
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def _race_takeover(path, index, barrier, queue):
    from ansible_collections.sms.hotfix.plugins.modules import sms_rollout_lock

    module = _Module(path, "taker %d" % index)
    barrier.wait()
    try:
        result = sms_rollout_lock.acquire(module, sms_rollout_lock.Lock(path, module.params))
        queue.put((index, bool(result.get("acquired")), result.get("previous_holder", {}).get("holder")))
    except sms_rollout_lock.LockError as exc:
        queue.put((index, False, exc.msg))


@pytest.mark.parametrize("round_", range(5))
def test_only_one_of_many_processes_takes_over_a_stale_lock(site, round_):
    plant(site["lock"], "awx job 7", age=7 * 3600)
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_race_takeover, args=(site["lock"], i, barrier, queue)) for i in range(8)]
    for proc in procs:
        proc.start()
    results = {index: (won, info) for index, won, info in (queue.get(timeout=30) for _proc in procs)}
    for proc in procs:
        proc.join(timeout=30)
    winners = [i for i, (won, _info) in results.items() if won]
    assert len(winners) == 1, results
    # The winner took the stale lock over, or found the lock free in the instant between another
    # process renaming the stale lock aside and that process creating its own (which then fails).
    assert results[winners[0]][1] in ("awx job 7", None)
    assert json.loads(read(site["lock"]))["holder"] == "taker %d" % winners[0]
    for won, info in results.values():
        if not won:
            assert "taker %d" % winners[0] in info or "changed hands" in info, info
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_takeover_retries_once_when_the_stale_lock_vanishes(site, lock, monkeypatch):
    """Another run released the stale lock between our read and our rename: ENOENT, judge again, take it."""
    plant(site["lock"], "awx job 7", age=7 * 3600)
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_fs

    real = sms_fs.LocalVolume.rename
    calls = []

    def rename(volume, src, dst):
        calls.append(src)
        if len(calls) == 1:
            volume.unlink(src)  # the other run removes it just before us
        return real(volume, src, dst)

    monkeypatch.setattr(sms_fs.LocalVolume, "rename", rename)
    result = lock()
    assert not result.get("failed"), result
    assert result["acquired"] is True and result["changed"] is False and "previous_holder" not in result
    assert json.loads(read(site["lock"]))["holder"] == "awx job 42"
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]


def test_takeover_leaves_a_lock_taken_meanwhile_alone(site, lock, monkeypatch):
    """Between our read and our takeover another run took the stale lock over: ours must not replace it."""
    from ansible_collections.sms.hotfix.plugins.modules import sms_rollout_lock

    plant(site["lock"], "awx job 7", age=7 * 3600)
    real = sms_rollout_lock.take_over

    def late(lock_file, judged, data):
        plant(lock_file.path, "awx job 8", age=0)  # the other run's fresh lock, written before our takeover
        monkeypatch.setattr(sms_rollout_lock, "take_over", real)
        return real(lock_file, judged, data)

    monkeypatch.setattr(sms_rollout_lock, "take_over", late)
    result = lock()
    assert result.get("failed") is True and "held by awx job 8" in result["msg"], result
    assert json.loads(read(site["lock"]))["holder"] == "awx job 8"
    assert os.listdir(os.path.dirname(site["lock"])) == ["rollout.lock"]
