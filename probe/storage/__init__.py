"""Storage: the one place that speaks SQL. `Storage` (interface.py) is what the rest of probe
may ask; sqlite/ and postgres/ are the engines behind it; writer.py, rows.py, rollups.py,
reads.py and records.py are what every engine shares (the batching writer, the rows of a
batch, the rollup arithmetic, and the SQL both engines speak)."""
from __future__ import annotations

from probe.storage.interface import (
    CertNotice,
    Delivery,
    Fenced,
    NewDelivery,
    Storage,
    StoreError,
)
from probe.storage.rollcache import DAILY, HOURLY


def open_storage(target, calendar, **options) -> Storage:
    """The engine for a config's [storage] (`Config.storage_target`): SQLite or PostgreSQL."""
    # The engines import this package's interface; asyncpg is needed only for PostgreSQL.
    if target.kind == "postgresql":
        from probe.storage.postgres import PostgresStore
        return PostgresStore(target, calendar, **options)
    from probe.storage.sqlite import SqliteStore
    options.pop("connect_for", None)  # a file is there or not: nothing to wait for
    options.pop("cluster", None)  # [cluster] needs PostgreSQL (the config says so)
    return SqliteStore(target.path, calendar, **options)


__all__ = ["DAILY", "HOURLY", "CertNotice", "Delivery", "Fenced", "NewDelivery", "Storage", "StoreError", "open_storage"]
