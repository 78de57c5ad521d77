"""The SQLite engine's reads: results, rollups, incidents and events, on the reader connection
(WAL lets it read beside the writer)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from probe.core.models import Impact, Incident, IncidentUpdate, ResultRecord, Status
from probe.storage.rollcache import Entry
from probe.storage.rollups import FLAG_MAINTENANCE


class Reads:
    """Mixed into SqliteStore: needs `reader`, `monitor_ids`, `monitor_keys`, `sums`, `_write_lock`."""

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        # One call into the connection's thread, execute and fetch together: as two calls, another
        # read could run in between, inside the first one's open read transaction, and see the
        # file as it was before the last commit (a subscriber just written came back None).
        return list(await self.reader.execute_fetchall(sql, tuple(params)))

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

    async def rollup_rows(self, monitor_id: str, res: int, start_ms: int, end_ms: int) -> list[dict]:
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

    async def incident_update_at(self, incident_id: int, at_ms: int, kind: str) -> IncidentUpdate | None:
        """The update an event of `kind` at `at_ms` wrote to the incident's timeline, if any."""
        rows = await self.fetchall(
            "SELECT id, incident, status, body, kind, author, created_ms FROM incident_updates"
            " WHERE incident=? AND created_ms=? AND kind=? LIMIT 1", (incident_id, at_ms, kind))
        return IncidentUpdate(*rows[0]) if rows else None

    async def events_last_id(self) -> int:
        return (await self.fetchall("SELECT coalesce(max(id), 0) FROM events"))[0][0]


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
