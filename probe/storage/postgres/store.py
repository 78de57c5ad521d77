"""The PostgreSQL engine, on asyncpg: the same semantics as SQLite, for a team whose data lives in
the database it already backs up, replicates and fails over.

- One dedicated writer connection: the batching writer (probe/storage/writer.py) commits each
  batch in one transaction on it, and the small tables are written on it between batches. A
  lost connection is opened again at the next write; meanwhile results wait in memory (the
  writer's bounded queue), exactly as when a SQLite disk is full.
- A pool for reads (the page, the APIs), so a slow read never holds up the writer.
- Statements are prepared once per connection (asyncpg's statement cache); result batches go
  with executemany (one round trip per batch, pipelined), upserting as SQLite's
  INSERT OR REPLACE does.
- Migrations under an advisory lock (migrations.py); ids handed out by the process as in
  SQLite (one writing process per database, which `probe run` enforces), except for several
  instances of a [cluster] (together.py: ids from sequences, the leader's rows fenced by its term).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from probe.config.storage import StorageTarget
from probe.core.calendar import Calendar
from probe.core.models import Status
from probe.core.units import now_ms
from probe.storage.interface import StoreError
from probe.storage.journal import AnswerJournal
from probe.storage.postgres.migrations import migrate
from probe.storage.postgres.problems import WRITE_ERRORS, WriterElsewhere, problem_of
from probe.storage.postgres.together import Together
from probe.storage.postgres.tools import Tools
from probe.storage.reads import Reads
from probe.storage.records import Records, record_statement
from probe.storage.rollcache import DAILY, HOURLY, RollupCache
from probe.storage.rollups import FLAG_MAINTENANCE, FLAG_OFFLINE, Bucket, LastResult, Rollups
from probe.storage.rows import ID_TABLES, RowBuilder
from probe.storage.writable import WriteState
from probe.storage.writer import BatchWriter

log = logging.getLogger("probe.store")

_UPSERT_ROLLUP = """
INSERT INTO rollups VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
ON CONFLICT (monitor, res, start) DO UPDATE SET
  n_up = rollups.n_up + excluded.n_up, n_degraded = rollups.n_degraded + excluded.n_degraded,
  n_down = rollups.n_down + excluded.n_down, up_ms = rollups.up_ms + excluded.up_ms,
  degraded_ms = rollups.degraded_ms + excluded.degraded_ms, down_ms = rollups.down_ms + excluded.down_ms,
  maint_ms = rollups.maint_ms + excluded.maint_ms, maint_good_ms = rollups.maint_good_ms + excluded.maint_good_ms,
  lat_n = rollups.lat_n + excluded.lat_n, lat_sum = rollups.lat_sum + excluded.lat_sum,
  lat_min = least(rollups.lat_min, excluded.lat_min), lat_max = greatest(rollups.lat_max, excluded.lat_max),
  lat_hist = hist_merge(rollups.lat_hist, excluded.lat_hist)
"""
_UPSERT_RESULT = """
INSERT INTO results VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
ON CONFLICT (monitor, ts) DO UPDATE SET late = excluded.late, status = excluded.status,
  latency_us = excluded.latency_us, flags = excluded.flags, reason = excluded.reason, details = excluded.details
"""
_UPSERT_INCIDENT = """
INSERT INTO incidents (id, monitor, origin, title, impact, status, started_ms, resolved_ms, reason, updated_ms,
                       affected, postmortem, postmortem_ms, components)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
ON CONFLICT (id) DO UPDATE SET title = excluded.title, impact = excluded.impact, status = excluded.status,
  resolved_ms = excluded.resolved_ms, reason = excluded.reason, updated_ms = excluded.updated_ms,
  affected = excluded.affected, postmortem = excluded.postmortem, postmortem_ms = excluded.postmortem_ms,
  components = excluded.components
"""
# One resolution's buckets as rows, for every monitor: one walk of the primary key per monitor
# (OFFSET 0 keeps the subquery a per-monitor index scan; flattened, the planner may scan the table).
_BUCKET_ROWS = """
SELECT r.start, r.monitor, r.up_ms, r.degraded_ms, r.down_ms, r.maint_ms, r.maint_good_ms, CAST(r.lat_n AS BIGINT),
       r.lat_sum
FROM monitors m CROSS JOIN LATERAL (SELECT * FROM rollups WHERE monitor = m.id AND res = $1 AND start >= $2
                                    AND start < $3 OFFSET 0) r
