"""Either storage engine for a bench run: a fresh SQLite file or a fresh PostgreSQL database.

A script that takes `--engines sqlite,postgresql` gets one `Engines` for the session: for
PostgreSQL it starts one durable cluster (tests/peers/postgres.py with fsync, synchronous_commit
and full_page_writes on, otherwise the server's defaults) on a loopback port, or uses `--url`'s
server, and hands out a new database per run. The server's CPU is measured from outside too:
utime + stime of the postmaster and of every process it started, plus what its children that
exited already left in its cutime + cstime (a backend that ends in the window still counts).
"""
from __future__ import annotations

import asyncio
import itertools
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import CLOCK_TICKS, ROOT

ENGINES = ("sqlite", "postgresql")
POSTGRES_SETTINGS = "fsync on, synchronous_commit on, full_page_writes on; other settings the server's defaults"


@dataclass
class Database:
    """Where one run's probe writes."""
    engine: str
    path: Path | None = None  # SQLite
    url: str | None = None  # PostgreSQL
    server_pid: int | None = None  # PostgreSQL's postmaster, when the server runs on this machine

    def storage_toml(self) -> str:
        """The [storage] lines of a config writing here."""
        return f'path = "{self.path}"' if self.engine == "sqlite" else f'url = "{self.url}"'

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one statement (`?` placeholders, as the shared SQL in probe/storage writes them)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.path) as conn:
                return conn.execute(sql, params).fetchall()
        return asyncio.run(_pg_query(self.url, _numbered(sql), params))

    def server_cpu(self) -> float:
        """CPU seconds the PostgreSQL cluster used so far (0 for SQLite: it runs inside probe)."""
        return cluster_cpu_seconds(self.server_pid) if self.server_pid else 0.0

    def table_sizes(self) -> dict[str, tuple[int, int]]:
        """(bytes on disk, rows) per table, indexes included (SQLite: dbstat; PostgreSQL:
        pg_total_relation_size, which holds the table, its indexes, TOAST and free-space maps)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.path) as conn:
                sizes = dict(conn.execute(
                    "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d"
                    " LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"))
        else:
            sizes = dict(self.query("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r'"
                                    " AND relnamespace = 'public'::regnamespace"))
        return {name: (size, self.query(f"SELECT count(*) FROM {name}")[0][0])
                for name, size in sizes.items() if name in ("results", "rollups")}

    def used_bytes(self) -> int:
        """The whole database's bytes in use (SQLite: pages in use, WAL included, free pages
        excluded; PostgreSQL: pg_database_size, WAL not included)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.path) as conn:
                size, free, page = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                                    for p in ("page_count", "freelist_count", "page_size"))
            return (size - free) * page
        return self.query("SELECT pg_database_size(current_database())")[0][0]


class Engines:
    """`fresh(engine, folder)`: a new empty database of that engine for one run."""

    def __init__(self, server=None, url: str | None = None) -> None:
        self.server, self.url = server, url
        self._names = itertools.count(1)

    def fresh(self, engine: str, folder: Path) -> Database:
        if engine == "sqlite":
            return Database("sqlite", path=folder / f"probe{next(self._names)}.db")
        if self.server is not None:
            return Database("postgresql", url=self.server.create_database(), server_pid=self.server.postmaster_pid())
        name = f"bench{next(self._names)}"
        asyncio.run(_pg_query(self.url, f"DROP DATABASE IF EXISTS {name}", (), autocommit=True))
        asyncio.run(_pg_query(self.url, f"CREATE DATABASE {name}", (), autocommit=True))
        base = self.url.rsplit("/", 1)[0]
        data = asyncio.run(_pg_query(self.url, "SHOW data_directory", ()))[0][0]
        pid_file = Path(data) / "postmaster.pid"
        return Database("postgresql", url=f"{base}/{name}",
                        server_pid=int(pid_file.read_text().split()[0]) if pid_file.exists() else None)


@contextmanager
def engines(names: list[str], url: str | None = None):
    """The session's engines: a durable PostgreSQL cluster started here unless `url` names a server."""
    for name in names:
        if name not in ENGINES:
            raise SystemExit(f"unknown engine {name!r}: {' or '.join(ENGINES)}")
    if "postgresql" not in names or url:
        yield Engines(url=url)
        return
    import sys
    sys.path.insert(0, str(ROOT))
    from tests.peers.postgres import PostgresServer, binaries
    found = binaries()
    if found is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install -y postgresql")
    server = PostgresServer(found, durable=True).start()
    try:
        yield Engines(server=server)
    finally:
        server.stop()


def server_version(url: str) -> str:
    return asyncio.run(_pg_query(url, "SHOW server_version", ()))[0][0]


def cluster_cpu_seconds(postmaster: int) -> float:
    """utime + stime of the postmaster and its children, plus its exited children's (cutime + cstime)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile: its time is in the postmaster's cutime now
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _numbered(sql: str) -> str:
    counter = itertools.count(1)
    return "".join(f"${next(counter)}" if ch == "?" else ch for ch in sql)


async def _pg_query(url: str, sql: str, params: tuple, autocommit: bool = False) -> list[tuple]:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        if autocommit:
            await conn.execute(sql)
            return []
        return [tuple(r) for r in await conn.fetch(sql, *params)]
    finally:
        await conn.close()
