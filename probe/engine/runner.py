"""Runs one check the way both the scheduler and `probe check` need it run.

The caller owns what every check shares: the deadline, the shared HTTP session, the
ICMP socket mode, turning a stray exception into a "down" result, and the
`degraded_latency` rule. A check only talks to its target.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from probe.checks import CheckContext, Progress
from probe.checks.base import Check
from probe.core.models import CheckResult, Status
from probe.core.units import format_duration, format_latency

log = logging.getLogger("probe.runner")


class CheckRunner:
    def __init__(self, **provided: Any) -> None:
        # What checks need (see Check.needs), made on first use; the caller may hand some in
        # (`probe check` gives passive checks the database's history).
        self._shared: dict[str, Any] = dict(provided)

    async def close(self) -> None:
        shared, self._shared = self._shared, {}
        for value in shared.values():
            if hasattr(value, "close"):
                await value.close()

    def _provide(self, check: Check, ctx: CheckContext) -> None:
        source = ctx.source_address
        for name, make in check.needs.items():
            key = name if name in self._shared or not source else f"{name}@{source}"
            if key not in self._shared:
                self._shared[key] = make(source) if source else make()
            setattr(ctx, name, self._shared[key])

    async def run(self, monitor, check: Check) -> CheckResult:
        progress = Progress()
        ctx = CheckContext(timeout=monitor.timeout, progress=progress, monitor_id=monitor.id,
                           source_address=getattr(monitor, "source_address", ""))
        self._provide(check, ctx)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(monitor.timeout):
                result = await check.run(ctx)
        except TimeoutError:
            result = CheckResult.down(progress.timeout_reason(format_duration(monitor.timeout)),
                                      (time.perf_counter() - started) * 1000, **progress.details)
        except Exception as exc:  # a bug in a check must cost one result, never the scheduler
            log.exception("check raised monitor=%s type=%s", monitor.id, check.type)
            result = CheckResult.down(f"check failed unexpectedly: {exc.__class__.__name__}: {exc}")
        return apply_degraded_latency(result, monitor.degraded_latency)


def apply_degraded_latency(result: CheckResult, threshold_s: float | None) -> CheckResult:
    if threshold_s is None or result.status is not Status.UP or result.latency_ms is None:
        return result
    if result.latency_ms <= threshold_s * 1000:
        return result
    reason = (f"{result.reason}; slow: {format_latency(result.latency_ms)} "
              f"(degraded above {format_latency(threshold_s * 1000)})")
    return CheckResult(Status.DEGRADED, reason, result.latency_ms, result.details)