WHERE r.start = ANY($4::bigint[])
"""
_UPSERT_LOCATED = """
INSERT INTO location_results (monitor, ts, late, status, latency_us, flags, reason, details, location)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
ON CONFLICT (monitor, location, ts) DO UPDATE SET late = excluded.late, status = excluded.status,
  latency_us = excluded.latency_us, flags = excluded.flags, reason = excluded.reason, details = excluded.details
"""
_PLACEHOLDER = re.compile(r"\?")
WRITER_LOCK = 0x70726F62  # "prob": held by the one process writing a database, for its life
CONNECT_FOR_S = 30.0  # `probe run` keeps trying to reach the server this long at start
READ_POOL = (1, 4)  # min, max connections for reads


def numbered(sql: str, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    """The shared statements' `?` placeholders as PostgreSQL's $1, $2, ..."""
    found = _cache.get(sql)
    if found is None:
        counter = iter(range(1, 100_000))
        found = _cache[sql] = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
    return found


def _count(status: str) -> int:
    """Changed rows from asyncpg's status text ("INSERT 0 1", "UPDATE 3", "DELETE 0")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresStore(Together, Tools, BatchWriter, RowBuilder, Reads, Records):
    WRITE_ERRORS = WRITE_ERRORS
    SUM_LATENCY = "sum(lat_sum ORDER BY start)"  # the order SQLite's index scan sums in

    def __init__(self, target: StorageTarget, calendar: Calendar | None = None, *, flush_interval: float = 0.2,
                 max_batch: int = 20_000, max_pending: int = 100_000, connect_for: float = CONNECT_FOR_S,
                 read_only: bool = False, cluster: bool = False) -> None:
        self.target = target
        self.read_only = read_only
        self.calendar = calendar or Calendar("UTC")
        self.sums = RollupCache(self.calendar)
        self.incidents_version = 0
        self.monitor_ids: dict[str, int] = {}
        self.monitor_keys: dict[int, str] = {}
        self.rollups = Rollups(self.calendar)
        self.connect_for = connect_for
        self.writer = None  # asyncpg.Connection
        self.pool = None  # asyncpg.Pool
        self._write_lock = asyncio.Lock()
        self._reasons: OrderedDict[str, int] = OrderedDict()
        self._next_ids: dict[str, int] = {}
        self._intervals: dict[str, int] = {}  # monitor key -> interval, ms
        self._init_together(cluster)
        # Outbox answers the server could not take (it was down): a local file, named after the database.
        digest = hashlib.sha256(target.display.encode()).hexdigest()[:16]
        self.journal = AnswerJournal(Path(tempfile.gettempdir()) / f"probe-{digest}")
        self._init_writer(WriteState(target.display, problem_of), flush_interval, max_batch, max_pending)

    def describe(self) -> str:
        return self.target.display

    # ---- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self.read_only:
            return await self._open_to_read()
        try:
            self.writer = await self._connect_at_start()
            await self._lock_writer(self.writer)
            await migrate(self.writer, self.target.display, StoreError)
            self.pool = await self._pool()
            if self.cluster:
                await self._catch_up_sequences(self.writer)
                await self.reserve_ids()
            for table in ID_TABLES:
                self._next_ids[table] = await self.writer.fetchval(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
            await self._load_monitors()
            await self._check_calendar()
            await self._replay_journal()
        except StoreError:
            await self.close()
            raise
        except WriterElsewhere as exc:
            await self.close()
            if self.cluster:
                raise StoreError(f"a probe run without [cluster] is writing to this database ({exc}); instances of "
                                 "a cluster share a database only with each other") from None
            raise StoreError(f"another probe is writing to this database ({exc}); one probe run per database"
                             " (or give every instance the same [cluster] section)") from None
        except WRITE_ERRORS as exc:
            await self.close()
            raise StoreError(f"{problem_of(exc)} ({_words(exc)})") from None
        self._start_writer()

    async def _lock_writer(self, conn) -> None:
        """One writing process per database, as SQLite's file lock gives: the writer's connection holds a
        session advisory lock, which the server releases when that connection ends (a kill -9 included).
        The instances of a [cluster] hold it shared: they write together, and no single probe beside them."""
        mode = "pg_try_advisory_lock_shared" if self.cluster else "pg_try_advisory_lock"
        if await conn.fetchval(f"SELECT {mode}($1)", WRITER_LOCK):
            return
        holder = await conn.fetchrow(
            "SELECT a.application_name, a.client_addr::text, a.pid FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.granted",
            WRITER_LOCK)
        await conn.close()
        raise WriterElsewhere(f"held by {holder[0] or 'a session'} from {holder[1] or 'a local socket'}"
                              if holder else "held by another session")

    async def _open_to_read(self) -> None:
        """Beside a running `probe run` (`probe check`): reads only, no migration, no writer; a
        database of another schema version is refused rather than changed."""
        from probe.storage.postgres.migrations import MIGRATIONS, schema_version
        try:
            self.pool = await self._pool()
            async with self.pool.acquire() as conn:
                version = await schema_version(conn)
                if version != len(MIGRATIONS):
                    raise StoreError(f"{self.target.display}: database schema {version}, this probe reads "
                                     f"{len(MIGRATIONS)}; start probe run once to migrate it")
                for mid, key in await conn.fetch("SELECT id, key FROM monitors"):
                    self.monitor_ids[key], self.monitor_keys[mid] = mid, key
        except WRITE_ERRORS as exc:
            await self.close()
            raise StoreError(f"{problem_of(exc)} ({_words(exc)})") from None

    async def _connect(self):
        import asyncpg
        return await asyncpg.connect(self.target.dsn, timeout=10, server_settings=_SETTINGS)

    async def _pool(self):
        import asyncpg
        return await asyncpg.create_pool(self.target.dsn, min_size=READ_POOL[0], max_size=READ_POOL[1],
                                         timeout=10, server_settings=_SETTINGS)

    async def _connect_at_start(self):
        """Try for `connect_for` seconds: a server that starts with probe (compose) may come up
        a little later. What fails is logged once per new reason; a wrong password or a missing
        database does not get better by waiting, and fails at once."""
        deadline, said = time.monotonic() + self.connect_for, None
        while True:
            try:
                return await self._connect()
            except WRITE_ERRORS as exc:
                reason = problem_of(exc)
                if reason in _FINAL or time.monotonic() >= deadline:
                    raise StoreError(f"{reason} ({_words(exc)})") from None
                if reason != said:
                    log.warning("cannot connect to the database url=%s problem=%r error=%r; retrying for up to %.0fs",
                                self.target.display, reason, _words(exc), self.connect_for)
                    said = reason
                await asyncio.sleep(1.0)

    async def _replay_journal(self) -> None:
        """Answers a previous process could not record: into the database before any worker reads
        the outbox, or they stay in the journal and keep their rows from being sent again."""
        left = self.journal.open()
        if left:
            await self._write_with_journal([])
            log.info("outbox answers recorded from the journal count=%d", len(left))

    async def close(self, flush_timeout: float | None = None) -> None:
        try:
            await self._stop_writer(flush_timeout)
        finally:
            if self.pool is not None:
                self.pool.terminate()
            if self.writer is not None:
                self.writer.terminate()  # the writer lock goes with the connection
            self.pool = self.writer = None
            if not self.read_only:
                self.journal.close()

    async def _writer_conn(self):
        """The writer connection, opened again if the last one was lost (a server restart, a failover)."""
        if self.writer is None or self.writer.is_closed():
            conn = await self._connect()
            await self._lock_writer(conn)  # a lost connection lost the lock: take it again, or stop writing
            self.writer = conn
        return self.writer

    async def _load_monitors(self) -> None:
        for mid, key in await self.writer.fetch("SELECT id, key FROM monitors"):
            self.monitor_ids[key] = mid
            self.monitor_keys[mid] = key

    async def sync_monitors(self, monitors: Iterable[Any], intervals: dict[str, float] | None = None) -> None:
        """Make sure every configured monitor has a row; load its newest result. Opened to read, it
        writes nothing: monitors the database does not know have no results to load."""
        monitors = list(monitors)
        if self.read_only:
            for m in monitors:
                if m.id in self.monitor_ids:
                    await self._load_last(self.monitor_ids[m.id], int(m.interval * 1000))
            return
        async with self._write_lock:
            conn = await self._writer_conn()
            async with conn.transaction():
                for m in monitors:
                    if m.id in self.monitor_ids:
                        await conn.execute("UPDATE monitors SET name=$1, type=$2, grp=$3 WHERE id=$4",
                                           m.display_name, m.type, m.group, self.monitor_ids[m.id])
                        continue
                    # ON CONFLICT: instances of a cluster that start together add the same monitors
                    mid = await conn.fetchval("INSERT INTO monitors (key, name, type, grp, created_ms)"
                                              " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (key) DO UPDATE"
                                              " SET name = excluded.name RETURNING id",
                                              m.id, m.display_name, m.type, m.group, now_ms())
                    self.monitor_ids[m.id], self.monitor_keys[mid] = mid, m.id
        for m in monitors:
            self._intervals[m.id] = int(m.interval * 1000)
            await self._load_last(self.monitor_ids[m.id], int(m.interval * 1000))

    async def _load_last(self, mid: int, interval_ms: int) -> None:
        last = self.rollups.last
        if mid in last:
            last[mid] = LastResult(last[mid].ts_ms, last[mid].status, last[mid].in_maintenance, interval_ms,
                                   last[mid].offline)
        else:
            row = await self.pool.fetchrow(
                "SELECT ts, status, flags FROM results WHERE monitor=$1 ORDER BY ts DESC LIMIT 1", mid)
            if row is None:
                return
            last[mid] = LastResult(row[0], Status(row[1]), bool(row[2] & FLAG_MAINTENANCE), interval_ms,
                                   bool(row[2] & FLAG_OFFLINE))
        self.last_committed[mid] = last[mid]

    # ---- the writer's transaction -----------------------------------------------------

    async def _commit(self, rows: dict[str, list[tuple]]) -> None:
        async with self._write_lock:
            conn = await self._writer_conn()
            async with conn.transaction():
                if self.cluster:
                    await self._before_commit(conn, rows)
                if rows["reasons"]:
                    await conn.executemany("INSERT INTO reasons (id, text) VALUES ($1,$2) ON CONFLICT DO NOTHING",
                                           rows["reasons"])
                if rows["results"]:
                    await conn.executemany(_UPSERT_RESULT, rows["results"])
                if rows["location_results"]:
                    await conn.executemany(_UPSERT_LOCATED, rows["location_results"])
                if rows["rollups"]:
                    await conn.executemany(_UPSERT_ROLLUP, rows["rollups"])
                if rows["incidents"]:
                    await conn.executemany(_UPSERT_INCIDENT, rows["incidents"])
                if rows["updates"]:
                    await conn.executemany(
                        "INSERT INTO incident_updates (id, incident, status, body, kind, author, created_ms)"
                        " VALUES ($1,$2,$3,$4,$5,$6,$7)", rows["updates"])
                if rows["events"]:
                    await conn.executemany("INSERT INTO events VALUES ($1,$2,$3,$4,$5,$6)", rows["events"])
                journalled = [record_statement(entry) for entry in self.journal.entries.values()]
                for sql, params in journalled:  # the server is back: the outbox answers kept aside go in too
                    await conn.execute(numbered(sql), *params)
                if self.cluster:
                    await self._announce(conn, rows)
            if self.cluster:
                self._after_commit(rows)
            if journalled:
                self.journal.clear()
                log.info("the journalled outbox answers are in the database now count=%d", len(journalled))
            if rows["incidents"] or rows["updates"]:
                self.incidents_version += 1
            if rows["rollups"]:  # under the lock: no cache load can fall between commit and apply
                self.sums.apply(rows["rollups"], self.calendar.day_start(now_ms()))

    async def _writer_fetch(self, sql: str, params) -> list[tuple]:
        conn = await self._writer_conn()
        return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]

    # ---- the calendar (page time zone) ------------------------------------------------

    async def _check_calendar(self) -> None:
        """Daily rollups follow the page's time zone; if it changed, rebuild them from hourly."""
        zone = await self.writer.fetchval("SELECT value FROM meta WHERE key='daily_tz'")
        if zone == self.calendar.name:
            return
        async with self.writer.transaction():
            if zone:
                log.info("page time zone changed from=%s to=%s: rebuilding daily rollups", zone, self.calendar.name)
                await self._rebuild_daily()
            await self.writer.execute("INSERT INTO meta VALUES ('daily_tz', $1) ON CONFLICT (key)"
                                      " DO UPDATE SET value = excluded.value", self.calendar.name)

    async def _rebuild_daily(self) -> None:
        self.sums.clear()
        await self.writer.execute("DELETE FROM rollups WHERE res = $1", DAILY)
        daily: dict[tuple, Bucket] = {}
        for row in await self.writer.fetch("SELECT * FROM rollups WHERE res = $1 ORDER BY monitor, start", HOURLY):
            key = (row[0], DAILY, self.calendar.day_start(row[2]))
            daily.setdefault(key, Bucket()).accumulate(tuple(row))
        await self.writer.executemany(_UPSERT_ROLLUP, [b.row(*k) for k, b in daily.items()])

    # ---- maintenance ------------------------------------------------------------------

    async def prune(self, raw_retention_s: float, rollup_retention_s: float, now: int | None = None) -> int:
        """Delete raw results and rollups past their retention, a monitor at a time."""
        now = now or now_ms()
        deleted = 0
        for mid in list(self.monitor_keys):
            async with self._write_lock:
                conn = await self._writer_conn()
                async with conn.transaction():
                    deleted += _count(await conn.execute("DELETE FROM results WHERE monitor=$1 AND ts<$2",
                                                         mid, now - int(raw_retention_s * 1000)))
                    await conn.execute("DELETE FROM location_results WHERE monitor=$1 AND ts<$2",
                                       mid, now - int(raw_retention_s * 1000))
                    await conn.execute("DELETE FROM rollups WHERE monitor=$1 AND res IN (0,1) AND start<$2",
                                       mid, now - int(rollup_retention_s * 1000))
                self.sums.forget_before(now - int(rollup_retention_s * 1000))
            await asyncio.sleep(0)  # let the writer's batches in between monitors
        await self.write([("DELETE FROM deliveries WHERE state != 'pending' AND done_ms < ?",
                           (now - int(raw_retention_s * 1000),))])
        log.info("pruned raw results deleted=%d", deleted)
        return deleted

    # ---- the outbox claim -------------------------------------------------------------

    async def outbox_claim(self, delivery_id: int, attempts: int) -> bool:
        """Count an attempt on a row still as it was read, skipping a row another session holds
        (FOR UPDATE SKIP LOCKED, as Oban and River claim jobs): two processes that both read the row
        (a leader and its successor, for a moment) cannot both claim it."""
        counts = await self._write_with_journal([(
            "WITH c AS (SELECT id FROM deliveries WHERE id=? AND state='pending' AND attempts=? FOR UPDATE SKIP LOCKED)"
            " UPDATE deliveries d SET attempts = d.attempts + 1 FROM c WHERE d.id = c.id", (delivery_id, attempts))])
        return counts[-1] == 1

    # ---- statements for the shared reads and records ----------------------------------

    async def rollup_totals(self, segments: list[tuple[int, int, int]]) -> list[tuple]:
        """The shared query, but buckets asked one by one ((res, start, start + 1): the page's bar days
        and last hours, when a new process loads them) are read as rows, one range per resolution.
        The shared query's UNION of a part per bucket costs PostgreSQL an index descent per monitor
        and bucket (90 days x 1,000 monitors: 90,000, ~1.5 s); a range is one descent per monitor.
        A bucket's row is its sum, so the values are the same."""
        buckets: dict[int, dict[int, list[int]]] = {}  # res -> start -> indexes of the segments asking
        ranges: list[int] = []
        for index, (res, lo, hi) in enumerate(segments):
            if hi == lo + 1:
                buckets.setdefault(res, {}).setdefault(lo, []).append(index)
            else:
                ranges.append(index)
        out = [(ranges[row[0]], *row[1:]) for row in await super().rollup_totals([segments[i] for i in ranges])]
        for res, asked in buckets.items():
            for start, *values in await self.fetchall(_BUCKET_ROWS, (res, min(asked), max(asked) + 1, list(asked))):
                out += [(index, *values) for index in asked[start]]
        return out

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        return [tuple(r) for r in await self.pool.fetch(numbered(sql), *params)]

    async def write(self, statements: Iterable[tuple[str, tuple]]) -> list[int]:
        """Run statements in one transaction on the writer, between result batches; returns
        each statement's count of changed rows."""
        async with self._write_lock:
            conn = await self._writer_conn()
            async with conn.transaction():
                return [_count(await conn.execute(numbered(sql), *params)) for sql, params in statements]


# Every session says who it is (pg_stat_activity), and no statement may hang the writer forever.
_SETTINGS = {"application_name": f"probe {socket.gethostname()} pid {os.getpid()}"[:63],
             "statement_timeout": "60000"}
_FINAL = {"wrong password", "no such database", "no such user", "not allowed"}


def _words(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
