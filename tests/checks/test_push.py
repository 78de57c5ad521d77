"""The push check as a story of reports and silences: what it records, when, and in what words.

Times are made up (no clock is read): the check is a pure function of its state and the report.
"""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from probe.checks.base import FedState, Ping
from probe.checks.push import PushCheck, PushOptions
from probe.config.loader import ConfigError
from probe.core.models import ResultRecord, Status

TOKEN = "s3cret-token-0123456789"
BERLIN = ZoneInfo("Europe/Berlin")
MIN = 60_000


def at(text: str, tz=BERLIN) -> int:
    """Milliseconds UTC of a local time such as "2026-03-10 03:00"."""
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp() * 1000)


def push(**options) -> PushCheck:
    return PushCheck(PushOptions(**{"token": TOKEN, "grace": 1800.0, "timezone": "Europe/Berlin"} | options))


# --- reports --------------------------------------------------------------------------------

def test_a_success_report_is_up_and_its_message_is_the_reason():
    check = push(schedule="0 3 * * *")
    result, state = check.feed(Ping(at("2026-03-10 03:01"), "success", "backup done, 3.2 GB"), FedState(0))
    assert (result.status, result.reason, result.latency_ms) == (Status.UP, "backup done, 3.2 GB", None)
    assert state == FedState(at("2026-03-10 03:01"), at("2026-03-10 03:01"), None)
    assert check.feed(Ping(1, "success"), FedState(0))[0].reason == "ping received"


def test_a_run_that_reported_its_start_has_its_duration_as_latency():
    check = push(schedule="0 3 * * *")
    start = at("2026-03-10 03:00")
    none, state = check.feed(Ping(start, "start"), FedState(start - 86_400_000))
    assert none is None and state.started_ms == start
    result, state = check.feed(Ping(start + 754_250, "success"), state)
    assert (result.status, result.latency_ms) == (Status.UP, 754_250.0)
    assert state.started_ms is None


@pytest.mark.parametrize("ping, reason", [
    (Ping(5, "fail"), "job reported failure"),
    (Ping(5, "fail", exit_status=2), "job reported failure: exit status 2"),
    (Ping(5, "fail", "rsync: connection refused", exit_status=23),
     "job reported failure: exit status 23 — rsync: connection refused"),
])
def test_a_failure_report_is_down_and_says_what_the_job_said(ping, reason):
    result, state = push(period=300.0).feed(ping, FedState(0))
    assert (result.status, result.reason) == (Status.DOWN, reason)
    assert state.since_ms == 5


# --- silences -------------------------------------------------------------------------------

def test_a_missed_cron_slot_is_down_at_the_slot_and_recorded_after_the_grace():
    check = push(schedule="0 3 * * *")
    pinged = at("2026-03-09 03:02")
    due = check.due(FedState(pinged, pinged))
    assert due.ts_ms == at("2026-03-10 03:00")
    assert due.fire_ms == due.ts_ms + 30 * MIN
    assert due.result.status is Status.DOWN
    assert due.result.reason == "no ping since 2026-03-09 03:02 (due at 03:00, grace 30m)"
    assert due.then == FedState(due.ts_ms, pinged, None)
    following = check.due(due.then)  # the next night is the next slot, counted from this one
    assert following.ts_ms == at("2026-03-11 03:00")


def test_the_schedule_is_read_in_its_time_zone_across_a_dst_change():
    check = push(schedule="0 3 * * *")
    before = at("2026-03-28 03:00")  # Berlin moves to summer time on 2026-03-29 at 02:00
    due = check.due(FedState(before, before))
    assert due.ts_ms == at("2026-03-29 03:00")
    assert due.ts_ms - before == 23 * 3600 * 1000
    assert due.result.reason == "no ping since 2026-03-28 03:00 (due at 03:00, grace 30m)"


def test_a_period_counts_from_the_newest_report_and_seconds_show_off_the_minute():
    check = push(period=300.0, grace=60.0)
    pinged = at("2026-03-10 10:00:31")
    due = check.due(FedState(pinged, pinged))
    assert (due.ts_ms, due.fire_ms) == (pinged + 5 * MIN, pinged + 6 * MIN)
    assert due.result.reason == "no ping since 10:00:31 (due at 10:05:31, grace 60s)"


def test_a_monitor_that_never_reported_says_so():
    due = push(period=60.0, grace=30.0).due(FedState(at("2026-03-10 10:00")))
    assert due.result.reason == "no ping yet (due at 10:01, grace 30s)"


