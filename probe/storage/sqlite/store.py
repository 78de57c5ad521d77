"""The SQLite engine: one file, WAL, one writer connection and one reader connection.

The writer (probe/storage/writer.py) commits batches on the writer connection; reads
(reads.py) use the reader, which WAL lets run beside it; the small tables (records.py) are
written on the writer between batches. The schema is migrations.py.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from probe.core import histogram
from probe.core.calendar import Calendar
from probe.core.models import Status
from probe.core.units import now_ms
from probe.storage.interface import StoreError
from probe.storage.journal import AnswerJournal
from probe.storage.reads import Reads
from probe.storage.records import Records, record_statement
from probe.storage.rollcache import DAILY, HOURLY, RollupCache
from probe.storage.rollups import FLAG_MAINTENANCE, FLAG_OFFLINE, Bucket, LastResult, Rollups
from probe.storage.rows import RowBuilder
from probe.storage.sqlite.lock import LockedError, ProcessLock
from probe.storage.sqlite.migrations import MIGRATIONS, migrate
from probe.storage.writable import WriteState, problem_of
from probe.storage.writer import BatchWriter

log = logging.getLogger("probe.store")

_UPSERT_ROLLUP = """
INSERT INTO rollups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (monitor, res, start) DO UPDATE SET
  n_up = n_up + excluded.n_up, n_degraded = n_degraded + excluded.n_degraded,
  n_down = n_down + excluded.n_down, up_ms = up_ms + excluded.up_ms,
  degraded_ms = degraded_ms + excluded.degraded_ms, down_ms = down_ms + excluded.down_ms,
  maint_ms = maint_ms + excluded.maint_ms, maint_good_ms = maint_good_ms + excluded.maint_good_ms,
  lat_n = lat_n + excluded.lat_n, lat_sum = lat_sum + excluded.lat_sum,
  lat_min = min(coalesce(lat_min, excluded.lat_min), coalesce(excluded.lat_min, lat_min)),
  lat_max = max(coalesce(lat_max, excluded.lat_max), coalesce(excluded.lat_max, lat_max)),
  lat_hist = hist_merge(lat_hist, excluded.lat_hist)
"""

_UPSERT_INCIDENT = """
INSERT INTO incidents (id, monitor, origin, title, impact, status, started_ms, resolved_ms, reason, updated_ms,
                       affected, postmortem, postmortem_ms, components)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET title = excluded.title, impact = excluded.impact, status = excluded.status,
  resolved_ms = excluded.resolved_ms, reason = excluded.reason, updated_ms = excluded.updated_ms,
  affected = excluded.affected, postmortem = excluded.postmortem, postmortem_ms = excluded.postmortem_ms,
  components = excluded.components
