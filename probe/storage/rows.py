"""What a batch writes, the same for every engine: the rows of results (reasons interned),
rollup changes and incident transitions, built once per batch (and kept if the commit fails).

Ids of incidents, events, updates and reasons are handed out here, not by the database, so
the engine's events can be built before they commit."""
from __future__ import annotations

import json
from collections.abc import Iterable

from probe.core.models import IncidentEvent, ResultRecord, Status
from probe.storage.reads import _chunks
from probe.storage.rollups import FLAG_MAINTENANCE, FLAG_OFFLINE
from probe.storage.writer import Batch

REASON_CACHE = 50_000
# Longer reasons (a push monitor's message: up to 10 kB of a job's log) are looked up in the
# database each time: 50,000 of them in memory could be half a gigabyte.
REASON_CACHE_CHARS = 500
ID_TABLES = ("incidents", "events", "reasons", "incident_updates")


class RowBuilder:
    """Mixed into an engine's store: needs `monitor_ids`, `rollups`, `_write_lock`, `_next_ids`,
    `_reasons` (an OrderedDict) and `_writer_fetch(sql, params)`."""

    def allocate_id(self, table: str) -> int:
        """Ids are handed out here, not by the database, so events can be built before they commit."""
        value = self._next_ids[table]
        self._next_ids[table] = value + 1
        return value

    async def _build_rows(self, batch: Batch) -> dict[str, list[tuple]]:
        reason_ids, new_reasons = await self._intern_reasons(r.reason for r, _ in batch.results)
        results, located, buckets = [], [], {}
        for record, interval_ms in batch.results:
            mid = self.monitor_ids.get(record.monitor_id)
            if mid is None:
                continue  # removed from the config while its check was running
            if record.location:  # one location's view ([cluster]): what they confirm together is rolled up
                located.append((*result_row(mid, record, reason_ids[record.reason]), record.location))
                continue
            results.append(result_row(mid, record, reason_ids[record.reason]))
            self.rollups.add(mid, record, interval_ms, buckets)
            batch.last[mid] = self.rollups.last[mid]
        rows = {"reasons": new_reasons, "results": results, "location_results": located,
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
            known, new = await self._reasons_of(missing)
            for text in missing:
                ids[text] = known[text]
                if len(text) <= REASON_CACHE_CHARS:
                    self._reasons[text] = known[text]
            while len(self._reasons) > REASON_CACHE:
                self._reasons.popitem(last=False)
        return ids, new

    async def _reasons_of(self, texts: set[str]) -> tuple[dict[str, int], list[tuple[int, str]]]:
        """The ids of these texts: those the database knows, and new ones (id, text) to insert with the batch."""
        known = {}
        async with self._write_lock:
            for chunk in _chunks(sorted(texts), 500):
                marks = ",".join("?" * len(chunk))
                known.update(await self._writer_fetch(f"SELECT text, id FROM reasons WHERE text IN ({marks})", chunk))
        new = []
        for text in sorted(texts - known.keys()):
            known[text] = self.allocate_id("reasons")
            new.append((known[text], text))
        return known, new

    def _incident_rows(self, events: list[IncidentEvent]) -> dict[str, list[tuple]]:
        incidents, updates, rows = {}, [], []
        for event in events:
            inc = event.incident
            mid = self.monitor_ids.get(inc.monitor_id) if inc.monitor_id else None
            incidents[inc.id] = (inc.id, mid, inc.origin, inc.title, inc.impact.value, inc.status,
                                 inc.started_ms, inc.resolved_ms, inc.reason, event.at_ms,
                                 " ".join(inc.affected), inc.postmortem, inc.postmortem_ms,
                                 " ".join(f"{m}={s}" for m, s in inc.component_status))
            rows.append((event.id, event.at_ms, event.kind.value, inc.id, mid, event.reason))
            if event.kind.on_timeline:  # a postmortem or a retitle changes the incident row only
                updates.append((self.allocate_id("incident_updates"), inc.id, inc.status, event.body,
                                event.kind.value, event.author, event.at_ms))
        return {"incidents": list(incidents.values()), "updates": updates, "events": rows}


def result_row(mid: int, record: ResultRecord, reason_id: int) -> tuple:
    latency = None if record.latency_ms is None else int(record.latency_ms * 1000)
    details = None
    if record.status is not Status.UP and record.details:
        details = json.dumps(record.details, separators=(",", ":"), default=str)
    flags = (FLAG_MAINTENANCE if record.in_maintenance else 0) | (FLAG_OFFLINE if record.offline else 0)
    return (mid, record.ts_ms, record.late_ms, int(record.status), latency, flags, reason_id, details)
