"""probe's own connectivity: is it the network here, or the targets out there?

`[server] connectivity` names targets that are up whenever probe's own network is (a public
resolver's port 53, a big web site). When a check fails, `confirm()` asks them all (the
failures of one moment share one round): if every one fails too, probe's own network is
down, and the failure is recorded as offline: no data, no incident. The state stays lost
until a round (one every RECHECK_S) reaches a target again. Each change is told once to the
operator's channels (`connectivity_lost` / `connectivity_restored`) and kept in the
database, so a restart neither repeats nor forgets it. With no targets, nothing of this runs.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from probe.checks.base import Check
from probe.checks.http import HttpCheck, HttpOptions
from probe.checks.tcp import TcpCheck, TcpOptions
from probe.core.models import ConnectivityChange, Status
from probe.core.units import now_ms
from probe.engine.runner import CheckRunner

log = logging.getLogger("probe.connectivity")

RECHECK_S = 2.0  # while lost: how often the targets are tried again
TIMEOUT_S = 3.0  # one target, one try
STATE_KEY = "connectivity_lost_since"  # meta: when it was lost ("" while it is not)
ANY_ANSWER = ("1xx", "2xx", "3xx", "4xx", "5xx")  # a web server that answers at all is reachable


@dataclass(frozen=True)
class _Target:
    """What the runner wants to know of a monitor."""

    id: str
    timeout: float = TIMEOUT_S
    degraded_latency: float | None = None


def target_check(target: str) -> Check:
    """A URL is asked with HEAD (any answer will do); "host:port" must accept a TCP connection."""
    if target.startswith(("http://", "https://")):
        return HttpCheck(HttpOptions(target, method="HEAD", expect_status=ANY_ANSWER, follow_redirects=False,
                                     cert_expiry_days=None, max_body_bytes=0))
    host, _, port = target.rpartition(":")
    return TcpCheck(TcpOptions(host.strip("[]"), int(port)))


class Connectivity:
    def __init__(self, targets: tuple[str, ...], store,
                 on_change: Callable[[ConnectivityChange], Awaitable[None]]) -> None:
        self.targets = targets
        self.store = store
        self._on_change = on_change
        self._checks = [(target, target_check(target)) for target in targets]
        self._runner = CheckRunner()
        self.lost_since: int | None = None
        self.failures: dict[str, str] = {}  # target -> why, in the last round
        self.checked_ms: int | None = None
        self._round: asyncio.Task | None = None
        self._task: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._checks)

    @property
    def ok(self) -> bool:
        return self.lost_since is None

    async def start(self) -> None:
        if not self.enabled:
            return
        stored = await self.store.meta_get(STATE_KEY)
        self.lost_since = int(stored) if stored else None  # lost before a restart: still lost until seen back
        self._task = asyncio.create_task(self._recheck(), name="connectivity")

    async def stop(self) -> None:
        for task in (self._task, self._round):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._round = None
        await self._runner.close()

    async def confirm(self) -> bool:
        """Asked when a check failed: is probe's own network up? (Always yes when this is off.)"""
        if not self.enabled:
            return True
        if self.lost_since is None:
            await self._one_round()
        return self.lost_since is None

    async def _one_round(self) -> None:
        """Try every target, or wait for the round already under way."""
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._try_targets(), name="connectivity-round")
        await asyncio.shield(self._round)

    async def _try_targets(self) -> None:
        results = await asyncio.gather(*(self._runner.run(_Target(f"connectivity {t}"), check)
                                         for t, check in self._checks))
        self.checked_ms = now = now_ms()
        self.failures = {t: r.reason for (t, _), r in zip(self._checks, results) if r.status is Status.DOWN}
        reachable = len(self.failures) < len(self._checks)
        if reachable == (self.lost_since is None):
            return
        since = now if self.lost_since is None else self.lost_since
        self.lost_since = None if reachable else now
        change = ConnectivityChange(lost=not reachable, since_ms=since, at_ms=now, failures=dict(self.failures))
        await self.store.meta_set(STATE_KEY, "" if reachable else str(now))
        await self._on_change(change)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_S)
            if self.lost_since is None:
                continue
            try:
                await self._one_round()
            except Exception:  # a database hiccup while saving the state: try again next round
                log.exception("connectivity round failed")

    def health(self) -> dict:
        return {"enabled": self.enabled, "ok": self.ok, "lost_since_ms": self.lost_since,
                "checked_ms": self.checked_ms, "targets": list(self.targets), "failures": self.failures}
