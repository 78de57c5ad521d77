"""What went wrong with the PostgreSQL server, in the words an operator acts on.

asyncpg raises PostgresError subclasses carrying the server's SQLSTATE, InterfaceError for
a connection it closed, and plain OSError/TimeoutError for a server it cannot reach; all of
them count as "the database takes no writes" for the writer, which keeps results in memory
and retries, as it does for a full SQLite disk."""
from __future__ import annotations

import errno
import socket

import asyncpg


class WriterElsewhere(Exception):
    """Another `probe run` holds this database's writer lock."""


WRITE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError,
                                                 TimeoutError, socket.gaierror, WriterElsewhere)

# SQLSTATE -> problem (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_SQLSTATES = {
    "28P01": "wrong password", "28000": "not allowed", "3D000": "no such database",
    "53100": "database full", "53200": "server out of memory", "53300": "too many connections",
    "25006": "read-only", "57P01": "server shutting down", "57P02": "server shutting down",
    "57P03": "server starting or shutting down", "08006": "connection lost", "08003": "connection lost",
    "08001": "cannot connect", "08004": "connection refused by the server", "57014": "statement timed out",
    "42501": "no permission",
}
_ERRNOS = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "server unreachable",
           errno.ENETUNREACH: "server unreachable", errno.ETIMEDOUT: "connection timed out"}


def problem_of(exc: BaseException) -> str:
    if isinstance(exc, WriterElsewhere):
        return "another probe is writing to this database"
    state = getattr(exc, "sqlstate", None)
    if state == "28000" and "does not exist" in str(exc):  # 'role "x" does not exist'
        return "no such user"
    if state in _SQLSTATES:
        return _SQLSTATES[state]
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, OSError) and exc.errno in _ERRNOS:
        return _ERRNOS[exc.errno]
    if isinstance(exc, (TimeoutError,)):
        return "connection timed out"
    if type(exc).__name__ in ("InterfaceError", "ConnectionDoesNotExistError"):
        return "connection lost"
    if isinstance(exc, ConnectionError):
        return "connection lost"
    return "database write failed"
