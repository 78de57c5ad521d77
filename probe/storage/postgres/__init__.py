"""The PostgreSQL engine (asyncpg): store.py, migrations.py, problems.py. The reads, the small
tables and the writer's rows are shared with SQLite (probe/storage/reads.py, records.py, rows.py)."""
from probe.storage.postgres.migrations import MIGRATIONS
from probe.storage.postgres.store import PostgresStore

__all__ = ["MIGRATIONS", "PostgresStore"]
