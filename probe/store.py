"""SQLite storage: raw results, rollups, incidents and the event log.

One writer: everything that changes the database goes through `submit_*` into a
queue that a single task drains in batches, each batch one transaction. A batch
holds results together with the incident transitions they caused, so after a crash
the file always shows a consistent prefix of history: at most the batch in flight
is lost. Events are published to subscribers only after their batch committed.

Reads use a second connection (WAL lets them run beside the writer).

Rollups: when a monitor's next result arrives, the time since its previous result
(capped at twice the interval; beyond that it is "no data") is added to the hourly
(UTC) and daily (page time zone) buckets it spans, under the previous result's
status. The newest result's open interval lives in memory (`last_committed`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from probe import histogram
from probe.calendar import HOUR_MS, Calendar, hour_start
from probe.models import EventKind, Impact, Incident, IncidentEvent, IncidentUpdate, ResultRecord, Status
from probe.rollcache import DAILY, HOURLY, Entry, RollupCache
from probe.units import now_ms
from probe.writable import WriteState, problem_of

log = logging.getLogger("probe.store")

FLAG_MAINTENANCE = 1

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE monitors (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        grp TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE reasons (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    -- One row per check. Clustered on (monitor, ts): every read is a range of one monitor.
    CREATE TABLE results (
        monitor INTEGER NOT NULL,
        ts INTEGER NOT NULL,            -- actual start, ms UTC
        late INTEGER NOT NULL,          -- ms after the scheduled start
        status INTEGER NOT NULL,        -- 0 up, 1 degraded, 2 down
        latency_us INTEGER,
        flags INTEGER NOT NULL DEFAULT 0,
        reason INTEGER REFERENCES reasons(id),
        details TEXT,                   -- JSON, kept for results that are not up
        PRIMARY KEY (monitor, ts)
    ) WITHOUT ROWID;
    CREATE TABLE rollups (
        monitor INTEGER NOT NULL,
        res INTEGER NOT NULL,           -- 0 hourly (UTC), 1 daily (page time zone)
        start INTEGER NOT NULL,         -- bucket start, ms UTC
        n_up INTEGER NOT NULL DEFAULT 0,
        n_degraded INTEGER NOT NULL DEFAULT 0,
        n_down INTEGER NOT NULL DEFAULT 0,
        up_ms INTEGER NOT NULL DEFAULT 0,
        degraded_ms INTEGER NOT NULL DEFAULT 0,
        down_ms INTEGER NOT NULL DEFAULT 0,
        maint_ms INTEGER NOT NULL DEFAULT 0,
        maint_good_ms INTEGER NOT NULL DEFAULT 0,
        lat_n INTEGER NOT NULL DEFAULT 0,
        lat_sum REAL NOT NULL DEFAULT 0,
        lat_min REAL,
        lat_max REAL,
        lat_hist TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (monitor, res, start)
    ) WITHOUT ROWID;
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        monitor INTEGER REFERENCES monitors(id),  -- NULL for incidents opened by hand
        origin TEXT NOT NULL DEFAULT 'auto',
        title TEXT NOT NULL DEFAULT '',           -- '' for automatic: rendered per language
        impact TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        resolved_ms INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        updated_ms INTEGER NOT NULL
    );
    -- The engine's invariant, enforced by the file itself: one open automatic incident per monitor.
    CREATE UNIQUE INDEX incidents_one_open ON incidents(monitor) WHERE resolved_ms IS NULL AND origin = 'auto';
    CREATE INDEX incidents_by_monitor ON incidents(monitor, started_ms);
    CREATE INDEX incidents_by_start ON incidents(started_ms);
    CREATE TABLE incident_updates (
        id INTEGER PRIMARY KEY,
        incident INTEGER NOT NULL REFERENCES incidents(id),
        status TEXT NOT NULL,
        body TEXT,                      -- NULL: the default text for the status, in the page's language
        kind TEXT NOT NULL,             -- open | escalate | reopen | resolve | update
        author TEXT NOT NULL DEFAULT 'probe',
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX incident_updates_by_incident ON incident_updates(incident, created_ms);
    -- Every incident transition, in order: notifiers read from here.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        incident INTEGER NOT NULL REFERENCES incidents(id),
        monitor INTEGER,
        reason TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: the operator's workflow: manual incidents name monitors; postmortems
    """
    ALTER TABLE incidents ADD COLUMN affected TEXT NOT NULL DEFAULT '';  -- monitor ids, space-separated
    ALTER TABLE incidents ADD COLUMN postmortem TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN postmortem_ms INTEGER;
    """,
    # 3: the notification outbox: written before a message is sent, so none is lost or sent twice
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        notifier TEXT NOT NULL,
        key TEXT NOT NULL,              -- event:<id> | remind:<incident>:<n> | test:<ms>
        payload TEXT NOT NULL,          -- the message as JSON, as it was when queued
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        done_ms INTEGER,
        answer TEXT NOT NULL DEFAULT '',  -- what the channel said last (its own error text on failure)
        UNIQUE (notifier, key)
    );
    CREATE INDEX deliveries_pending ON deliveries(notifier, id) WHERE state = 'pending';
    """,
    # 4: maintenance windows an operator schedules through the admin API (the config's live in the file)
    """
    CREATE TABLE maintenance (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        monitors TEXT NOT NULL,         -- monitor ids, space-separated
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,        -- moved to the cancel time when cancelled while in progress
        created_ms INTEGER NOT NULL,
        cancelled_ms INTEGER,
        author TEXT NOT NULL DEFAULT 'operator'
    );
    """,
    # 5: which expiry notices were queued, per certificate (a renewed one has a new notAfter)
    """
    CREATE TABLE cert_notices (
        monitor TEXT NOT NULL,          -- the monitor's id in the config
        expires_ts INTEGER NOT NULL,    -- the certificate's notAfter, seconds UTC
        threshold INTEGER NOT NULL,     -- the cert_expiry_notify day it crossed
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (monitor, expires_ts, threshold)
    ) WITHOUT ROWID;
    """,
    # 6: email subscribers of the status page (double opt-in; an unsubscribe deletes the row)
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,     -- lowercased
        groups TEXT NOT NULL DEFAULT '[]',  -- JSON list of monitor groups; [] is every group
        created_ms INTEGER NOT NULL,
        requested_ms INTEGER NOT NULL,  -- the last subscribe request: the confirmation link expires from it
        confirmed_ms INTEGER            -- NULL until the link in the confirmation mail is followed
    );
    """,
]


@dataclass
class Bucket:
    """The change to one rollup row that a batch makes."""

    n: list[int] = field(default_factory=lambda: [0, 0, 0])
    ms: list[int] = field(default_factory=lambda: [0, 0, 0])
    maint_ms: int = 0
    maint_good_ms: int = 0
    lat_n: int = 0
    lat_sum: float = 0.0
    lat_min: float | None = None
    lat_max: float | None = None
    hist: dict[int, int] = field(default_factory=dict)

    def add_latency(self, latency_ms: float) -> None:
        self.lat_n += 1
        self.lat_sum += latency_ms
        self.lat_min = latency_ms if self.lat_min is None else min(self.lat_min, latency_ms)
        self.lat_max = latency_ms if self.lat_max is None else max(self.lat_max, latency_ms)
        index = histogram.bucket_of(latency_ms)
        self.hist[index] = self.hist.get(index, 0) + 1

    def row(self, monitor: int, res: int, start: int) -> tuple:
        return (monitor, res, start, *self.n, *self.ms, self.maint_ms, self.maint_good_ms,
                self.lat_n, self.lat_sum, self.lat_min, self.lat_max, histogram.encode(self.hist))


@dataclass(frozen=True, slots=True)
class LastResult:
    ts_ms: int
    status: Status
    in_maintenance: bool
    interval_ms: int

    @property
    def holds_until(self) -> int:
        """A status counts for at most twice the interval; after that it is "no data"."""
        return self.ts_ms + 2 * self.interval_ms


@dataclass
class Batch:
    results: list[tuple[ResultRecord, int]] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)
    rows: dict[str, list[tuple]] | None = None  # SQL rows, built once (kept if a commit fails)
    last: dict[int, LastResult] = field(default_factory=dict)
    waiters: list[asyncio.Future] = field(default_factory=list)


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
                       affected, postmortem, postmortem_ms)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET title = excluded.title, impact = excluded.impact, status = excluded.status,
  resolved_ms = excluded.resolved_ms, reason = excluded.reason, updated_ms = excluded.updated_ms,
  affected = excluded.affected, postmortem = excluded.postmortem, postmortem_ms = excluded.postmortem_ms
"""

