"""[cluster] Membership, leadership and who checks what, for one instance.

Every heartbeat the instance renews its row (the database's clock), reads the live members (seen
within three heartbeats), and either verifies that it still leads (the leader's advisory lock is
its connection's, the term still its own) or tries to become the leader. Any error or deadline
on that connection ends its leadership at once: the lock is gone with the connection, or soon
will be, and another instance takes over (probe/storage/postgres/link.py).

Work is shared by rendezvous hashing (Thaler and Ravishankar's highest random weight): within a
location, a monitor belongs to the live instance whose hash with the monitor's id is highest. When
an instance goes, only its monitors move, each to its next-highest instance; nothing is stored.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from probe.config.cluster import ClusterConfig

log = logging.getLogger("probe.cluster")


def rendezvous(key: str, candidates: list[str]) -> str | None:
    """The candidate with the highest weight for `key` (ties: the greater name)."""
    return max(candidates, key=lambda c: (hashlib.blake2b(f"{key}\0{c}".encode(), digest_size=8).digest(), c),
               default=None)


class Cluster:
    def __init__(self, config: ClusterConfig, link, *, on_lead: Callable[[int], Awaitable[None]],
                 on_follow: Callable[[], Awaitable[None]], on_members: Callable[[], None],
                 on_message: Callable[[str, str], None], on_connect: Callable[[], Awaitable[None]]) -> None:
        self.config = config
        self.link = link  # storage's connection of this instance (PostgresLink)
        self.on_lead, self.on_follow, self.on_members = on_lead, on_follow, on_members
        self.on_message, self.on_connect = on_message, on_connect
        self.members: tuple = ()  # the live members at the last heartbeat (storage's Member rows)
        self.leader = ""  # who took the leader's term last
        self.leading = False
        self.term: int | None = None
        self.led_since_ms: int | None = None
        self.beat_ms: int | None = None  # the database's clock at the last good heartbeat
        self.problem: str | None = None  # why the last heartbeat failed
        self._task: asyncio.Task | None = None
        self._taking: asyncio.Task | None = None  # the take-over after winning the lock
        self._resting = 0  # heartbeats to skip before campaigning again

    @property
    def instance(self) -> str:
        return self.config.instance

    @property
    def location(self) -> str:
        return self.config.location

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.link.connect(self.on_message)
        await self.link.join()
        await self.on_connect()
        await self.round()
        self._task = asyncio.create_task(self._loop(), name="cluster-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.leading:
            await self._step_down("stopping")
        await self.link.leave()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat)
            await self.round()

    async def round(self) -> None:
        """One heartbeat: renew, read the members, lead or try to."""
        try:
            async with asyncio.timeout(max(1.0, 2 * self.config.heartbeat)):
                if not self.link.connected:
                    await self.link.connect(self.on_message)
                    await self.on_connect()  # what was announced while the connection was down is read again
                beat = await self.link.beat()
                if self.leading and not await self.link.still_leading(self.term):
                    await self._step_down("the leader's lock or term is no longer this instance's")
                if not self.leading and self._resting:
                    self._resting -= 1
                elif not self.leading:
                    await self._campaign()
                elif self.members and beat.now_ms // 60_000 != (self.beat_ms or 0) // 60_000:
                    await self.link.forget_gone()  # once a minute
        except Exception as exc:  # noqa: BLE001 - any failure of the cluster connection: step down, retry
            self.problem = f"{type(exc).__name__}: {exc}".strip(": ")
            log.warning("cluster heartbeat failed instance=%s error=%r", self.instance, self.problem)
            if self.leading:
                await self._step_down("the cluster connection failed")
            self.link.close()
            return
        self.problem = None
        self.leader, self.beat_ms = beat.leader, beat.now_ms
        members = tuple(sorted(beat.members, key=lambda m: m.instance))
        changed = [(m.instance, m.location) for m in members] != [(m.instance, m.location) for m in self.members]
        self.members = members
        if changed:
            log.info("cluster members instance=%s members=%s", self.instance,
                     ",".join(f"{m.instance}@{m.location}" for m in members))
            self.on_members()

    async def _campaign(self) -> None:
        term = await self.link.try_lead()
        if term is None:
            return
        self.leading, self.term, self.leader = True, term, self.instance
        log.info("leading the cluster instance=%s term=%d", self.instance, term)
        # Taking over reads the database (open incidents, newest results): heartbeats go on meanwhile,
        # or the others would count this instance gone while it rebuilds.
        self._taking = asyncio.create_task(self._take_over(term), name="cluster-take-over")

    async def _take_over(self, term: int) -> None:
        try:
            await self.on_lead(term)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("taking over as the leader failed instance=%s term=%d", self.instance, term)
            if self.leading and self.term == term:
                await self._step_down("taking over failed")
                self.link.close()  # the lock goes with the connection: another instance may do better

    async def _step_down(self, why: str) -> None:
        log.warning("no longer leading the cluster instance=%s term=%s why=%s", self.instance, self.term, why)
        self.leading, self.term = False, None
        # A leader that lost its lock or its connection is the likeliest to lose them again: for two
        # heartbeats it leaves the lock to the others (alone, it takes it back after them).
        self._resting = 2
        taking, self._taking = self._taking, None
        if taking is not None and not taking.done():
            taking.cancel()
            await asyncio.gather(taking, return_exceptions=True)
        await self.on_follow()

    # ---- who checks what ----------------------------------------------------------------

    def live_locations(self) -> set[str]:
        return {m.location for m in self.members}

    def owns(self, monitor_id: str, locations: tuple[str, ...]) -> bool:
        """Whether this instance checks the monitor: its location is one of the monitor's, and among
        the live instances of that location the monitor's rendezvous hash picks this one."""
        if self.location not in locations:
            return False
        here = [m.instance for m in self.members if m.location == self.location]
        if self.instance not in here:
            here.append(self.instance)  # not seen yet (the first heartbeat failed): check rather than not
        return rendezvous(monitor_id, here) == self.instance

    def health(self) -> dict:
        return {"instance": self.instance, "location": self.location, "leader": self.leading,
                "leader_instance": self.leader or None, "term": self.term, "problem": self.problem,
                "members": [{"instance": m.instance, "location": m.location, "version": m.version,
                             "started_ms": m.started_ms, "seen_ms": m.seen_ms} for m in self.members]}
