"""An instance's own connection to the cluster ([cluster]): membership, leadership, the channels.

One dedicated connection, never pooled (a pool's release runs pg_advisory_unlock_all): on it the
instance heartbeats its row of `cluster_instances` with the database's clock, the leader holds the
leader's session advisory lock, and every instance LISTENs to what the others commit. Losing the
connection loses the lock at once, which is what makes another instance the leader; so every call
here has a deadline, and the caller steps down on any error (REFERENCE.md C and D).
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

from probe.storage.interface import StoreError

log = logging.getLogger("probe.cluster")

LEADER_LOCK = 0x70726F62_6C6561  # "prob" "lea": held by the leader's cluster connection
NOW_MS = "(extract(epoch from now()) * 1000)::bigint"  # the database's clock: no instance's own
FORGET_AFTER_MS = 3_600_000  # rows of instances gone this long are deleted
# What the instances LISTEN to: results as they commit, and what else changed (incidents, maintenance, outbox)
RESULTS_CHANNEL, CHANGES_CHANNEL = "probe_results", "probe_changes"


@dataclass(frozen=True, slots=True)
class Member:
    instance: str
    location: str
    version: str
    host: str
    pid: int
    started_ms: int
    seen_ms: int  # the database's clock


@dataclass(frozen=True, slots=True)
class Beat:
    now_ms: int  # the database's clock at the heartbeat
    members: tuple[Member, ...]  # the live ones, the instance itself included
    leader: str  # the instance that took the leader's term last ("" before any did)
    term: int


class PostgresLink:
    def __init__(self, connect, instance: str, location: str, version: str, heartbeat_s: float) -> None:
        self._connect = connect  # () -> a new asyncpg connection
        self.instance, self.location, self.version = instance, location, version
        self.heartbeat_s = heartbeat_s
        self.token = secrets.token_hex(8)  # tells this process's row from another's of the same name
        self.conn = None
        self.started_ms: int | None = None
        self.listener: Callable[[str, str], None] | None = None

    @property
    def ttl_ms(self) -> int:
        """Unseen for three heartbeats: gone."""
        return int(3 * self.heartbeat_s * 1000)

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.is_closed()

    async def connect(self, listener: Callable[[str, str], None]) -> None:
        """A fresh connection that listens to the cluster's channels; `listener(channel, payload)`."""
        self.close()
        conn = await asyncio.wait_for(self._connect(), self._deadline)
        try:
            for channel in (RESULTS_CHANNEL, CHANGES_CHANNEL):
                await conn.add_listener(channel, lambda _c, _pid, ch, payload: listener(ch, payload))
        except BaseException:
            conn.terminate()
            raise
        self.conn, self.listener = conn, listener

    @property
    def _deadline(self) -> float:
        return max(1.0, 2 * self.heartbeat_s)

    async def join(self) -> None:
        """Add this instance's row. A name a live instance holds is refused once it has stayed live for
        three heartbeats (a restart after a kill -9 takes the dead one's row as soon as it is stale)."""
        for _ in range(4):
            if await self._upsert():
                return
            holder = await self.conn.fetchrow(f"SELECT host, pid, {NOW_MS} - seen_ms FROM cluster_instances"
                                              " WHERE instance = $1", self.instance)
            if holder is not None and holder[0] == socket.gethostname() and not _alive(holder[1]):
                await self.conn.execute("UPDATE cluster_instances SET token = $1 WHERE instance = $2",
                                        self.token, self.instance)
                continue
            await asyncio.sleep(self.heartbeat_s)
        raise StoreError(f'[cluster] instance "{self.instance}" is the name of a live instance (host {holder[0]}, '
                         f"pid {holder[1]}, seen {holder[2] / 1000:.1f}s ago): each instance needs a name of its own")

    async def _upsert(self) -> bool:
        """This instance's row, seen now: False if another live process holds the name."""
        status = await self.conn.execute(
            "INSERT INTO cluster_instances (instance, location, version, host, pid, token, started_ms, seen_ms)"
            f" VALUES ($1, $2, $3, $4, $5, $6, {NOW_MS}, {NOW_MS}) ON CONFLICT (instance) DO UPDATE SET"
            " location = excluded.location, version = excluded.version, host = excluded.host, pid = excluded.pid,"
            " token = excluded.token, seen_ms = excluded.seen_ms,"
            " started_ms = CASE WHEN cluster_instances.token = excluded.token THEN cluster_instances.started_ms"
            " ELSE excluded.started_ms END"
            " WHERE cluster_instances.token = excluded.token OR cluster_instances.seen_ms < excluded.seen_ms - $7",
            self.instance, self.location, self.version, socket.gethostname(), os.getpid(), self.token, self.ttl_ms,
            timeout=self._deadline)
        return status.endswith(" 1")

    async def beat(self) -> Beat:
        """Seen now; the live members, the leader's name and term, by the database's clock."""
        if not await self._upsert():
            raise StoreError(f'[cluster] instance "{self.instance}" was taken over by another process')
        rows = await self.conn.fetch(
            f"SELECT instance, location, version, host, pid, started_ms, seen_ms, {NOW_MS} FROM cluster_instances"
            f" WHERE seen_ms >= {NOW_MS} - $1 ORDER BY instance", self.ttl_ms, timeout=self._deadline)
        leader = await self.conn.fetchrow(f"SELECT instance, term, {NOW_MS} FROM cluster_leader WHERE id = 1",
                                          timeout=self._deadline)
        return Beat(leader[2], tuple(Member(*row[:7]) for row in rows), leader[0], leader[1])

    async def try_lead(self) -> int | None:
        """Take the leader's lock if it is free, then the next term (waiting for a former leader's
        commit in flight, which holds the term's row): the term, or None."""
        if not await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=self._deadline):
            return None
        try:
            return await self.conn.fetchval(
                f"UPDATE cluster_leader SET term = term + 1, instance = $1, since_ms = {NOW_MS} WHERE id = 1"
                " RETURNING term", self.instance, timeout=self._deadline)
        except BaseException:
            self.close()  # the lock goes with the connection
            raise

    async def still_leading(self, term: int) -> bool:
        """The lock is still this session's and the term still this instance's."""
        row = await self.conn.fetchrow(
            "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND classid = $1 AND objid = $2 AND objsubid = 1 AND granted), (SELECT term FROM cluster_leader)",
            LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF, timeout=self._deadline)
        return row[0] == 1 and row[1] == term

    async def forget_gone(self) -> None:
        """The leader tidies: rows of instances gone for an hour."""
        await self.conn.execute(f"DELETE FROM cluster_instances WHERE seen_ms < {NOW_MS} - $1", FORGET_AFTER_MS,
                                timeout=self._deadline)

    async def leave(self) -> None:
        """A clean stop: the row goes at once, so the others share its monitors now, not in 3 heartbeats."""
        if self.connected:
            try:
                await self.conn.execute("DELETE FROM cluster_instances WHERE instance = $1 AND token = $2",
                                        self.instance, self.token, timeout=self._deadline)
            except Exception as exc:  # noqa: BLE001 - a stop goes on; the others see the row go stale
                log.warning("could not leave the cluster cleanly: %s", exc)
        self.close()

    def close(self) -> None:
        """Drop the connection (and with it the leader's lock)."""
        if self.conn is not None:
            self.conn.terminate()
        self.conn = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
