"""The PostgreSQL store when several instances write one database ([cluster]).

A single `probe run` hands out ids from max(id) + 1, as the one process writing. Here every
instance writes its location's results and reasons, any instance may write an operator's incident,
and the leader writes what the locations confirm together (results, rollups, the engine's incidents
and events). So:

- Incident and update ids come from sequences, fetched ahead (`allocate_id` stays synchronous, as
  the engine builds events before they commit); `reserve_ids` tops them up before a burst.
- Event ids are numbered inside the commit, under a transaction-scoped advisory lock: the
  notifier's cursor follows `events` by id, and ids handed out ahead by two writers would commit
  out of order, so that the cursor could pass an event before it is there.
- Reasons are interned by the database (INSERT ... ON CONFLICT (text) DO UPDATE ... RETURNING id).
- The leader's rows go only with its term: the commit reads `cluster_leader.term` FOR SHARE, and a
  new leader's term UPDATE waits for that transaction. A former leader that still had a batch in
  flight gets `Fenced`, and the writer drops what it decided as leader (writer.py).
- Every commit announces its results on the `probe_results` channel (NOTIFY is delivered at commit,
  in commit order): the leader confirms from it, every instance keeps its page current with it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import deque

from probe.core.calendar import DAY_MS
from probe.core.models import ResultRecord, Status
from probe.storage.interface import Fenced
from probe.storage.postgres.link import CHANGES_CHANNEL, RESULTS_CHANNEL, PostgresLink
from probe.storage.postgres.migrations import MIGRATION_LOCK
from probe.storage.rollups import FLAG_MAINTENANCE, FLAG_OFFLINE, LastResult

log = logging.getLogger("probe.store")

EVENTS_LOCK = 0x70726F6265_01  # held by a transaction while it numbers and inserts events
SEQUENCES = {"incidents": "incidents_ids", "incident_updates": "incident_updates_ids", "events": "events_ids",
             "reasons": "reasons_ids"}
AHEAD = 200  # incident and update ids fetched at once
LOW = 100  # below this many, more are fetched
PAYLOAD_BYTES = 7000  # NOTIFY takes 8000 bytes at most
REASON_CHARS = 300  # of a reason, in a notification (the database has all of it)


class Together:
    """Mixed into PostgresStore; active when `cluster` is True."""

    cluster: bool
    fence_term: int | None

    def _init_together(self, cluster: bool) -> None:
        self.cluster = cluster
        self.fence_term = None  # the leader's term while this instance leads ([cluster])
        self._ahead: dict[str, deque[int]] = {table: deque() for table in ("incidents", "incident_updates")}
        self._provisional = 0  # event ids before their commit numbers them
        self._topping: asyncio.Task | None = None

    # ---- ids ----------------------------------------------------------------------------

    async def _catch_up_sequences(self, conn) -> None:
        """Ids handed out by a single `probe run` before (max + 1) are behind no sequence: move each
        sequence past them, under the migrations' lock (instances that start together agree)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            for table, sequence in SEQUENCES.items():
                await conn.execute(
                    f"SELECT setval('{sequence}', (SELECT max(id) FROM {table}))"
                    f" WHERE (SELECT max(id) FROM {table}) > (SELECT last_value FROM {sequence})")

    def allocate_id(self, table: str) -> int:
        if not self.cluster:
            return super().allocate_id(table)
        if table == "events":  # numbered by the commit (see the module's doc)
            self._provisional -= 1
            return self._provisional
        free = self._ahead[table]
        if len(free) < LOW and (self._topping is None or self._topping.done()):
            self._topping = asyncio.get_running_loop().create_task(self.reserve_ids())
        if not free:
            raise RuntimeError(f"no {table} id left: reserve_ids() must run before a burst of incidents")
        return free.popleft()

    async def reserve_ids(self) -> None:
        """Make sure ids are at hand for a burst of incidents (the engine and operators call it first)."""
        if not self.cluster:
            return
        for table, free in self._ahead.items():
            if len(free) < LOW:
                async with self._write_lock:
                    conn = await self._writer_conn()
                    values = await conn.fetch(f"SELECT nextval('{SEQUENCES[table]}') FROM generate_series(1, $1)",
                                              AHEAD)
                free.extend(sorted(v[0] for v in values))

    async def _reasons_of(self, texts: set[str]) -> tuple[dict[str, int], list[tuple[int, str]]]:
        if not self.cluster:
            return await super()._reasons_of(texts)
        # Sorted, so that two instances inserting the same new texts lock them in the same order.
        async with self._write_lock:
            conn = await self._writer_conn()
            rows = await conn.fetch(
                "INSERT INTO reasons (id, text) SELECT nextval('reasons_ids'), t FROM unnest($1::text[]) AS t"
                " ORDER BY t ON CONFLICT (text) DO UPDATE SET text = excluded.text RETURNING text, id",
                sorted(texts))
        return {text: rid for text, rid in rows}, []

    # ---- leading ------------------------------------------------------------------------

    async def lead(self, term: int) -> None:
        """This instance leads from `term` on: its newest confirmed results are re-read (a former
        leader wrote them), and the page's sums are read afresh, kept exact by this writer from now."""
        self.fence_term = term
        self.rollups.last.clear()
        self.last_committed.clear()
        for key, mid in self.monitor_ids.items():
            interval = self._intervals.get(key)
            if interval is not None:
                await self._load_last(mid, interval)
        self.sums.clear()
        self.sums.version.update((mid, self.sums.version.get(mid, 0) + 1) for mid in self.monitor_keys)

    def follow(self) -> None:
        """No longer leading: whatever this instance decided as leader is written no more."""
        self.fence_term = None

    # ---- the commit ---------------------------------------------------------------------

    def _leader_rows(self, rows: dict) -> bool:
        return bool(rows["results"] or rows["rollups"] or rows.get("engine_events"))

    async def _before_commit(self, conn, rows: dict) -> None:
        """In the batch's transaction: fence the leader's rows, number the events."""
        if self._leader_rows(rows):
            term = await conn.fetchval("SELECT term FROM cluster_leader WHERE id = 1 FOR SHARE")
            if self.fence_term is None or term != self.fence_term:
                raise Fenced(f"the leader's term is {term}, this instance's {self.fence_term}")
        if rows["events"]:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", EVENTS_LOCK)
            numbers = await conn.fetch("SELECT nextval('events_ids') FROM generate_series(1, $1)", len(rows["events"]))
            rows["event_ids"] = sorted(n[0] for n in numbers)
            rows["events"] = [(number, *row[1:]) for number, row in zip(rows["event_ids"], rows["events"])]

    async def _announce(self, conn, rows: dict) -> None:
        for payload in rows.get("announce", ()):
            await conn.execute("SELECT pg_notify($1, $2)", RESULTS_CHANNEL, payload)
        if rows["incidents"] or rows["updates"]:
            await conn.execute("SELECT pg_notify($1, 'incidents')", CHANGES_CHANNEL)
        if rows.get("operator_events"):  # the leader's engine keeps copies of open incidents: they follow
            await conn.execute("SELECT pg_notify($1, 'operator')", CHANGES_CHANNEL)

    def _after_commit(self, rows: dict) -> None:
        """The batch's events get the ids their rows were committed with (published after this)."""
        events = rows.get("event_objects")
        if events is not None and "event_ids" in rows:
            events[:] = [dataclasses.replace(e, id=number) for e, number in zip(events, rows["event_ids"])]

    async def _build_rows(self, batch) -> dict:
        rows = await super()._build_rows(batch)
        if self.cluster:
            rows["event_objects"] = batch.events  # the same list: numbered in place after the commit
            rows["engine_events"] = any(e.author == "probe" for e in batch.events)
            rows["operator_events"] = any(e.author != "probe" for e in batch.events)
            rows["announce"] = announcements(r for r, _ in batch.results if r.monitor_id in self.monitor_ids)
        return rows

    # ---- the cluster's connection, reads and announcements --------------------------------

    def cluster_link(self, instance: str, location: str, version: str, heartbeat_s: float):
        return PostgresLink(self._connect, instance, location, version, heartbeat_s)

    async def location_latest(self, monitor_ids: list[str], locations: list[str]) -> list[ResultRecord]:
        """Each location's newest result of each monitor."""
        return await self._located(monitor_ids, locations, "ORDER BY ts DESC LIMIT 1", 0)

    async def location_results_since(self, monitor_ids: list[str], locations: list[str], since_ms: int
                                     ) -> list[ResultRecord]:
        """Each location's results of each monitor from `since_ms` on, oldest first."""
        found = await self._located(monitor_ids, locations, "AND ts >= $3 ORDER BY ts", since_ms)
        return sorted(found, key=lambda r: r.ts_ms)

    async def _located(self, monitor_ids: list[str], locations: list[str], tail: str, since_ms: int
                       ) -> list[ResultRecord]:
        # One index probe per (monitor, location) of the primary key, however long the history.
        rows = await self.pool.fetch(
            "SELECT m.key, l.location, r.ts, r.late, r.status, r.latency_us, r.flags, coalesce(t.text, '')"
            " FROM monitors m CROSS JOIN unnest($2::text[]) AS l(location) CROSS JOIN LATERAL"
            " (SELECT ts, late, status, latency_us, flags, reason FROM location_results lr"
            f"  WHERE lr.monitor = m.id AND lr.location = l.location {tail}) r"
            " LEFT JOIN reasons t ON t.id = r.reason WHERE m.key = ANY($1::text[])",
            monitor_ids, locations, *((since_ms,) if "$3" in tail else ()))
        return [ResultRecord(key, ts, ts - late, Status(status), reason, None if lat is None else lat / 1000, {},
                             bool(flags & FLAG_MAINTENANCE), bool(flags & FLAG_OFFLINE), location)
                for key, location, ts, late, status, lat, flags, reason in rows]

    async def announce(self, what: str) -> None:
        """Tell the other instances that `what` changed ("maintenance", "outbox")."""
        if self.cluster:
            await self.write([("SELECT pg_notify(?, ?)", (CHANGES_CHANNEL, what))])

    async def outbox_add(self, deliveries, meta=None) -> int:
        added = await super().outbox_add(deliveries, meta)
        if added and self.fence_term is None:
            await self.announce("outbox")  # the leader's workers send it
        return added

    async def cert_notice_add(self, notice, deliveries, now: int) -> None:
        await super().cert_notice_add(notice, deliveries, now)
        await self.announce("outbox")

    async def maintenance_add(self, window, author: str, now: int) -> None:
        await super().maintenance_add(window, author, now)
        await self.announce("maintenance")

    async def maintenance_cancel(self, window_id: str, now: int, end_ms: int) -> None:
        await super().maintenance_cancel(window_id, now, end_ms)
        await self.announce("maintenance")

    # ---- what others committed ----------------------------------------------------------

    def committed_elsewhere(self, records: list[ResultRecord]) -> None:
        """Confirmed results another instance (the leader) committed: the page's newest status and
        its sums follow them."""
        for record in records:
            mid = self.monitor_ids.get(record.monitor_id)
            interval = self._intervals.get(record.monitor_id)
            if mid is None or interval is None:
                continue
            current = self.last_committed.get(mid)
            if current is None or record.ts_ms >= current.ts_ms:
                self.last_committed[mid] = LastResult(record.ts_ms, record.status, record.in_maintenance, interval,
                                                      record.offline)
            self.sums.version[mid] = self.sums.version.get(mid, 0) + 1
        if records:
            # The leader's rollups changed the buckets of these results: the day (a calendar day
            # may be 25 hours) and the windows reaching into it are read again when next asked for.
            self.sums.forget_since(min(r.ts_ms for r in records) - 2 * DAY_MS)


def announcements(records) -> list[str]:
    """Results as NOTIFY payloads of at most PAYLOAD_BYTES each."""
    payloads, items, size = [], [], 2
    for r in records:
        flags = (FLAG_MAINTENANCE if r.in_maintenance else 0) | (FLAG_OFFLINE if r.offline else 0)
        item = json.dumps([r.monitor_id, r.location, r.ts_ms, r.late_ms, int(r.status), r.latency_ms, flags,
                           r.reason[:REASON_CHARS]], separators=(",", ":"), ensure_ascii=False)
        if items and size + len(item.encode()) + 1 > PAYLOAD_BYTES:
            payloads.append("[" + ",".join(items) + "]")
            items, size = [], 2
        items.append(item)
        size += len(item.encode()) + 1
    if items:
        payloads.append("[" + ",".join(items) + "]")
    return payloads


def announced(payload: str) -> list[ResultRecord]:
    """The results of one `probe_results` notification."""
    out = []
    for key, location, ts, late, status, latency, flags, reason in json.loads(payload):
        out.append(ResultRecord(key, ts, ts - late, Status(status), reason, latency, {},
                                bool(flags & FLAG_MAINTENANCE), bool(flags & FLAG_OFFLINE), location))
    return out
