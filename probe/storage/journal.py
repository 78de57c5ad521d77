"""Channel answers the database could not take, kept in a small local file (SQLite: beside the
database; PostgreSQL: in the temporary folder, named after the database).

The outbox counts an attempt on the database before it sends (outbox_claim), and records the
channel's answer after (outbox_record). If the disk is full or read-only at that second
moment, the answer used to live only in memory: a stop or a crash before the disk came back
left the row pending, and the next process sent the message again. The disk must never cause
a duplicate, so the answer goes to this journal instead, and the database takes it at its next
write (or at the next open).

The file is allocated in full when the database is opened (1 MiB: 512 slots of 2 KiB), so
writing a slot later needs no free space; each write is flushed to the disk (fdatasync) before
the worker moves on. Entries are JSON: (delivery id, state, attempts, next_ms, answer, done_ms).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("probe.store")

SLOT, SLOTS = 2048, 512
ANSWER_CHARS = 200  # the channel's words, cut: a slot is fixed size


class AnswerJournal:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".answers")
        self.entries: dict[int, tuple] = {}  # delivery id -> outbox_record's arguments
        self._fd: int | None = None
        self._used = 0  # slots written since the last clear

    def open(self) -> list[tuple]:
        """Open (allocating the whole file) and return what a previous process left, oldest first."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.posix_fallocate(self._fd, 0, SLOT * SLOTS)
        except OSError as exc:  # no space now: the journal helps once there is, like the database
            log.warning("cannot allocate the answer journal path=%s error=%s", self.path, exc)
        left = [entry for entry in map(self._read, range(SLOTS)) if entry is not None]
        self.entries = {entry[0]: entry for entry in left}
        self._used = len(left)
        return left

    def _read(self, slot: int) -> tuple | None:
        raw = os.pread(self._fd, SLOT, slot * SLOT).rstrip(b"\0")
        try:
            return tuple(json.loads(raw)) if raw else None
        except ValueError:  # a slot torn by a crash mid-write: its answer is lost, as without a journal
            return None

    def add(self, entry: tuple) -> bool:
        """Keep `entry` durably; False if there is no room (the caller keeps retrying the database)."""
        entry = (*entry[:4], entry[4][:ANSWER_CHARS], entry[5])
        data = json.dumps(entry).encode()
        if self._fd is None or self._used >= SLOTS or len(data) > SLOT:
            return False
        try:
            os.pwrite(self._fd, data.ljust(SLOT, b"\0"), self._used * SLOT)
            os.fdatasync(self._fd)
        except OSError as exc:
            log.warning("cannot write the answer journal path=%s error=%s", self.path, exc)
            return False
        self._used += 1
        self.entries[entry[0]] = entry
        return True

    def clear(self) -> None:
        """The database has every entry: blank the slots in place (the file keeps its blocks)."""
        if self._fd is not None and self._used:
            os.pwrite(self._fd, b"\0" * (SLOT * self._used), 0)
            os.fdatasync(self._fd)
        self.entries, self._used = {}, 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
