"""Push (heartbeat) check: the job reports in; probe records what it said, and a failure when
a report does not come in time.

Expected reports follow `schedule` (cron, in `timezone`) or come every `period`. A slot is
counted from the newest result: the next cron run after it, or `period` after it (as
healthchecks does). A slot with no report by its time plus `grace` is a down result at the
slot's time. With `max_runtime`, a run that reported its start must end within it, or it is
down at start + max_runtime. The run's duration (start to end) is the result's latency.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from probe.checks.base import Check, CheckContext, Due, FedState, History, Ping
from probe.config.schema import Duration, at_least, positive, show
from probe.core.models import CheckResult, ResultRecord
from probe.core.units import format_duration, now_ms

TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,200}$")  # unreserved URL characters: the token sits in a path
MIN_PERIOD_S = 1.0
GAP_HORIZON = timedelta(days=400)  # how far ahead a schedule's longest gap is looked for
GAP_RUNS = 1000


@dataclass(frozen=True)
class PushOptions:
    token: str = field(repr=False)  # a secret: whoever knows it can report for the job
    grace: Duration
    schedule: str | None = None  # five cron fields, e.g. "0 3 * * *": 03:00 every day in `timezone`
    period: Duration | None = None  # or: a report every so often
    max_runtime: Duration | None = None  # a run that reported its start must end within this
    timezone: str = ""  # for `schedule`; default [page] timezone

    def problems(self):
        # Never the token itself in a message: it is a secret.
        if not 16 <= len(self.token) <= 200:
            yield "token", f"must be 16 to 200 characters long (got {len(self.token)})"
        elif not TOKEN.match(self.token):
            yield "token", "may hold only letters, digits and . _ ~ - (it goes into a URL)"
        if (self.schedule is None) == (self.period is None):
            yield "schedule", "give either schedule (cron) or period"
        yield from at_least("period", self.period, MIN_PERIOD_S, duration=True)
        yield from at_least("grace", self.grace, 1.0, duration=True)
        yield from positive("max_runtime", self.max_runtime, duration=True)
        try:
            tz = ZoneInfo(self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f'must be an IANA time zone such as "Europe/Berlin" (got {show(self.timezone)})'
            return
        if self.schedule is not None:
            try:
                CronTrigger.from_crontab(self.schedule, timezone=tz)
            except ValueError as exc:
                yield "schedule", f"is not a cron schedule ({exc}) (got {show(self.schedule)})"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")


class PushCheck(Check):
    type = "push"
    Options = PushOptions
    options: PushOptions
    passive = True
    needs = {"history": lambda *_: History()}

    def __init__(self, options: PushOptions) -> None:
        super().__init__(options)
        self._trigger = _trigger(options.schedule, options.timezone) if options.schedule else None

    @classmethod
    def rhythm(cls, options: PushOptions) -> float:
        # A result holds for two of these (README: availability), so a healthy job's
        # reports cover all the time between them, however irregular its schedule.
        gap = options.period if options.period is not None else _longest_gap(options.schedule, options.timezone)
        return gap + options.grace

    def key(self) -> str:
        return self.options.token

    def target(self) -> str:
        # Never the token: with show_target this is public.
        opts = self.options
        when = (f"every {format_duration(opts.period)}" if opts.period is not None
                else f'on "{opts.schedule}" ({opts.timezone or "UTC"})')
        return f"push, {when}, grace {format_duration(opts.grace)}"

    # ---- fed ----

    def restore(self, last: ResultRecord | None, started_ms: int | None, watching_since_ms: int) -> FedState:
        """From the newest result. Slots that fell due before `watching_since_ms` (while probe was
        not running) are not judged: reports sent then were refused, not missing."""
        if last is None:
            return FedState(watching_since_ms, None, started_ms)
        ended = last.details.get("last_ping_ms") if "due_ms" in last.details else last.ts_ms
        running = started_ms if started_ms is not None and started_ms > last.ts_ms else None
        return FedState(max(last.ts_ms, watching_since_ms), ended, running)

    def feed(self, ping: Ping, state: FedState) -> tuple[CheckResult | None, FedState]:
        if ping.kind == "start":
            return None, dataclasses.replace(state, started_ms=ping.at_ms)
        latency = ping.latency_ms
        if latency is None and state.started_ms is not None:
            latency = float(ping.at_ms - state.started_ms)
        ended = FedState(ping.at_ms, ping.at_ms, None)
        if ping.kind == "success":
            return CheckResult.up(ping.message or "ping received", latency), ended
        reason = "job reported failure"
        if ping.exit_status is not None:
            reason += f": exit status {ping.exit_status}"
        if ping.message:
            reason += f" — {ping.message}"
        return CheckResult.down(reason, latency), ended

    def due(self, state: FedState) -> Due:
        opts = self.options
        if state.started_ms is not None and opts.max_runtime is not None:
            deadline = state.started_ms + int(opts.max_runtime * 1000)
            reason = (f"run started at {self._clock(state.started_ms, deadline)} has not finished "
                      f"after {format_duration(opts.max_runtime)}")
            return Due(deadline, deadline, self._missed(reason, deadline, state),
                       FedState(deadline, state.last_ping_ms, None))
        slot = self._next_slot(state.since_ms)
        since = "no ping yet" if state.last_ping_ms is None else \
            f"no ping since {self._clock(state.last_ping_ms, slot)}"
        reason = f"{since} (due at {self._clock(slot, slot)}, grace {format_duration(opts.grace)})"
        return Due(slot + int(opts.grace * 1000), slot, self._missed(reason, slot, state),
                   dataclasses.replace(state, since_ms=slot))

    @staticmethod
    def _missed(reason: str, due_ms: int, state: FedState) -> CheckResult:
        # `due_ms` marks a result probe recorded by itself (see restore); `last_ping_ms` carries on.
        return CheckResult.down(reason, due_ms=due_ms, last_ping_ms=state.last_ping_ms)

    def _next_slot(self, after_ms: int) -> int:
        if self.options.period is not None:
            return after_ms + int(self.options.period * 1000)
        return _next_fire(self._trigger, after_ms)

    def _clock(self, ms: int, day_of_ms: int) -> str:
        """Local time: "03:00", "03:00:05" off the minute, with the date when not on `day_of_ms`'s day."""
        tz = self.options.tz
        at = datetime.fromtimestamp(ms / 1000, tz)
        text = at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")
        if at.date() != datetime.fromtimestamp(day_of_ms / 1000, tz).date():
            text = f"{at:%Y-%m-%d} {text}"
        return text

    async def run(self, ctx: CheckContext) -> CheckResult:
        """`probe check`: the stored state, or the failure it has become since."""
        now = now_ms()
        last, started = await ctx.history.last(ctx.monitor_id)
        state = self.restore(last, started, last.ts_ms if last else now)
        due = self.due(state)
        if due.fire_ms <= now:
            return due.result
        if last is None:
            return CheckResult.up(f"waiting for the first ping, due at {self._clock(due.ts_ms, now)} "
                                  f"(grace {format_duration(self.options.grace)})")
        return CheckResult(last.status, last.reason, last.latency_ms, last.details)


