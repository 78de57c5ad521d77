"""Latency histograms small enough to keep in every rollup row, mergeable in SQL.

Buckets grow by 10 % from 0.1 ms, so a percentile read back is within ±5 % of the
true value; a day of checks usually fills fewer than ten buckets. Stored sparse as
text: "12:3,15:40" (bucket index:count).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

_BASE = 0.1  # ms: lower edge of bucket 0
_GROWTH = 1.1
_LOG_GROWTH = math.log(_GROWTH)
MAX_BUCKET = 200  # ~ 19 hours: everything slower shares the last bucket


def bucket_of(latency_ms: float) -> int:
    if latency_ms <= _BASE:
        return 0
    return min(MAX_BUCKET, int(math.log(latency_ms / _BASE) / _LOG_GROWTH))


def bucket_value(index: int) -> float:
    """A representative latency for a bucket (its geometric middle)."""
    return _BASE * _GROWTH ** (index + 0.5)


def encode(counts: dict[int, int]) -> str:
    return ",".join(f"{i}:{c}" for i, c in sorted(counts.items()) if c)


def decode(text: str | None) -> dict[int, int]:
    if not text:
        return {}
    out: dict[int, int] = {}
    for part in text.split(","):
        index, _, count = part.partition(":")
        out[int(index)] = out.get(int(index), 0) + int(count)
    return out


def merge_encoded(a: str | None, b: str | None) -> str:
    """SQL function `hist_merge(a, b)`: the sum of two stored histograms."""
    if not a:
        return b or ""
    if not b:
        return a
    counts = decode(a)
    for index, count in decode(b).items():
        counts[index] = counts.get(index, 0) + count
    return encode(counts)


def merge(histograms: Iterable[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in histograms:
        for index, count in hist.items():
            out[index] = out.get(index, 0) + count
    return out


def percentile(counts: dict[int, int], q: float, lo: float | None = None, hi: float | None = None) -> float | None:
    """The q-th percentile (0 < q <= 100), clamped to the known min/max if given."""
    total = sum(counts.values())
    if not total:
        return None
    rank = math.ceil(q / 100 * total)
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            value = bucket_value(index)
            if lo is not None:
                value = max(value, lo)
            if hi is not None:
                value = min(value, hi)
            return value
    return None  # pragma: no cover - rank never exceeds total
