"""Whether the database takes writes, in words an operator understands (SQLite's here; the
PostgreSQL engine brings its own, probe/storage/postgres/problems.py).

The store's writer reports every commit here. A failure names the problem ("database
full", "read-only", ...) and the file; the state is logged once when it changes, not
once per failed batch, and `/healthz` reads it. Nothing here touches the database.
"""
from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probe.core.units import now_ms

log = logging.getLogger("probe.store")

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_PROBLEMS = {5: "database locked", 6: "database locked", 8: "read-only", 10: "disk I/O error",
                    11: "database corrupt", 13: "database full", 14: "cannot open the database file",
                    26: "not a database"}
_OS_PROBLEMS = {errno.ENOSPC: "database full", errno.EDQUOT: "database full", errno.EROFS: "read-only",
                errno.EACCES: "read-only", errno.EPERM: "read-only", errno.EIO: "disk I/O error"}
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 5.0


def problem_of(exc: BaseException) -> str:
    """"database full", "read-only", ...: what an operator has to fix."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_PROBLEMS:
            return _SQLITE_PROBLEMS[code & 0xFF]
    if isinstance(exc, OSError) and exc.errno in _OS_PROBLEMS:
        return _OS_PROBLEMS[exc.errno]
    return "database write failed"


@dataclass
class WriteState:
    path: Path | str  # where the data is: a file, or a server's URL without its password
    describe: Callable[[BaseException], str] = problem_of  # the engine's words for an error
    problem: str | None = None  # None while writes succeed
    error: str = ""  # SQLite's (or the OS's) own words
    since_ms: int | None = None
    failures: int = 0  # consecutive failed commits
    dropped_logged: bool = False

    @property
    def writable(self) -> bool:
        return self.problem is None

    @property
    def message(self) -> str | None:
        """One line for /healthz and the log: the problem, the file, SQLite's words."""
        return None if self.problem is None else f"{self.problem}: {self.path}: {self.error}"

    def failed(self, exc: BaseException, pending: int, bound: int) -> float:
        """Record a failed commit; log only if the problem is new. Returns seconds until the retry."""
        problem, error = self.describe(exc), str(exc)
        if problem != self.problem:
            log.error("database not writable path=%s problem=%r error=%r: keeping up to %d results in memory"
                      " (%d now) and retrying by itself", self.path, problem, error, bound, pending)
            self.since_ms = self.since_ms or now_ms()
        self.problem, self.error = problem, error
        self.failures += 1
        return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self.failures - 1))

    def dropping(self, bound: int) -> None:
        if not self.dropped_logged:
            log.error("database not writable path=%s: %d results kept in memory, dropping newer ones"
                      " (counted in /healthz) until writes resume", self.path, bound)
            self.dropped_logged = True

    def succeeded(self, kept: int, dropped: int) -> None:
        """Record a commit; after an outage, say it is over and what it cost."""
        if self.problem is not None:
            log.warning("database writable again path=%s after=%.1fs problem_was=%r results_kept=%d"
                        " results_dropped=%d", self.path, (now_ms() - self.since_ms) / 1000, self.problem,
                        kept, dropped)
        self.problem, self.error, self.since_ms, self.failures, self.dropped_logged = None, "", None, 0, False
