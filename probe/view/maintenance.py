"""Maintenance as the public reads it: one state per occurrence, a recurring window's rule in
words, and what the front page lists. The page, /api/v1, /api/v2, the admin API (and so the
CLI) and the notifications all take an occurrence's state from `state()`, so none disagrees."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from probe.core.models import MaintenanceWindow, Status
from probe.view.words import texts

# A window that has ended is "verifying" until every monitor it covers has checked up again,
# for at most this long: past that, a monitor still failing is an incident's business.
VERIFYING_MAX_MS = 3_600_000
STATES = ("scheduled", "in_progress", "verifying", "completed")


def state(probe, window: MaintenanceWindow, now: int) -> str:
    """scheduled | in_progress | verifying | completed, in Statuspage's words."""
    status = window.status(now)
    if status == "completed" and now - window.end_ms < VERIFYING_MAX_MS and not _back_up(probe, window):
        return "verifying"
    return status


def _back_up(probe, window: MaintenanceWindow) -> bool:
    latest = [probe.latest.get(m) for m in window.monitors]
    return all(r is not None and r.ts_ms >= window.end_ms and r.status is Status.UP for r in latest)


@dataclass(frozen=True)
class Item:
    """One maintenance window as the front page shows it: a recurring one by its next (or
    running) occurrence and its rule in words."""

    window: MaintenanceWindow
    state: str
    rule: str  # "every Sunday 02:00–04:00 Europe/Berlin"; "" for a one-off window


def front_page(probe, windows: list[MaintenanceWindow], now: int, horizon_ms: float, language: str
               ) -> tuple[list[Item], list[Item]]:
    """(in progress or verifying, upcoming within `horizon_ms`): one item per window, its current
    occurrence or else its next; a recurring window's later occurrences stay in the APIs."""
    running, upcoming, seen = [], [], set()
    for window in sorted(windows, key=lambda w: w.start_ms):
        key = window.series or window.id
        now_state = state(probe, window, now)
        if key in seen or now_state == "completed":
            continue
        if now_state == "scheduled" and window.start_ms - now > horizon_ms:
            continue
        seen.add(key)
        item = Item(window, now_state, rule(probe, window, language))
        (upcoming if now_state == "scheduled" else running).append(item)
    return running, upcoming


def next_per_window(probe, windows: list[MaintenanceWindow], now: int, lookback_ms: int
                    ) -> list[MaintenanceWindow]:
    """One occurrence per window: the running one, else the next, else (a window with nothing
    ahead) its latest of the last `lookback_ms`, so one just ended or cancelled still shows."""
    chosen: dict[str, MaintenanceWindow] = {}
    for window in sorted(windows, key=lambda w: w.start_ms):
        key = window.series or window.id
        held = chosen.get(key)
        if window.end_ms > now:
            if held is None or held.end_ms <= now:
                chosen[key] = window
        elif window.end_ms > now - lookback_ms and (held is None or held.end_ms <= now):
            chosen[key] = window
    return sorted(chosen.values(), key=lambda w: w.start_ms)


def rule(probe, window: MaintenanceWindow, language: str) -> str:
    config = next((c for c in probe.config.maintenance if c.id == window.series and c.cron), None)
    return rule_words(config, language) if config is not None else ""


def rule_words(config, language: str) -> str:
    """A cron window's rule as a person says it: "every Sunday 02:00–04:00 Europe/Berlin".
    The days are read from the schedule's own next runs, so the words say what probe will do;
    a schedule that is not "these days at this time" is shown as its cron line."""
    t = texts(language)
    minute, hour, day, month, _ = config.cron.split()
    if not (minute.isdigit() and hour.isdigit() and day == "*" and month == "*"):
        return t["maintenance.rule_cron"].format(cron=config.cron, tz=config.tz.key)
    start = datetime(2000, 1, 1, int(hour), int(minute))
    end = start + timedelta(seconds=config.duration)
    span = f"{start:%H:%M}–{end:%H:%M}" if config.duration < 86_400 else t["maintenance.rule_from"].format(
        start=f"{start:%H:%M}", hours=round(config.duration / 3600))
    names = [t[f"weekday.{d}"] for d in _weekdays(config)]
    if len(names) == 7:
        days = t["maintenance.every_day"]
    else:
        listed = names[0] if len(names) == 1 else t["maintenance.list"].join(names[:-1]) + t["maintenance.and"] + names[-1]
        days = t["maintenance.every"].format(days=listed)
    return t["maintenance.rule"].format(days=days, span=span, tz=config.tz.key)


def _weekdays(config) -> list[int]:
    """Which weekdays (0 Monday .. 6 Sunday) the window starts on, from two weeks of its runs."""
    return sorted({datetime.fromtimestamp(w.start_ms / 1000, config.tz).weekday()
                   for w in config.occurrences(_FIXED_MS, _FIXED_MS + 15 * 86_400_000)})


_FIXED_MS = 1_767_225_600_000  # 2026-01-01: the rule reads the same whenever it is asked
