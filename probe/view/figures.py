"""Each monitor's availability figures and sparkline for the page, memoised between renders.

At 1,000 monitors, summing four windows' segments and 24 hourly means per monitor was most
of building the view, although two renders 5 s apart read the same sums for nearly every
monitor. So what depends only on a monitor's rollups is kept per monitor, keyed by the
writer's per-monitor count of rollup changes (`RollupCache.version`) and by what moves with
the clock: a window's whole segments (they move every hour) and the sparkline's hours.

What moves with `now` itself is computed every render, by the same functions and in the same
order as an uncached computation (`Stats.durations`), so the figures are the same floats:
each window's first, partial hour (pro rata) and the newest result's open interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from probe.view.stats import figure, whole_sums


@dataclass
class _WindowSums:
    """Per monitor: (version, the whole sums of each window), valid for `segments`."""

    segments: tuple
    by_monitor: dict[int, tuple[int, tuple]] = field(default_factory=dict)


async def window_figures(probe, monitor_ids: list[str], spans: dict[str, tuple[int, int]], now: int, mode: str,
                         versions: dict[int, int]) -> dict[str, tuple[dict[str, float | None], dict[str, str]]]:
    """Per monitor id: ({window: availability}, {window: label}), for monitors the store knows.
    `versions` is a copy of `RollupCache.version` taken before any sums were read: a change
    landing during the read then costs a recomputation, never a stale memo."""
    store, stats = probe.store, probe.stats
    mids = [(m, store.monitor_ids[m]) for m in monitor_ids if m in store.monitor_ids]
    windows = await stats.window_parts([mid for _, mid in mids], spans, now)
    memo = _memo(store.sums, tuple(w.whole for w in windows.values()))
    named = list(windows.items())
    out = {}
    for key, mid in mids:
        version = versions.get(mid, 0)
        hit = memo.by_monitor.get(mid)
        if hit is None or hit[0] != version:
            hit = version, tuple(whole_sums(mid, w.parts) for _, w in named)
            memo.by_monitor[mid] = hit
        uptime, labels = {}, {}
        for (name, w), whole in zip(named, hit[1]):
            uptime[name], labels[name] = figure(stats.completed(mid, whole, w.parts, w.start, w.end, now), mode)
        out[key] = uptime, labels
    return out


def _memo(sums, segments: tuple) -> _WindowSums:
    memo = sums.derived.get("window_sums")
    if memo is None or memo.segments != segments:  # a new hour: the windows' edges moved
        memo = sums.derived["window_sums"] = _WindowSums(segments)
    return memo


def sparklines(sums, hourly: list[dict], hour: int, mids: list[int], versions: dict[int, int]) -> dict[int, list]:
    """Mean latency of each of the hours in `hourly` (the first starting at `hour`), per monitor;
    `versions` as for `window_figures`."""
    memo = sums.derived.get("sparklines")
    if memo is None or memo[0] != hour:
        memo = sums.derived["sparklines"] = (hour, {})
    by_monitor = memo[1]
    out = {}
    for mid in mids:
        version = versions.get(mid, 0)
        hit = by_monitor.get(mid)
        if hit is None or hit[0] != version:
            hit = by_monitor[mid] = version, [_mean_latency(entry.get(mid)) for entry in hourly]
        out[mid] = hit[1]
    return out


def _mean_latency(values: list | None) -> float | None:
    return values[6] / values[5] if values is not None and values[5] else None
