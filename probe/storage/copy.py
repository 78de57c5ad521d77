"""`probe storage copy`: the whole history from one engine into an empty other one, and
`probe storage check`: what the operator wants to know of a database before trusting it.

Tables go in an order that keeps references valid (monitors before results, incidents before
their updates), each in batches read by primary key (keyset pagination, so a batch costs the
same at the end of a big table as at its start). Afterwards every table's row count is compared.
The schema of both engines has the same tables and columns (migrations with the same numbers).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("probe.store")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key: batches are read in its order


TABLES = (
    Table("monitors", ("id", "key", "name", "type", "grp", "created_ms"), ("id",)),
    Table("reasons", ("id", "text"), ("id",)),
    Table("results", ("monitor", "ts", "late", "status", "latency_us", "flags", "reason", "details"),
          ("monitor", "ts")),
    Table("location_results", ("monitor", "location", "ts", "late", "status", "latency_us", "flags", "reason",
                                "details"), ("monitor", "location", "ts")),
    Table("rollups", ("monitor", "res", "start", "n_up", "n_degraded", "n_down", "up_ms", "degraded_ms", "down_ms",
                      "maint_ms", "maint_good_ms", "lat_n", "lat_sum", "lat_min", "lat_max", "lat_hist"),
          ("monitor", "res", "start")),
    Table("incidents", ("id", "monitor", "origin", "title", "impact", "status", "started_ms", "resolved_ms", "reason",
                        "updated_ms", "affected", "postmortem", "postmortem_ms", "components"), ("id",)),
    Table("incident_updates", ("id", "incident", "status", "body", "kind", "author", "created_ms"), ("id",)),
    Table("events", ("id", "at_ms", "kind", "incident", "monitor", "reason"), ("id",)),
    Table("deliveries", ("id", "notifier", "key", "payload", "state", "attempts", "next_ms", "created_ms", "done_ms",
                         "answer"), ("id",)),
    Table("maintenance", ("id", "title", "description", "monitors", "start_ms", "end_ms", "created_ms",
                          "cancelled_ms", "author"), ("id",)),
    Table("cert_notices", ("monitor", "expires_ts", "threshold", "created_ms"), ("monitor", "expires_ts", "threshold")),
    Table("subscribers", ("id", "email", "groups", "created_ms", "requested_ms", "confirmed_ms"), ("id",)),
    Table("maintenance_config", ("id", "definition", "since_ms"), ("id",)),
    Table("maintenance_past", ("id", "series", "title", "description", "monitors", "start_ms", "end_ms"), ("id",)),
    Table("meta", ("key", "value"), ("key",)),
)
ENGINE_META = {"schema_version"}  # PostgreSQL's own bookkeeping in meta: each engine keeps its own
BATCH = 5000


class CopyError(Exception):
    """The copy cannot start or did not arrive whole: one line for the operator."""


async def row_counts(store) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        where = f" WHERE key NOT IN ({', '.join(repr(k) for k in ENGINE_META)})" if table.name == "meta" else ""
        counts[table.name] = (await store.fetchall(f"SELECT count(*) FROM {table.name}{where}"))[0][0]
    return counts


async def copy_all(source, target, progress: Callable[[str, int, int], None] = lambda *a: None) -> dict[str, int]:
    """Copy every row of `source` into `target` (both opened); returns the row counts, verified."""
    counts = await row_counts(source)
    found = await row_counts(target)
    if any(n for name, n in found.items() if name != "meta"):
        busy = ", ".join(f"{name} ({n:,})" for name, n in found.items() if n and name != "meta")
        raise CopyError(f"the target {target.describe()} is not empty: {busy}; copy only into a new database")
    for table in TABLES:
        await _copy_table(source, target, table, counts[table.name], progress)
    await target.finish_import()
    copied = await row_counts(target)
    wrong = [f"{name}: {counts[name]:,} in the source, {copied[name]:,} in the target"
             for name in counts if copied[name] != counts[name]]
    if wrong:
        raise CopyError("row counts differ after the copy: " + "; ".join(wrong))
    return counts


async def _copy_table(source, target, table: Table, total: int, progress) -> None:
    done, after = 0, None
    progress(table.name, 0, total)
    while True:
        batch = await _batch(source, table, after)
        rows = [r for r in batch if r[0] not in ENGINE_META] if table.name == "meta" else batch
        if rows:
            await target.import_rows(table.name, table.columns, rows, replace=table.name == "meta")
            done += len(rows)
            progress(table.name, done, total)
        if table.name == "meta" or len(batch) < BATCH:
            return
        after = tuple(batch[-1][table.columns.index(k)] for k in table.key)


async def _batch(store, table: Table, after: tuple | None) -> list[tuple]:
    columns = ", ".join(table.columns)
    order = ", ".join(table.key)
    if table.name == "meta":  # a handful of rows: one batch
        return await store.fetchall(f"SELECT {columns} FROM meta ORDER BY key")
    if after is None:
        return await store.fetchall(f"SELECT {columns} FROM {table.name} ORDER BY {order} LIMIT ?", (BATCH,))
    # (a, b) > (?, ?): row-value comparison, which SQLite and PostgreSQL both understand
    keys = f"({order}) > ({', '.join('?' * len(table.key))})"
    return await store.fetchall(f"SELECT {columns} FROM {table.name} WHERE {keys} ORDER BY {order} LIMIT ?",
                                (*after, BATCH))
