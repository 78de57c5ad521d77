"""One `probe run` per database file: an exclusive lock on `<database>.lock`, held while the
store is open.

Two processes on one file ran every check twice, sent webhooks twice and jammed each other's
writer on duplicate ids. SQLite's own locks last a transaction, not a process, so this is an
OS lock (flock) on a file beside the database: the kernel drops it when the process ends, by
`kill -9` too, so there is never a stale lock to remove by hand. The file holds the holder's
pid so the refusal can name it. (A server engine takes a database advisory lock instead.)
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockedError(Exception):
    """Another process holds the lock; `pid` is what it wrote there (None if unreadable)."""

    def __init__(self, lock_path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"in use by another probe run ({holder}; lock file {lock_path})")
        self.pid = pid


class ProcessLock:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockedError at once (never wait: the holder may run for months)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockedError(self.path, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (removing it would race a new holder)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
