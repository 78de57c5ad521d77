"""The small tables, the same SQL for every engine: meta, the notification outbox, page
subscribers, maintenance scheduled through the admin API, and certificate notices. Each method
is one transaction (the engine's `write(statements)`, which returns each statement's count of
changed rows) in between the writer's batches."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from probe.core.models import MaintenanceWindow, Subscriber
from probe.core.units import now_ms
from probe.storage.interface import CertNotice, Delivery, NewDelivery

log = logging.getLogger("probe.store")

_DELIVERY = "SELECT id, notifier, key, payload, state, attempts, next_ms, created_ms, done_ms, answer FROM deliveries"
_SUBSCRIBER = "SELECT id, email, groups, requested_ms, confirmed_ms FROM subscribers"
_ADD_DELIVERY = ("INSERT INTO deliveries (notifier, key, payload, next_ms, created_ms)"
                 " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING")
_SET_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


class Records:
    """Mixed into an engine's store: needs `write(statements)`, `fetchall(sql, params)`, `journal`
    (probe/storage/journal.py) and `WRITE_ERRORS`."""

    # ---- meta
    async def meta_get(self, key: str) -> str | None:
        rows = await self.fetchall("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    async def meta_set(self, key: str, value: str) -> None:
        await self.write([(_SET_META, (key, value))])

    async def meta_set_default(self, key: str, value: str) -> str:
        await self.write([("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", (key, value))])
        return await self.meta_get(key)

    # ---- outbox
    async def outbox_add(self, deliveries: Iterable[NewDelivery], meta: dict[str, str] | None = None) -> int:
        now = now_ms()
        statements = [(_ADD_DELIVERY, (d.notifier, d.key, d.payload, now, now)) for d in deliveries]
        statements += [(_SET_META, item) for item in (meta or {}).items()]
        if not statements:
            return 0
        counts = await self.write(statements)
        return sum(counts[:len(counts) - len(meta or {})])

    async def outbox_pending(self, notifier: str, limit: int) -> list[Delivery]:
        # Rows whose answer waits in the journal are done, whatever the file still says.
        rows = await self.fetchall(f"{_DELIVERY} WHERE notifier=? AND state='pending' ORDER BY id LIMIT ?",
                                   (notifier, limit + len(self.journal.entries)))
        return [Delivery(*row) for row in rows if row[0] not in self.journal.entries][:limit]

    async def outbox_claim(self, delivery_id: int, attempts: int) -> bool:
        counts = await self._write_with_journal([(
            "UPDATE deliveries SET attempts=attempts+1 WHERE id=? AND state='pending' AND attempts=?",
            (delivery_id, attempts))])
        return counts[-1] == 1

    async def outbox_record(self, delivery_id: int, state: str, attempts: int, next_ms: int, answer: str,
                            done_ms: int | None) -> None:
        entry = (delivery_id, state, attempts, next_ms, answer[:2000], done_ms)
        try:
            await self._write_with_journal([record_statement(entry)])
        except self.WRITE_ERRORS:
            if not self.journal.add(entry):  # no room there either: the caller retries
                raise
            log.warning("the database took no outbox update; the answer is kept in %s until it does delivery=%d",
                        self.journal.path, delivery_id)

    async def _write_with_journal(self, statements: list[tuple[str, tuple]]) -> list[int]:
        """`statements`, after the journalled answers: the first write the database takes also
        takes those, and the journal is blanked."""
        journalled = [record_statement(entry) for entry in self.journal.entries.values()]
        counts = await self.write(journalled + statements)
        if journalled:
            self.journal.clear()
            log.info("the journalled outbox answers are in the database now count=%d", len(journalled))
        return counts[len(journalled):]

    async def outbox_list(self, notifier: str | None = None, limit: int = 100, state: str | None = None
                          ) -> list[Delivery]:
        filters = [(column, value) for column, value in (("notifier", notifier), ("state", state)) if value]
        where = ("WHERE " + " AND ".join(f"{column}=?" for column, _ in filters)) if filters else ""
        rows = await self.fetchall(f"{_DELIVERY} {where} ORDER BY id DESC LIMIT ?",
                                   (*(value for _, value in filters), limit))
        return [self._as_journalled(Delivery(*row)) for row in rows]

    def _as_journalled(self, row: Delivery) -> Delivery:
        """A row as it is: with the answer that waits in the journal, if one does."""
        entry = self.journal.entries.get(row.id)
        if entry is None:
            return row
        _, state, attempts, next_ms, answer, done_ms = entry
        return Delivery(row.id, row.notifier, row.key, row.payload, state, attempts, next_ms, row.created_ms,
                        done_ms, answer)

    async def outbox_counts(self) -> dict[tuple[str, str], int]:
        rows = await self.fetchall("SELECT notifier, state, count(*) FROM deliveries GROUP BY notifier, state")
        return {(notifier, state): count for notifier, state, count in rows}

    # ---- subscribers
    async def subscriber(self, subscriber_id: int) -> Subscriber | None:
        return _one(await self.fetchall(f"{_SUBSCRIBER} WHERE id=?", (subscriber_id,)))

    async def subscriber_by_email(self, email: str) -> Subscriber | None:
        return _one(await self.fetchall(f"{_SUBSCRIBER} WHERE email=?", (email,)))

    async def subscribers(self, confirmed_only: bool = False) -> list[Subscriber]:
        where = " WHERE confirmed_ms IS NOT NULL" if confirmed_only else ""
        return [_subscriber(r) for r in await self.fetchall(f"{_SUBSCRIBER}{where} ORDER BY id")]

    async def subscriber_request(self, email: str, groups: tuple[str, ...], now: int) -> Subscriber:
        await self.write([(
            "INSERT INTO subscribers (email, groups, created_ms, requested_ms) VALUES (?,?,?,?)"
            " ON CONFLICT (email) DO UPDATE SET groups=excluded.groups, requested_ms=excluded.requested_ms",
            (email, _groups_json(groups), now, now))])
        return await self.subscriber_by_email(email)

    async def subscriber_confirm(self, subscriber_id: int, now: int) -> None:
        await self.write([("UPDATE subscribers SET confirmed_ms=? WHERE id=? AND confirmed_ms IS NULL",
                           (now, subscriber_id))])

    async def subscriber_remove(self, subscriber_id: int, outbox_notifier: str, outbox_key_prefix: str) -> None:
        await self.write([
            ("DELETE FROM deliveries WHERE notifier=? AND state='pending' AND key LIKE ?",
             (outbox_notifier, f"{outbox_key_prefix}%")),
            ("DELETE FROM subscribers WHERE id=?", (subscriber_id,))])

    async def subscribers_forget_unconfirmed(self, requested_before_ms: int) -> None:
        await self.write([("DELETE FROM subscribers WHERE confirmed_ms IS NULL AND requested_ms < ?",
                           (requested_before_ms,))])

    # ---- maintenance scheduled through the admin API
    async def maintenance_windows(self) -> list[MaintenanceWindow]:
        rows = await self.fetchall("SELECT id, title, monitors, start_ms, end_ms, description FROM maintenance"
                                   " WHERE cancelled_ms IS NULL OR end_ms > start_ms ORDER BY start_ms")
        return [MaintenanceWindow(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5]) for r in rows]

    async def maintenance_add(self, window: MaintenanceWindow, author: str, now: int) -> None:
        await self.write([(
            "INSERT INTO maintenance (id, title, description, monitors, start_ms, end_ms, created_ms, author)"
            " VALUES (?,?,?,?,?,?,?,?)", (window.id, window.title, window.description, " ".join(window.monitors),
                                          window.start_ms, window.end_ms, now, author))])

    async def maintenance_cancel(self, window_id: str, now: int, end_ms: int) -> None:
        await self.write([("UPDATE maintenance SET cancelled_ms=?, end_ms=? WHERE id=?", (now, end_ms, window_id))])

    # ---- the config's maintenance windows as known
    async def maintenance_definitions(self) -> dict[str, tuple[str, int]]:
        rows = await self.fetchall("SELECT id, definition, since_ms FROM maintenance_config")
        return {r[0]: (r[1], r[2]) for r in rows}

    async def maintenance_definitions_set(self, definitions: dict[str, tuple[str, int]], removed: Iterable[str],
                                          past: Iterable[MaintenanceWindow]) -> None:
        statements = [("DELETE FROM maintenance_config WHERE id=?", (window_id,)) for window_id in removed]
        statements += [("INSERT INTO maintenance_config VALUES (?,?,?) ON CONFLICT (id) DO UPDATE"
                        " SET definition = excluded.definition, since_ms = excluded.since_ms", (window_id, text, since))
                       for window_id, (text, since) in definitions.items()]
        statements += [("INSERT INTO maintenance_past VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET series ="
                        " excluded.series, title = excluded.title, description = excluded.description, monitors ="
                        " excluded.monitors, start_ms = excluded.start_ms, end_ms = excluded.end_ms",
                        (w.id, w.series, w.title, w.description, " ".join(w.monitors), w.start_ms, w.end_ms))
                       for w in past]
        if statements:
            await self.write(statements)

    async def maintenance_past(self) -> list[MaintenanceWindow]:
        rows = await self.fetchall("SELECT id, title, monitors, start_ms, end_ms, description, series"
                                   " FROM maintenance_past ORDER BY start_ms")
        return [MaintenanceWindow(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5], r[6]) for r in rows]

    # ---- certificate notices
    async def cert_notice_lowest(self, monitor: str, expires_ts: int) -> int | None:
        ((announced,),) = await self.fetchall(
            "SELECT min(threshold) FROM cert_notices WHERE monitor=? AND expires_ts=?", (monitor, expires_ts))
        return announced

    async def cert_notice_add(self, notice: CertNotice, deliveries: Iterable[NewDelivery], now: int) -> None:
        queued = now_ms()  # deliveries are due by the wall clock; `now` is the notices' clock
        statements = [
            ("INSERT INTO cert_notices VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
             (notice.monitor, notice.expires_ts, notice.threshold, now)),
            ("DELETE FROM cert_notices WHERE expires_ts < ?", (now // 1000,)),  # expired: never notified again
            *((_ADD_DELIVERY, (d.notifier, d.key, d.payload, queued, queued)) for d in deliveries)]
        await self.write(statements)


def record_statement(entry: tuple) -> tuple[str, tuple]:
    delivery_id, state, attempts, next_ms, answer, done_ms = entry
    return ("UPDATE deliveries SET state=?, attempts=?, next_ms=?, answer=?, done_ms=? WHERE id=?",
            (state, attempts, next_ms, answer[:2000], done_ms, delivery_id))


def _groups_json(groups) -> str:
    return json.dumps(sorted(set(groups)), ensure_ascii=False)


def _subscriber(row: tuple) -> Subscriber:
    return Subscriber(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4])


def _one(rows: list[tuple]) -> Subscriber | None:
    return _subscriber(rows[0]) if rows else None
