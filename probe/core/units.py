"""Durations, clocks and number formatting shared by every part of probe.

Storage keeps every time as integer milliseconds since the Unix epoch, UTC.
"""
from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# Far beyond any sensible interval or retention, and far inside what datetime and the
# scheduler can add to today without overflowing.
MAX_DURATION_S = 36500 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds from `"500ms"`, `"30s"`, `"1h30m"` or a plain number of seconds.

    Raises ValueError with a message fit for an operator.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"30s\" or a number of seconds")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return _bounded(float(value))
    if not isinstance(value, str):
        raise ValueError("must be a duration such as \"30s\" or a number of seconds")
    text = value.strip().lower()
    if text.startswith("-"):
        raise ValueError("must not be negative")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError('must be a duration such as "500ms", "30s", "5m", "1h" or "7d"')
    return _bounded(total)


def _bounded(seconds: float) -> float:
    if not math.isfinite(seconds):  # TOML has inf and nan
        raise ValueError("must be a finite number of seconds")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"must be at most {MAX_DURATION_S / 86400:.0f}d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 0.5 -> "500ms", 90 -> "90s", 300 -> "5m", 86400 -> "1d"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    # Below two minutes, seconds read better ("90s ≥ 60s", not "90s ≥ 1m").
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= max(size, 120) and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def format_elapsed(seconds: float) -> str:
    """A human span for incident durations: "4m 30s", "2h 5m", "3d 4h"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])


def now_ms() -> int:
    return int(time.time() * 1000)


def format_latency(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def iso_utc(ms: int | None) -> str | None:
    """UTC milliseconds as ISO 8601 with an explicit offset ("2026-11-24T06:30:00.123+00:00")."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