_REASON_CACHE = 50_000


class StoreError(Exception):
    pass


class Store:
    def __init__(self, path: str | Path, calendar: Calendar | None = None, *,
                 flush_interval: float = 0.2, max_batch: int = 20_000, max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.calendar = calendar or Calendar("UTC")
        self.sums = RollupCache(self.calendar)  # the page's rollup sums, kept exact by `_commit`
        self.incidents_version = 0  # counts commits that changed incidents
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_pending = max_pending  # results held in memory while the database takes no writes
        self.writer: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        self.monitor_ids: dict[str, int] = {}
        self.monitor_keys: dict[int, str] = {}
        self.last_committed: dict[int, LastResult] = {}
        self._last: dict[int, LastResult] = {}  # as submitted (ahead of the file)
        self._queue = Batch()
        self._queued = 0
        self._failed: Batch | None = None
        self._wakeup = asyncio.Event()  # commit now (an event, a full batch, a flush)
        self._pending = asyncio.Event()  # something is queued: the batch timer runs
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._reasons: OrderedDict[str, int] = OrderedDict()
        self._next_ids: dict[str, int] = {}
        self._subscribers: list[Callable[[list[IncidentEvent]], None]] = []
        self.healthy = True
        self.last_error: str | None = None
        self.last_commit_ms: int | None = None
        self.dropped_results = 0
        self.write_state = WriteState(self.path)

    # ---- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self._open()
        except sqlite3.Error as exc:  # not a database, a directory, a full or read-only disk: say which
            await self.close()
            raise StoreError(f"{problem_of(exc)} ({exc})") from None

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = await self._connect()
        await self._configure(self.writer)
        await self._migrate()
        self.reader = await self._connect()
        await self._configure(self.reader)
        await self.reader.execute("PRAGMA query_only = ON")
        for table in ("incidents", "events", "reasons", "incident_updates"):
            async with self.writer.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}") as cur:
                self._next_ids[table] = (await cur.fetchone())[0]
        await self._load_monitors()
        await self._check_calendar()
        self._task = asyncio.create_task(self._run_writer(), name="store-writer")

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

    async def close(self) -> None:
        if self._task:
            await self.flush()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for conn in (self.reader, self.writer):
            if conn is not None:
                await conn.close()
        self.reader = self.writer = None

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a crash of the process loses nothing committed; only a power
        # cut may lose the last transactions, never integrity.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.create_function("hist_merge", 2, histogram.merge_encoded, deterministic=True)

    async def _migrate(self) -> None:
        async with self.writer.execute("PRAGMA user_version") as cur:
            version = (await cur.fetchone())[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path}: database schema {version} is newer than this probe "
                             f"understands ({len(MIGRATIONS)}); upgrade probe")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("migrating database path=%s to_version=%d", self.path, number)
            await self.writer.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    async def _load_monitors(self) -> None:
        async with self.writer.execute("SELECT id, key FROM monitors") as cur:
            for mid, key in await cur.fetchall():
                self.monitor_ids[key] = mid
                self.monitor_keys[mid] = key

    # ---- monitors ---------------------------------------------------------------------

    async def sync_monitors(self, monitors: Iterable[Any], intervals: dict[str, float] | None = None) -> None:
        """Make sure every configured monitor has a row; load its newest result."""
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
        if mid in self._last:
            self._last[mid] = LastResult(self._last[mid].ts_ms, self._last[mid].status,
                                         self._last[mid].in_maintenance, interval_ms)
        else:
            async with self.writer.execute(
                    "SELECT ts, status, flags FROM results WHERE monitor=? ORDER BY ts DESC LIMIT 1", (mid,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return
            self._last[mid] = LastResult(row[0], Status(row[1]), bool(row[2] & FLAG_MAINTENANCE), interval_ms)
        self.last_committed[mid] = self._last[mid]

    # ---- writing ----------------------------------------------------------------------

    def allocate_id(self, table: str) -> int:
        """Ids are handed out here, not by SQLite, so events can be built before they commit."""
        value = self._next_ids[table]
        self._next_ids[table] = value + 1
        return value

    def submit_result(self, record: ResultRecord, interval_s: float) -> None:
        if self._queued >= self.max_pending:
            # The database has taken no writes for a long time: keep what is queued (memory
            # stays bounded), count what is not.
            self.dropped_results += 1
            self.write_state.dropping(self.max_pending)
            return
        self._queue.results.append((record, int(interval_s * 1000)))
        self._queued += 1
        self._pending.set()
        if self._queued >= self.max_batch:
            self._wakeup.set()

    def submit_events(self, events: list[IncidentEvent]) -> None:
        self._queue.events.extend(events)
        self._pending.set()
        self._wakeup.set()

    def subscribe(self, callback: Callable[[list[IncidentEvent]], None]) -> None:
        """`callback(events)` runs after the batch holding them has committed."""
        self._subscribers.append(callback)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the file."""
        if self._task is None or (not self._queue.results and not self._queue.events and self._failed is None):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.waiters.append(waiter)
        self._pending.set()
        self._wakeup.set()
        await waiter

    async def _run_writer(self) -> None:
        while True:
            if self._failed is None and self._queue_empty():
                # Nothing queued: no timer at all (an idle probe would otherwise wake 5 times a
                # second for nothing). The first result starts the batch's flush_interval.
                self._pending.clear()
                await self._pending.wait()
            try:
                async with asyncio.timeout(self.flush_interval):  # wait_for (3.11) can swallow close()'s cancel
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            batch = self._failed or self._take_batch()
            if batch is None:
                continue
            await self._commit_with_retry(batch)

    def _queue_empty(self) -> bool:
        return not self._queue.results and not self._queue.events and not self._queue.waiters

    def _take_batch(self) -> Batch | None:
        batch = self._queue
        if self._queue_empty():
            return None
        self._queue, self._queued = Batch(), 0
        return batch

    @property
    def pending_results(self) -> int:
        """Results submitted but not yet in the file (the batch being retried included)."""
        return self._queued + (len(self._failed.results) if self._failed else 0)

    async def _commit_with_retry(self, batch: Batch) -> None:
        try:
            if batch.rows is None:
                batch.rows = await self._build_rows(batch)
            await self._commit(batch.rows)
        except (sqlite3.Error, OSError) as exc:
            # Disk full, read-only, I/O error: keep the batch and try again by itself, so
            # writing resumes without a restart once the operator frees space.
            self._failed = batch
            pause = self.write_state.failed(exc, self.pending_results, self.max_pending)
            self.healthy, self.last_error = False, self.write_state.message
            await asyncio.sleep(pause)
            return
        self._failed = None
        self.write_state.succeeded(len(batch.results) + self._queued, self.dropped_results)
        self.healthy, self.last_error, self.last_commit_ms = True, None, now_ms()
        self.last_committed.update(batch.last)
        self._publish(batch)
        # Results that queued up while this batch was retried go next, at once.
        if self._queue.results or self._queue.events:
            self._wakeup.set()

    def _publish(self, batch: Batch) -> None:
        if batch.events:
            for callback in self._subscribers:
                try:
                    callback(batch.events)
                except Exception:  # a subscriber's bug must not stop the writer
                    log.exception("event subscriber failed")
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _commit(self, rows: dict[str, list[tuple]]) -> None:
        async with self._write_lock:
            try:
                if rows["reasons"]:
                    await self.writer.executemany("INSERT OR IGNORE INTO reasons (id, text) VALUES (?,?)",
                                                  rows["reasons"])
                if rows["results"]:
                    await self.writer.executemany("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)",
                                                  rows["results"])
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
                await self.writer.commit()
                if rows["incidents"] or rows["updates"]:
                    self.incidents_version += 1  # readers that keep incidents between renders re-read
                if rows["rollups"]:  # under the lock: no cache load can fall between commit and apply
                    self.sums.apply(rows["rollups"], self.calendar.day_start(now_ms()))
            except BaseException:
                await self.writer.rollback()
                raise

    async def _build_rows(self, batch: Batch) -> dict[str, list[tuple]]:
        reason_ids, new_reasons = await self._intern_reasons(r.reason for r, _ in batch.results)
        results, buckets = [], {}
        for record, interval_ms in batch.results:
            mid = self.monitor_ids.get(record.monitor_id)
            if mid is None:
                continue  # removed from the config while its check was running
            results.append(_result_row(mid, record, reason_ids[record.reason]))
            self._roll_up(mid, record, interval_ms, buckets)
            batch.last[mid] = self._last[mid]
        rows = {"reasons": new_reasons, "results": results,
                "rollups": [b.row(*key) for key, b in buckets.items()]}
        rows.update(self._incident_rows(batch.events))
        return rows

    async def _intern_reasons(self, texts: Iterable[str]) -> tuple[dict[str, int], list[tuple[int, str]]]:
        """Reason texts repeat endlessly ("HTTP 200"): store each once, refer to it by id."""
        ids: dict[str, int] = {}
        missing = set()
        for text in texts:
            if text in self._reasons:
                self._reasons.move_to_end(text)
                ids[text] = self._reasons[text]
            else:
                missing.add(text)
        new = []
        if missing:
            known = {}
            async with self._write_lock:
                for chunk in _chunks(sorted(missing), 500):
                    marks = ",".join("?" * len(chunk))
                    async with self.writer.execute(f"SELECT text, id FROM reasons WHERE text IN ({marks})",
                                                   chunk) as cur:
                        known.update(await cur.fetchall())
            for text in missing:
                if text not in known:
                    known[text] = self.allocate_id("reasons")
                    new.append((known[text], text))
                ids[text] = self._reasons[text] = known[text]
            while len(self._reasons) > _REASON_CACHE:
                self._reasons.popitem(last=False)
        return ids, new

    def _roll_up(self, mid: int, record: ResultRecord, interval_ms: int, buckets: dict) -> None:
        prev = self._last.get(mid)
        if prev is not None and record.ts_ms > prev.ts_ms:
            self._add_time(mid, prev, prev.ts_ms, min(record.ts_ms, prev.holds_until), buckets)
        for res, start in ((HOURLY, hour_start(record.ts_ms)), (DAILY, self.calendar.day_start(record.ts_ms))):
            bucket = buckets.setdefault((mid, res, start), Bucket())
            bucket.n[record.status] += 1
            if record.latency_ms is not None:
                bucket.add_latency(record.latency_ms)
        if prev is None or record.ts_ms >= prev.ts_ms:
            self._last[mid] = LastResult(record.ts_ms, record.status, record.in_maintenance, interval_ms)

    def _add_time(self, mid: int, prev: LastResult, start: int, end: int, buckets: dict) -> None:
        """Credit [start, end) to prev's status, split at hour and local-day boundaries."""
        for res, bounds in ((HOURLY, _hour_bounds), (DAILY, self.calendar.day_bounds)):
            t = start
            while t < end:
                b0, b1 = bounds(t)
                span = min(end, b1) - t
                bucket = buckets.setdefault((mid, res, b0), Bucket())
                bucket.ms[prev.status] += span
                if prev.in_maintenance:
                    bucket.maint_ms += span
                    if prev.status.is_good:
                        bucket.maint_good_ms += span
                t += span

    def _incident_rows(self, events: list[IncidentEvent]) -> dict[str, list[tuple]]:
        incidents, updates, rows = {}, [], []
        for event in events:
            inc = event.incident
            mid = self.monitor_ids.get(inc.monitor_id) if inc.monitor_id else None
            incidents[inc.id] = (inc.id, mid, inc.origin, inc.title, inc.impact.value, inc.status,
                                 inc.started_ms, inc.resolved_ms, inc.reason, event.at_ms,
                                 " ".join(inc.affected), inc.postmortem, inc.postmortem_ms)
            rows.append((event.id, event.at_ms, event.kind.value, inc.id, mid, event.reason))
            if event.kind.on_timeline:  # a postmortem or a retitle changes the incident row only
                updates.append((self.allocate_id("incident_updates"), inc.id, inc.status, event.body,
                                event.kind.value, event.author, event.at_ms))
        return {"incidents": list(incidents.values()), "updates": updates, "events": rows}

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
                _accumulate(daily.setdefault(key, Bucket()), row)
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

    async def integrity_check(self) -> str:
        async with self.reader.execute("PRAGMA integrity_check") as cur:
            return (await cur.fetchone())[0]

    # ---- reading ----------------------------------------------------------------------

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

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        async with self.reader.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def recent_results(self, monitor_id: str, limit: int) -> list[ResultRecord]:
        """The newest `limit` results of a monitor, oldest first."""
        return list(reversed(await self.results(monitor_id, limit=limit, newest_first=True)))

    async def results(self, monitor_id: str, since_ms: int = 0, until_ms: int | None = None,
                      limit: int = 1000, newest_first: bool = False) -> list[ResultRecord]:
        mid = self.monitor_ids.get(monitor_id)
        if mid is None:
            return []
        order = "DESC" if newest_first else "ASC"
        rows = await self.fetchall(
            "SELECT r.ts, r.late, r.status, r.latency_us, r.flags, coalesce(t.text, ''), r.details"
            " FROM results r LEFT JOIN reasons t ON t.id = r.reason"
            f" WHERE r.monitor=? AND r.ts>=? AND r.ts<? ORDER BY r.ts {order} LIMIT ?",
            (mid, since_ms, until_ms if until_ms is not None else 2**62, limit))
        return [ResultRecord(monitor_id, ts, ts - late, Status(status),
                             reason, None if lat is None else lat / 1000,
                             json.loads(details) if details else {}, bool(flags & FLAG_MAINTENANCE))
                for ts, late, status, lat, flags, reason, details in rows]

    async def rollup_sums(self, monitor_ids: list[int], res: int, start_ms: int, end_ms: int) -> dict[int, tuple]:
        """Per monitor: summed (up, degraded, down, maint, maint_good) ms over buckets in [start, end)."""
        out: dict[int, tuple] = {}
        for chunk in _chunks(monitor_ids, 900):
            marks = ",".join("?" * len(chunk))
            rows = await self.fetchall(
                "SELECT monitor, sum(up_ms), sum(degraded_ms), sum(down_ms), sum(maint_ms), sum(maint_good_ms)"
                f" FROM rollups WHERE monitor IN ({marks}) AND res=? AND start>=? AND start<? GROUP BY monitor",
                (*chunk, res, start_ms, end_ms))
            out.update((row[0], row[1:]) for row in rows)
        return out

    async def rollup_sums_many(self, monitor_ids: list[int], segments: list[tuple[int, int, int]]
                               ) -> list[tuple[int, int, tuple]]:
        """`rollup_sums` for several (res, start, end) segments in one query:
        (segment index, monitor, sums) for each segment and monitor with rows."""
        out: list[tuple[int, int, tuple]] = []
        if not segments:
            return out
        for chunk in _chunks(monitor_ids, max(1, 900 - 3 * len(segments))):
            parts, params = [], list(chunk)
            for index, (res, lo, hi) in enumerate(segments):
                parts.append(f"SELECT {index}, monitor, sum(up_ms), sum(degraded_ms), sum(down_ms), sum(maint_ms),"
                             " sum(maint_good_ms) FROM rollups WHERE monitor IN m AND res=? AND start>=?"
                             " AND start<? GROUP BY monitor")
                params += [res, lo, hi]
            sql = f"WITH m(id) AS (VALUES {','.join(['(?)'] * len(chunk))}) " + " UNION ALL ".join(parts)
            rows = await self.fetchall(sql, params)
            out += [(row[0], row[1], row[2:]) for row in rows]
        return out

    async def cached_ranges(self, segments: list[tuple[int, int, int]]) -> list[Entry]:
        """For each (res, lo, hi): {monitor id: [up, degraded, down, maint, maint_good ms, lat_n, lat_sum]}
        summed over buckets starting in [lo, hi), from memory when it can (see probe/rollcache.py)."""
        return await self.sums.range_entries(segments, self._write_lock, self.rollup_totals)

    async def cached_buckets(self, res: int, starts: list[int]) -> list[Entry]:
        """Like `cached_ranges`, one bucket each."""
        return await self.sums.bucket_entries(res, starts, self._write_lock, self.rollup_totals)

    async def rollup_totals(self, segments: list[tuple[int, int, int]]) -> list[tuple]:
        """(segment index, monitor, up, degraded, down, maint, maint_good ms, lat_n, lat_sum) per
        segment (res, lo, hi) and monitor with rows, for every monitor of the file, in one query."""
        out: list[tuple] = []
        for first in range(0, len(segments), 250):
            parts, params = [], []
            for index, (res, lo, hi) in enumerate(segments[first:first + 250], start=first):
                parts.append(f"SELECT {index}, monitor, sum(up_ms), sum(degraded_ms), sum(down_ms), sum(maint_ms),"
                             " sum(maint_good_ms), sum(lat_n), sum(lat_sum) FROM rollups WHERE monitor IN (SELECT id FROM monitors)"
                             " AND res=? AND start>=? AND start<? GROUP BY monitor")
                params += [res, lo, hi]
            out += await self.fetchall(" UNION ALL ".join(parts), params)
        return out

    async def rollup_series(self, monitor_ids: list[str], res: int, start_ms: int, end_ms: int,
                            histograms: bool = True) -> dict[str, list[tuple]]:
        """Per monitor, its buckets in [start, end) oldest first, for many monitors in one query:
        (start, up_ms, degraded_ms, down_ms, maint_ms, maint_good_ms, lat_n, lat_sum, lat_hist).
        Without `histograms`, lat_hist is '' (reading it is most of the cost of a long series)."""
        mids = [self.monitor_ids[m] for m in monitor_ids if m in self.monitor_ids]
        out: dict[str, list[tuple]] = {m: [] for m in monitor_ids}
        for chunk in _chunks(mids, 900):
            rows = await self.fetchall(
                "SELECT monitor, start, up_ms, degraded_ms, down_ms, maint_ms, maint_good_ms, lat_n, lat_sum,"
                f" {'lat_hist' if histograms else chr(39) * 2} FROM rollups WHERE monitor IN ({','.join('?' * len(chunk))}) AND res=?"
                " AND start>=? AND start<? ORDER BY monitor, start", (*chunk, res, start_ms, end_ms))
            for row in rows:
                out[self.monitor_keys[row[0]]].append(row[1:])
        return out

    async def incidents_between(self, start_ms: int, end_ms: int, limit: int = 1000) -> list[Incident]:
        """Incidents that were open at some time in [start, end), newest first."""
        return await self._incidents("WHERE started_ms < ? AND (resolved_ms IS NULL OR resolved_ms >= ?)"
                                     " ORDER BY started_ms DESC LIMIT ?", (end_ms, start_ms, limit))

    async def rollup_rows(self, monitor_id: str, res: int, start_ms: int, end_ms: int) -> list[sqlite3.Row]:
        """Every rollup row of one monitor in [start, end), oldest first, as dicts."""
        mid = self.monitor_ids.get(monitor_id)
        if mid is None:
            return []
        rows = await self.fetchall(
            "SELECT start, n_up, n_degraded, n_down, up_ms, degraded_ms, down_ms, maint_ms, maint_good_ms,"
            " lat_n, lat_sum, lat_min, lat_max, lat_hist FROM rollups"
            " WHERE monitor=? AND res=? AND start>=? AND start<? ORDER BY start", (mid, res, start_ms, end_ms))
        keys = ("start", "n_up", "n_degraded", "n_down", "up_ms", "degraded_ms", "down_ms", "maint_ms",
                "maint_good_ms", "lat_n", "lat_sum", "lat_min", "lat_max", "lat_hist")
        return [dict(zip(keys, row)) for row in rows]

    async def open_incidents(self) -> list[Incident]:
        return await self._incidents("WHERE resolved_ms IS NULL ORDER BY started_ms")

    async def last_resolved_incidents(self) -> dict[str, Incident]:
        """The most recently resolved automatic incident of each monitor."""
        rows = await self._incidents(
            "WHERE origin='auto' AND resolved_ms IS NOT NULL AND id IN"
            " (SELECT max(id) FROM incidents WHERE origin='auto' AND resolved_ms IS NOT NULL GROUP BY monitor)")
        return {inc.monitor_id: inc for inc in rows if inc.monitor_id}

    async def incidents(self, monitor_id: str | None = None, limit: int = 50, before_ms: int | None = None
                        ) -> list[Incident]:
        clauses, params = ["started_ms < ?"], [before_ms if before_ms is not None else 2**62]
        if monitor_id is not None:
            clauses.append("monitor = ?")
            params.append(self.monitor_ids.get(monitor_id, -1))
        return await self._incidents(f"WHERE {' AND '.join(clauses)} ORDER BY started_ms DESC LIMIT ?",
                                     (*params, limit))

    async def _incidents(self, where: str, params: Iterable[Any] = ()) -> list[Incident]:
        rows = await self.fetchall(
            "SELECT id, monitor, title, impact, status, started_ms, resolved_ms, reason, origin,"
            f" affected, postmortem, postmortem_ms FROM incidents {where}", params)
        return [Incident(id=r[0], monitor_id=self.monitor_keys.get(r[1]), title=r[2], impact=Impact(r[3]),
                         status=r[4], started_ms=r[5], resolved_ms=r[6], reason=r[7], origin=r[8],
                         affected=tuple(r[9].split()), postmortem=r[10], postmortem_ms=r[11])
                for r in rows]

    async def incident(self, incident_id: int) -> Incident | None:
        found = await self._incidents("WHERE id = ?", (incident_id,))
        return found[0] if found else None

    async def incident_updates(self, incident_ids: list[int]) -> dict[int, list[IncidentUpdate]]:
        """The updates of each incident, oldest first (one query for all of them)."""
        found: dict[int, list[IncidentUpdate]] = {i: [] for i in incident_ids}
        for chunk in _chunks(incident_ids, 500):
            rows = await self.fetchall(
                "SELECT id, incident, status, body, kind, author, created_ms FROM incident_updates"
                f" WHERE incident IN ({','.join('?' * len(chunk))}) ORDER BY created_ms, id", chunk)
            for row in rows:
                found[row[1]].append(IncidentUpdate(*row))
        return found

    async def events_after(self, event_id: int, limit: int = 500) -> list[tuple]:
        return await self.fetchall("SELECT id, at_ms, kind, incident, monitor, reason FROM events"
                                   " WHERE id > ? ORDER BY id LIMIT ?", (event_id, limit))


def _hour_bounds(ts_ms: int) -> tuple[int, int]:
    start = hour_start(ts_ms)
    return start, start + HOUR_MS


def _result_row(mid: int, record: ResultRecord, reason_id: int) -> tuple:
    latency = None if record.latency_ms is None else int(record.latency_ms * 1000)
    details = None
    if record.status is not Status.UP and record.details:
        details = json.dumps(record.details, separators=(",", ":"), default=str)
    flags = FLAG_MAINTENANCE if record.in_maintenance else 0
    return (mid, record.ts_ms, record.late_ms, int(record.status), latency, flags, reason_id, details)


def _accumulate(bucket: Bucket, row: tuple) -> None:
    """Add a stored hourly rollup row (SELECT *) to a bucket."""
    (_, _, _, n_up, n_deg, n_down, up, deg, down, maint, maint_good, lat_n, lat_sum, lat_min, lat_max, hist) = row
    for i, value in enumerate((n_up, n_deg, n_down)):
        bucket.n[i] += value
    for i, value in enumerate((up, deg, down)):
        bucket.ms[i] += value
    bucket.maint_ms += maint
    bucket.maint_good_ms += maint_good
    bucket.lat_n += lat_n
    bucket.lat_sum += lat_sum
    if lat_min is not None:
        bucket.lat_min = lat_min if bucket.lat_min is None else min(bucket.lat_min, lat_min)
    if lat_max is not None:
        bucket.lat_max = lat_max if bucket.lat_max is None else max(bucket.lat_max, lat_max)
    bucket.hist = histogram.merge((bucket.hist, histogram.decode(hist)))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = ["Store", "StoreError", "LastResult", "HOURLY", "DAILY", "EventKind"]