@functools.lru_cache(maxsize=1024)
def _trigger(schedule: str, timezone_name: str) -> CronTrigger:
    return CronTrigger.from_crontab(schedule, timezone=ZoneInfo(timezone_name or "UTC"))


def _next_fire(trigger: CronTrigger, after_ms: int) -> int:
    """The first run strictly after `after_ms`. On the hour a DST change repeats, APScheduler 3
    can answer the same instant again; step past it rather than loop."""
    after = datetime.fromtimestamp(after_ms / 1000, timezone.utc)
    search = after + timedelta(milliseconds=1)  # APScheduler rounds up to the next whole second
    for _ in range(3):
        fire = trigger.get_next_fire_time(None, search)
        if fire is None:
            break
        if fire > after:
            return int(fire.timestamp() * 1000)
        search += timedelta(hours=1)
    return after_ms + int(GAP_HORIZON.total_seconds() * 1000)  # a schedule that never fires again


@functools.lru_cache(maxsize=1024)
def _longest_gap(schedule: str, timezone_name: str) -> float:
    """Seconds of the longest wait between two runs, over the next GAP_RUNS runs or 400 days."""
    trigger = _trigger(schedule, timezone_name)
    start = now_ms()
    fire, longest = _next_fire(trigger, start), 0
    for _ in range(GAP_RUNS):
        following = _next_fire(trigger, fire)
        longest = max(longest, following - fire)
        fire = following
        if fire - start > GAP_HORIZON.total_seconds() * 1000:
            break
    return longest / 1000
