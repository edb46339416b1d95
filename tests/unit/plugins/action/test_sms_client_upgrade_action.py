"""The sms_client_upgrade action plugin's reboot-window refusal (restart=reboot), on the controller."""

import datetime

from ansible_collections.sms.hotfix.plugins.action.sms_client_upgrade import reboot_refusal

NOW = datetime.datetime(2026, 11, 24, 4, 50, 0)  # a Tuesday, 04:50


def test_a_reboot_that_would_end_after_the_window_is_refused_with_the_arithmetic():
    said = reboot_refusal(
        {"restart": "reboot", "window": "22:00-05:00", "reboot_timeout": 600, "verify_seconds": 30}, now=NOW
    )
    assert said and "would not finish inside the maintenance window '22:00-05:00'" in said
    assert "it is 2026-11-24T04:50:00" in said and "600s plus a 30s watch (until 2026-11-24T05:00:30)" in said


def test_a_reboot_that_ends_inside_the_window_may_start():
    args = {"restart": "reboot", "window": "22:00-05:00", "reboot_timeout": 479, "verify_seconds": 120}
    assert reboot_refusal(args, now=NOW) is None  # 04:59:59, inside
    assert reboot_refusal(dict(args, reboot_timeout=480), now=NOW) is not None  # 05:00:00: the end is exclusive


def test_outside_the_window_a_reboot_wave_never_starts():
    assert (
        reboot_refusal({"restart": "reboot", "window": "Sat,Sun 22:00-05:00", "reboot_timeout": 10}, now=NOW)
        is not None
    )  # Tuesday


def test_only_a_reboot_with_a_window_is_judged():
    assert reboot_refusal({"restart": "service", "window": "01:00-01:01"}, now=NOW) is None
    assert reboot_refusal({"restart": "reboot", "window": ""}, now=NOW) is None
    assert reboot_refusal({"restart": "reboot", "window": "01:00-01:01", "state": "absent"}, now=NOW) is None
