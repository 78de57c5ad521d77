"""Runs one check the way both the scheduler and `probe check` need it run.

The caller owns what every check shares: the deadline, the shared HTTP session, the
ICMP socket mode, turning a stray exception into a "down" result, and the
`degraded_latency` rule. A check only talks to its target.
"""
from __future__ import annotations

import asyncio
import logging
import time

from checks import CheckContext, Progress
from checks.base import Check
from checks.http import make_session
from checks.icmp import detect_icmp_privilege
from probe.models import CheckResult, Status
from probe.units import format_duration, format_latency

log = logging.getLogger("probe.runner")


class CheckRunner:
    def __init__(self) -> None:
        self._session = None
        self._icmp_privileged: bool | None = None
        self._icmp_detected = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http_session(self):
        if self._session is None:
            self._session = make_session()
        return self._session

    def _icmp_mode(self) -> bool | None:
        if not self._icmp_detected:
            self._icmp_privileged, self._icmp_detected = detect_icmp_privilege(), True
        return self._icmp_privileged

    async def run(self, monitor, check: Check) -> CheckResult:
        progress = Progress()
        ctx = CheckContext(timeout=monitor.timeout, progress=progress)
        if check.type == "http":
            ctx.http = self._http_session()
        elif check.type == "icmp":
            ctx.icmp_privileged = self._icmp_mode()
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
