"""[storage]: which engine, where, and how long data is kept.

`url`: which engine, and where. `sqlite:///relative/or/absolute.db` or
`postgresql://user@host:5432/dbname?sslmode=...` (libpq's URL form: several `host:port`
pairs for a primary behind failover, `target_session_attrs=read-write` to find it).

The password stays in the URL asyncpg gets (or comes from PGPASSWORD / ~/.pgpass, which
asyncpg reads as libpq does); everything shown to people, logs and errors included, is
`display`, the URL without it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from probe.config.schema import Duration, at_least

DAY = 86400.0

# The options asyncpg understands as libpq does. asyncpg sends any other one to the server as
# a setting, so a typo would fail only at connect time: refuse it here instead.
OPTIONS = {
    "sslmode": {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
    "target_session_attrs": {"any", "primary", "standby", "read-write", "read-only", "prefer-standby"},
    "connect_timeout": None, "application_name": None, "sslrootcert": None, "sslcert": None, "sslkey": None,
    "sslcrl": None, "sslpassword": None, "passfile": None, "krbsrvname": None, "gsslib": None,
}


@dataclass(frozen=True)
class StorageTarget:
    kind: str  # "sqlite" | "postgresql"
    path: Path | None = None  # SQLite's file
    dsn: str = ""  # PostgreSQL's URL, password included: for asyncpg only
    display: str = ""  # for people: the file, or the URL without its password

    @classmethod
    def sqlite(cls, path: Path) -> "StorageTarget":
        return cls("sqlite", path=path, display=str(path))


def parse_storage_url(url: str, base: Path) -> StorageTarget:
    """The target a URL names; relative SQLite paths are relative to `base` (the config's folder).
    Raises ValueError with a message that never contains the password."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError('must be "sqlite:///path/to/probe.db" or "postgresql://user@host:5432/dbname"')
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError('must be "sqlite:///relative/path.db" or "sqlite:////absolute/path.db"')
        path = Path(unquote(rest[1:])).expanduser()
        return StorageTarget.sqlite(path if path.is_absolute() else base / path)
    if scheme in ("postgresql", "postgres"):
        return _postgresql(url)
    raise ValueError(f'has an unknown scheme "{scheme}://" (sqlite:// or postgresql://)')


def _postgresql(url: str) -> StorageTarget:
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    if not hosts:
        raise ValueError("names no host (postgresql://user@host:5432/dbname)")
    for pair in hosts.split(","):
        host, _, port = pair.rpartition(":") if ":" in pair and not pair.endswith("]") else (pair, "", "")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError(f'has a bad host:port "{pair}"')
    database = unquote(parts.path.lstrip("/"))
    if "/" in database:
        raise ValueError(f'has a bad database name "{database}"')
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise ValueError(f'has an unknown option "{key}" (known: {", ".join(sorted(OPTIONS))})')
        allowed = OPTIONS[key]
        if allowed is not None and value not in allowed:
            raise ValueError(f'{key} must be one of {" | ".join(sorted(allowed))} (got "{value}")')
        if key == "connect_timeout" and not value.isdigit():
            raise ValueError(f'connect_timeout must be a number of seconds (got "{value}")')
    shown = f"postgresql://{user + '@' if user else ''}{hosts}/{database}" + (f"?{parts.query}" if parts.query else "")
    return StorageTarget("postgresql", dsn=url, display=shown)


@dataclass(frozen=True)
class StorageConfig:
    path: str = ""  # SQLite's file, relative to the config file; "probe.db" when neither is set
    url: str = ""  # sqlite:///... or postgresql://...; instead of `path`
    raw_retention: Duration = 30 * DAY
    rollup_retention: Duration = 400 * DAY
    connect_retry: Duration = 30.0  # PostgreSQL: how long `probe run` keeps trying to reach it at start

    def problems(self):
        yield from at_least("raw_retention", self.raw_retention, 2 * DAY, duration=True)
        yield from at_least("rollup_retention", self.rollup_retention, 400 * DAY, duration=True)
        if self.path and self.url:
            yield "url", "and path name two places for the data: set one of them"
        elif self.url:
            try:
                parse_storage_url(self.url, Path("."))
            except ValueError as exc:
                yield "url", str(exc)

    def target(self, base: Path) -> StorageTarget:
        """Where the data is; `base` is the config file's folder."""
        if self.url:
            return parse_storage_url(self.url, base)
        path = Path(os.path.expanduser(self.path or "probe.db"))
        return StorageTarget.sqlite(path if path.is_absolute() else base / path)