"""

_LOCATED = "monitor, ts, late, status, latency_us, flags, reason, details, location"


class SqliteStore(BatchWriter, RowBuilder, Reads, Records):
    WRITE_ERRORS = (sqlite3.Error, OSError)

    def __init__(self, path: str | Path, calendar: Calendar | None = None, *,
                 flush_interval: float = 0.2, max_batch: int = 20_000, max_pending: int = 100_000,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.calendar = calendar or Calendar("UTC")
        self.sums = RollupCache(self.calendar)  # the page's rollup sums, kept exact by `_commit`
        self.incidents_version = 0  # counts commits that changed incidents
        self.writer: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        self.monitor_ids: dict[str, int] = {}
        self.monitor_keys: dict[int, str] = {}
        self.rollups = Rollups(self.calendar)  # each monitor's newest result as submitted (ahead of the file)
        self._write_lock = asyncio.Lock()
        self._reasons: OrderedDict[str, int] = OrderedDict()
        self._next_ids: dict[str, int] = {}
        self._lock = ProcessLock(self.path)
        self.journal = AnswerJournal(self.path)  # outbox answers the disk could not take (journal.py)
        self._init_writer(WriteState(self.path), flush_interval, max_batch, max_pending)

    def describe(self) -> str:
        return str(self.path)

    # ---- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        if not self.read_only:  # a reader beside `probe run` neither creates nor locks anything
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._lock.acquire()  # before anything is read: a second process must change nothing
            except LockedError as exc:
                raise StoreError(str(exc)) from None
        try:
            await self._open()
        except sqlite3.Error as exc:  # not a database, a directory, a full or read-only disk: say which
            await self.close()
            raise StoreError(f"{problem_of(exc)} ({exc})") from None
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        if self.read_only:
            await self._open_to_read()
            return
        self.writer = await self._connect()
        await self._configure(self.writer)
        await migrate(self.writer, self.path, StoreError)
        self.reader = await self._connect()
        await self._configure(self.reader)
        await self.reader.execute("PRAGMA query_only = ON")
        for table in ("incidents", "events", "reasons", "incident_updates"):
            async with self.writer.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}") as cur:
                self._next_ids[table] = (await cur.fetchone())[0]
        await self._load_monitors()
        await self._check_calendar()
        await self._replay_journal()
        self._start_writer()

    async def _open_to_read(self) -> None:
        """Beside a running `probe run` (`probe check`): the reader only, no migration, no calendar
        rebuild, no writer; a file of another schema version is refused rather than changed."""
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such database")
        self.reader = await self._connect()
        await self.reader.execute("PRAGMA busy_timeout = 5000")
        await self.reader.execute("PRAGMA query_only = ON")
        async with self.reader.execute("PRAGMA user_version") as cur:
            version = (await cur.fetchone())[0]
        if version != len(MIGRATIONS):
            raise StoreError(f"{self.path}: database schema {version}, this probe reads {len(MIGRATIONS)}; "
                             "start probe run once to migrate it")
        await self._load_monitors(self.reader)

    async def _replay_journal(self) -> None:
        """Answers a previous process could not record (a full disk): into the file before any
        worker reads the outbox, or they stay in the journal and keep their rows from being sent."""
        left = self.journal.open()
        if left:
            await self._write_with_journal([])
            log.info("outbox answers recorded from the journal count=%d", len(left))

    async def _connect(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self.path)
        try:
            return await conn
        except sqlite3.Error:
            # aiosqlite stops its thread itself, but the thread still reports to this loop:
            # wait for it, or it prints a traceback once the loop is closed.
            thread = getattr(conn, "_thread", None)
            if thread is not None:
                await asyncio.to_thread(thread.join, 5.0)
            raise

    async def close(self, flush_timeout: float | None = None) -> None:
        try:
            await self._stop_writer(flush_timeout)
            for conn in (self.reader, self.writer):
                if conn is not None:
                    await conn.close()
            self.reader = self.writer = None
        finally:
            self.journal.close()
            if not self.read_only:
                self._lock.release()

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a crash of the process loses nothing committed; only a power
        # cut may lose the last transactions, never integrity.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.create_function("hist_merge", 2, histogram.merge_encoded, deterministic=True)

    async def _load_monitors(self, conn: aiosqlite.Connection | None = None) -> None:
        async with (conn or self.writer).execute("SELECT id, key FROM monitors") as cur:
            for mid, key in await cur.fetchall():
                self.monitor_ids[key] = mid
                self.monitor_keys[mid] = key

    # ---- monitors ---------------------------------------------------------------------

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
            for m in monitors:
                if m.id in self.monitor_ids:
                    await self.writer.execute("UPDATE monitors SET name=?, type=?, grp=? WHERE id=?",
                                              (m.display_name, m.type, m.group, self.monitor_ids[m.id]))
                    continue
                cur = await self.writer.execute(
                    "INSERT INTO monitors (key, name, type, grp, created_ms) VALUES (?,?,?,?,?)",
                    (m.id, m.display_name, m.type, m.group, now_ms()))
                self.monitor_ids[m.id] = cur.lastrowid
                self.monitor_keys[cur.lastrowid] = m.id
            await self.writer.commit()
        for m in monitors:
            await self._load_last(self.monitor_ids[m.id], int(m.interval * 1000))

    async def _load_last(self, mid: int, interval_ms: int) -> None:
        last = self.rollups.last
        if mid in last:
            last[mid] = LastResult(last[mid].ts_ms, last[mid].status, last[mid].in_maintenance, interval_ms,
                                   last[mid].offline)
        else:
            async with (self.writer or self.reader).execute(
                    "SELECT ts, status, flags FROM results WHERE monitor=? ORDER BY ts DESC LIMIT 1", (mid,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return
            last[mid] = LastResult(row[0], Status(row[1]), bool(row[2] & FLAG_MAINTENANCE), interval_ms,
                                   bool(row[2] & FLAG_OFFLINE))
        self.last_committed[mid] = last[mid]

    # ---- writing ----------------------------------------------------------------------

    async def _commit(self, rows: dict[str, list[tuple]]) -> None:
        async with self._write_lock:
            try:
                if rows["reasons"]:
                    await self.writer.executemany("INSERT OR IGNORE INTO reasons (id, text) VALUES (?,?)",
                                                  rows["reasons"])
                if rows["results"]:
                    await self.writer.executemany("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)",
                                                  rows["results"])
                if rows["location_results"]:  # none but from a [cluster], which needs PostgreSQL
                    await self.writer.executemany(f"INSERT OR REPLACE INTO location_results ({_LOCATED})"
                                                  " VALUES (?,?,?,?,?,?,?,?,?)", rows["location_results"])
                if rows["rollups"]:
                    await self.writer.executemany(_UPSERT_ROLLUP, rows["rollups"])
                if rows["incidents"]:
                    await self.writer.executemany(_UPSERT_INCIDENT, rows["incidents"])
                if rows["updates"]:
                    await self.writer.executemany(
                        "INSERT INTO incident_updates (id, incident, status, body, kind, author, created_ms)"
                        " VALUES (?,?,?,?,?,?,?)", rows["updates"])
                if rows["events"]:
                    await self.writer.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", rows["events"])
                journalled = [record_statement(entry) for entry in self.journal.entries.values()]
                for sql, params in journalled:  # the disk is back: the outbox answers kept aside go in too
                    await self.writer.execute(sql, params)
                await self.writer.commit()
                if journalled:
                    self.journal.clear()
                    log.info("the journalled outbox answers are in the database now count=%d", len(journalled))
                if rows["incidents"] or rows["updates"]:
                    self.incidents_version += 1  # readers that keep incidents between renders re-read
                if rows["rollups"]:  # under the lock: no cache load can fall between commit and apply
                    self.sums.apply(rows["rollups"], self.calendar.day_start(now_ms()))
            except BaseException:
                await self.writer.rollback()
                raise

    # ---- the calendar (page time zone) ------------------------------------------------

    async def _check_calendar(self) -> None:
        """Daily rollups follow the page's time zone; if it changed, rebuild them from hourly."""
        async with self.writer.execute("SELECT value FROM meta WHERE key='daily_tz'") as cur:
            row = await cur.fetchone()
        if row and row[0] == self.calendar.name:
            return
        if row:
            log.info("page time zone changed from=%s to=%s: rebuilding daily rollups", row[0], self.calendar.name)
            await self._rebuild_daily()
        await self.writer.execute("INSERT OR REPLACE INTO meta VALUES ('daily_tz', ?)", (self.calendar.name,))
        await self.writer.commit()

    async def _rebuild_daily(self) -> None:
        self.sums.clear()
        await self.writer.execute("DELETE FROM rollups WHERE res = ?", (DAILY,))
        async with self.writer.execute("SELECT * FROM rollups WHERE res = ? ORDER BY monitor, start",
                                       (HOURLY,)) as cur:
            daily: dict[tuple, Bucket] = {}
            async for row in cur:
                key = (row[0], DAILY, self.calendar.day_start(row[2]))
                daily.setdefault(key, Bucket()).accumulate(row)
        await self.writer.executemany(_UPSERT_ROLLUP, [b.row(*k) for k, b in daily.items()])

    # ---- maintenance ------------------------------------------------------------------

    async def prune(self, raw_retention_s: float, rollup_retention_s: float, now: int | None = None) -> int:
        """Delete raw results and rollups past their retention, a monitor at a time."""
        now = now or now_ms()
        deleted = 0
        for mid in list(self.monitor_keys):
            async with self._write_lock:
                cur = await self.writer.execute("DELETE FROM results WHERE monitor=? AND ts<?",
                                                (mid, now - int(raw_retention_s * 1000)))
                deleted += cur.rowcount
                await self.writer.execute("DELETE FROM rollups WHERE monitor=? AND res IN (0,1) AND start<?",
                                          (mid, now - int(rollup_retention_s * 1000)))
                await self.writer.commit()
                self.sums.forget_before(now - int(rollup_retention_s * 1000))
            await asyncio.sleep(0)  # let the writer's batches in between monitors
        # Finished notifications are kept as long as raw results; pending ones until sent.
        await self.write([("DELETE FROM deliveries WHERE state != 'pending' AND done_ms < ?",
                           (now - int(raw_retention_s * 1000),))])
        log.info("pruned raw results deleted=%d", deleted)
        return deleted

    # ---- tools: probe storage copy | check --------------------------------------------

    async def import_rows(self, table: str, columns: tuple[str, ...], rows: list[tuple], replace: bool = False) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if replace:
            sql += f" ON CONFLICT ({columns[0]}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        async with self._write_lock:
            await self.writer.executemany(sql, rows)
            await self.writer.commit()

    async def finish_import(self) -> None:
        """Nothing to do: SQLite's INTEGER PRIMARY KEYs go on from the largest id."""

    async def check(self) -> list[tuple[str, str]]:
        """(what, finding) lines for `probe storage check`, read-only, without opening the store
        (nothing is created or migrated; a running probe may keep writing meanwhile)."""
        from probe.storage.sqlite.migrations import MIGRATIONS
        if not self.path.is_file():
            raise StoreError(f"no database file at {self.path}")
        try:
            async with aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
                async def one(sql: str):
                    async with conn.execute(sql) as cur:
                        return (await cur.fetchone())[0]
                version, pages, page_size = (await one("PRAGMA user_version"), await one("PRAGMA page_count"),
                                             await one("PRAGMA page_size"))
                integrity = await one("PRAGMA integrity_check")
        except sqlite3.Error as exc:
            raise StoreError(f"{problem_of(exc)} ({exc})") from None
        pending = len(MIGRATIONS) - version
        return [("engine", f"SQLite {sqlite3.sqlite_version}"), ("file", str(self.path)),
                ("schema", f"version {version} of {len(MIGRATIONS)}"
                           + (f", {pending} migration(s) pending (applied at the next start)" if pending > 0 else "")),
                ("integrity", integrity), ("size", f"{pages * page_size / 1e6:.1f} MB")]

    async def integrity_check(self) -> str:
        async with self.reader.execute("PRAGMA integrity_check") as cur:
            return (await cur.fetchone())[0]

    async def _writer_fetch(self, sql: str, params) -> list[tuple]:
        async with self.writer.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        # One call into the connection's thread, execute and fetch together: as two calls, another
        # read could run in between, inside the first one's open read transaction, and see the
        # file as it was before the last commit (a subscriber just written came back None).
        return list(await self.reader.execute_fetchall(sql, tuple(params)))

    async def write(self, statements: Iterable[tuple[str, tuple]]) -> list[int]:
        """Run statements in one transaction on the writer, between result batches; returns
        each statement's count of changed rows."""
        counts = []
        async with self._write_lock:
            try:
                for sql, params in statements:
                    async with self.writer.execute(sql, params) as cur:
                        counts.append(cur.rowcount)
                await self.writer.commit()
            except BaseException:
                await self.writer.rollback()
                raise
        return counts
