"""The SQLite engine, probe's embedded default: store.py (life cycle and the writer's
transactions), reads.py, records.py (the small tables), migrations.py (the schema)."""
from probe.storage.sqlite.migrations import MIGRATIONS
from probe.storage.sqlite.store import SqliteStore

__all__ = ["MIGRATIONS", "SqliteStore"]
