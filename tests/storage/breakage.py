"""Real ways for a database to stop taking writes, portable (no mount needed). Full: SQLite's own
`max_page_count` on the writer connection caps the file at its size and filler rows take what
is left, so the next page the writer needs fails with "database or disk is full". Read-only:
`query_only`, which fails writes with the same SQLITE_READONLY a read-only mount gives; on
PostgreSQL, a read-only session on the writer's connection (what a demoted primary answers:
SQLSTATE 25006)."""
import sqlite3

import pytest

from probe.storage.sqlite import SqliteStore


async def fill_the_disk(store: SqliteStore) -> None:
    """Cap the file at its size and fill what is left, so the next page the writer needs fails."""
    (count,) = (await store.fetchall("PRAGMA page_count"))[0]
    await store.write([(f"PRAGMA max_page_count = {count + 20}", ()), ("CREATE TABLE filler (b BLOB)", ())])
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for _ in range(100):
            await store.write([("INSERT INTO filler VALUES (zeroblob(3000))", ())])


async def free_space(store: SqliteStore) -> None:
    await store.write([("PRAGMA max_page_count = 1073741823", ())])


def _postgres(store) -> bool:
    return type(store).__name__ == "PostgresStore"


async def read_only(store) -> None:
    await store.write([("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY" if _postgres(store)
                        else "PRAGMA query_only = ON", ())])


async def writable(store) -> None:
    await store.write([("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE" if _postgres(store)
                        else "PRAGMA query_only = OFF", ())])
