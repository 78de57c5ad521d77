"""Storage: the one place that speaks SQL. `Storage` (interface.py) is what the rest of probe
may ask; sqlite/ is the engine behind it; rollups.py and writer.py are what every engine
shares (the rollup arithmetic and the single batching writer)."""
from __future__ import annotations

from probe.storage.interface import (
    CertNotice,
    Delivery,
    NewDelivery,
    Storage,
    StoreError,
)
from probe.storage.rollcache import DAILY, HOURLY


def open_storage(path, calendar, **options) -> Storage:
    """The engine for a config's [storage]: SQLite at `path` (the only engine so far)."""
    from probe.storage.sqlite import (
        SqliteStore,  # the engines import this package's interface
    )
    return SqliteStore(path, calendar, **options)


__all__ = ["DAILY", "HOURLY", "CertNotice", "Delivery", "NewDelivery", "Storage", "StoreError", "open_storage"]