def test_a_started_run_past_max_runtime_is_down_at_its_deadline():
    check = push(schedule="0 3 * * *", max_runtime=7200.0)
    start = at("2026-03-10 03:00")
    _, state = check.feed(Ping(start, "start"), FedState(at("2026-03-09 04:10"), at("2026-03-09 04:10")))
    due = check.due(state)
    assert due.ts_ms == due.fire_ms == start + 2 * 3600 * 1000  # not at 03:30: the run began in time
    assert due.result.reason == "run started at 03:00 has not finished after 2h"
    assert due.then.started_ms is None and due.then.since_ms == due.ts_ms


def test_without_max_runtime_a_start_does_not_move_the_deadline():
    check = push(schedule="0 3 * * *")
    _, state = check.feed(Ping(at("2026-03-10 03:00"), "start"), FedState(at("2026-03-09 03:01"), 1))
    assert check.due(state).fire_ms == at("2026-03-10 03:30")


# --- restored from the newest stored result ------------------------------------------------

def record(ts, status=Status.UP, **details):
    return ResultRecord("job", ts, ts, status, "r", details=details)


def test_a_restart_does_not_judge_slots_that_fell_due_while_probe_was_not_running():
    check = push(period=300.0)
    state = check.restore(record(1_000_000), None, watching_since_ms=5_000_000)
    assert state == FedState(5_000_000, 1_000_000, None)


def test_a_restored_missed_result_keeps_the_last_real_report_and_a_pending_start():
    check = push(period=300.0)
    missed = record(2_000_000, Status.DOWN, due_ms=2_000_000, last_ping_ms=1_700_000)
    assert check.restore(missed, 2_100_000, 0) == FedState(2_000_000, 1_700_000, 2_100_000)
    assert check.restore(missed, 1_900_000, 0).started_ms is None  # that run ended before the newest result


# --- configuration --------------------------------------------------------------------------

def test_a_push_monitor_takes_the_page_time_zone_and_its_schedule_as_interval(write_config):
    from probe.config.loader import load_config
    config = load_config(write_config(f"""
        [page]
        timezone = "Asia/Shanghai"
        [[monitors]]
        id = "backup"
        type = "push"
        token = "{TOKEN}"
        schedule = "0 3 * * 1-5"
        grace = "30m"
    """))
    monitor = config.monitors[0]
    assert monitor.options.timezone == "Asia/Shanghai"
    assert monitor.interval == 3 * 86400 + 1800  # Friday to Monday, plus the grace
    assert monitor.make_check().target() == 'push, on "0 3 * * 1-5" (Asia/Shanghai), grace 30m'
    assert TOKEN not in monitor.make_check().target()


@pytest.mark.parametrize("body, problem", [
    ('token = "short"\nperiod = "5m"\ngrace = "1m"\n', "token must be 16 to 200 characters long (got 5)"),
    ('token = "has a space in it here"\nperiod = "5m"\ngrace = "1m"\n',
     "token may hold only letters, digits and . _ ~ - (it goes into a URL)"),
    (f'token = "{TOKEN}"\ngrace = "1m"\n', "schedule give either schedule (cron) or period"),
    (f'token = "{TOKEN}"\nperiod = "5m"\nschedule = "0 3 * * *"\ngrace = "1m"\n',
     "schedule give either schedule (cron) or period"),
    (f'token = "{TOKEN}"\nschedule = "0 25 * * *"\ngrace = "1m"\n',
     'schedule is not a cron schedule (Error validating expression \'25\': the last value (25) is higher '
     'than the maximum value (23)) (got "0 25 * * *")'),
    (f'token = "{TOKEN}"\nperiod = "5m"\n', "grace is required"),
    (f'token = "{TOKEN}"\nperiod = "5m"\ngrace = "1m"\ninterval = "5m"\n',
     'interval does not apply to type "push": its schedule or period sets when results are expected'),
    (f'token = "{TOKEN}"\nperiod = "500ms"\ngrace = "1m"\n', "period must be at least 1s (got 500ms)"),
])
def test_it_rejects_push_settings_that_cannot_work(load_monitor, body, problem):
    with pytest.raises(ConfigError) as caught:
        load_monitor("push", body)
    assert caught.value.problems == [f'cfg.toml: monitors[0] "m": {problem}']


def test_two_push_monitors_cannot_share_a_token_and_the_error_does_not_show_it(write_config, monkeypatch):
    from probe.config.loader import load_config
    monkeypatch.setenv("PROBE_TEST_PUSH_TOKEN", TOKEN)
    path = write_config("""
        [defaults]
        token = "${PROBE_TEST_PUSH_TOKEN}"
        period = "1h"
        grace = "5m"
        [[monitors]]
        id = "a"
        type = "push"
        [[monitors]]
        id = "b"
        type = "push"
    """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        'cfg.toml: monitors[1] "b": token is already used by monitors[0] "a" (each push monitor needs its own)']
