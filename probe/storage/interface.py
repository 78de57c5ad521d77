"""What probe asks of its database: the one interface every storage engine implements.

Everything above probe/storage/ talks to a `Storage` through these named methods; no SQL
leaves this package. The engine (SQLite today: probe/storage/sqlite/) keeps the semantics
written here, which is what a second engine must keep too:

- Writes of results and incident events go through one writer (`submit_result`,
  `submit_events`) that commits them in batches, a batch in one transaction, and calls the
  `subscribe`d callbacks only after its batch committed. Ids of incidents, events and
  updates are handed out by `allocate_id` before they commit, so events can be built first.
- Every other write is one transaction per call, in between batches.
- Times are integer milliseconds since the epoch, UTC, everywhere.
- Monitors are known by their config id (`"web"`); `monitor_ids` maps those to the
  engine's integer keys, which the rollup cache and the readers of rollup sums use.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from probe.core.calendar import Calendar
from probe.core.models import (
    Incident,
    IncidentEvent,
    IncidentUpdate,
    MaintenanceWindow,
    ResultRecord,
    Subscriber,
)
from probe.storage.rollcache import Entry, RollupCache
from probe.storage.rollups import LastResult
from probe.storage.writable import WriteState


class StoreError(Exception):
    """The database cannot be opened or used: one line for the operator, no traceback."""


class Fenced(Exception):
    """[cluster]: a batch holding what this instance decided as leader met another leader's term."""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message for one notifier (or subscriber target), queued in the outbox."""

    notifier: str
    key: str  # unique per notifier: queuing the same key twice queues it once
    payload: str  # the message as JSON, as it was when queued


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row: pending until sent or given up (failed)."""

    id: int
    notifier: str
    key: str
    payload: str
    state: str  # pending | sent | failed
    attempts: int
    next_ms: int
    created_ms: int
    done_ms: int | None
    answer: str  # what the channel said last


@dataclass(frozen=True, slots=True)
class CertNotice:
    """A certificate expiry notice that was queued: (monitor, notAfter, threshold) once each."""

    monitor: str
    expires_ts: int  # notAfter, seconds UTC
    threshold: int  # days


class Storage(Protocol):
    calendar: Calendar  # daily rollups follow the page's time zone
    sums: RollupCache  # the page's rollup sums, kept exact by the writer
    incidents_version: int  # grows at every commit that changed incidents
    monitor_ids: dict[str, int]
    monitor_keys: dict[int, str]
    last_committed: dict[int, LastResult]  # each monitor's newest committed result
    # the writer's health, for /healthz and /metrics
    healthy: bool
    last_error: str | None
    last_commit_ms: int | None
    write_state: WriteState
    max_pending: int
    dropped_results: int
    read_only: bool  # opened to read beside the process that writes: writes nothing
    lost_results: int

    @property
    def pending_results(self) -> int: ...
    def describe(self) -> str:
        """Where the data is, for logs and the admin API (a path; never a password)."""

    # ---- life cycle
    async def open(self) -> None:
        """Open for writing, as the only process that writes there: StoreError at once if another
        holds the database (SQLite: a file lock beside it; PostgreSQL: an advisory lock). Opened with
        `read_only=True` (`open_storage`), it only reads, beside a running `probe run`, takes no
        lock and writes nothing at all."""
    async def close(self, flush_timeout: float | None = None) -> None:
        """Commit what is pending, waiting at most `flush_timeout` s (None: as long as it takes),
        then close whatever state the writer is in; `lost_results` counts what was not saved."""
    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
    async def sync_monitors(self, monitors: Iterable[Any]) -> None:
        """A row per configured monitor (id, display_name, type, group, interval); load its newest result."""
    async def prune(self, raw_retention_s: float, rollup_retention_s: float, now: int | None = None) -> int: ...

    # ---- the writer
    def allocate_id(self, table: str) -> int: ...
    def submit_result(self, record: ResultRecord, interval_s: float) -> None: ...
    def submit_events(self, events: list[IncidentEvent]) -> None: ...
    def subscribe(self, callback: Callable[[list[IncidentEvent]], None]) -> None: ...

    # ---- results and rollups
    async def results(self, monitor_id: str, since_ms: int = 0, until_ms: int | None = None, limit: int = 1000,
                      newest_first: bool = False) -> list[ResultRecord]: ...
    async def recent_results(self, monitor_id: str, limit: int) -> list[ResultRecord]: ...
    async def cached_ranges(self, segments: list[tuple[int, int, int]]) -> list[Entry]: ...
    async def cached_buckets(self, res: int, starts: list[int]) -> list[Entry]: ...
    async def rollup_sums(self, monitor_ids: list[int], res: int, start_ms: int, end_ms: int) -> dict[int, tuple]: ...
    async def rollup_sums_many(self, monitor_ids: list[int], segments: list[tuple[int, int, int]]
                               ) -> list[tuple[int, int, tuple]]: ...
    async def rollup_series(self, monitor_ids: list[str], res: int, start_ms: int, end_ms: int,
                            histograms: bool = True) -> dict[str, list[tuple]]: ...
    async def rollup_rows(self, monitor_id: str, res: int, start_ms: int, end_ms: int) -> list[dict]: ...

    # ---- incidents and their events
    async def incident(self, incident_id: int) -> Incident | None: ...
    async def incidents(self, monitor_id: str | None = None, limit: int = 50,
                        before_ms: int | None = None) -> list[Incident]: ...
    async def incidents_between(self, start_ms: int, end_ms: int, limit: int = 1000) -> list[Incident]: ...
    async def open_incidents(self) -> list[Incident]: ...
    async def last_resolved_incidents(self) -> dict[str, Incident]: ...
    async def incident_updates(self, incident_ids: list[int]) -> dict[int, list[IncidentUpdate]]: ...
    async def incident_update_at(self, incident_id: int, at_ms: int, kind: str) -> IncidentUpdate | None: ...
    async def events_after(self, event_id: int, limit: int = 500) -> list[tuple]: ...
    async def events_last_id(self) -> int: ...

    # ---- small state
    async def meta_get(self, key: str) -> str | None: ...
    async def meta_set(self, key: str, value: str) -> None: ...
    async def meta_set_default(self, key: str, value: str) -> str:
        """Set `key` unless it is set; return what it holds (two processes agree on one value)."""

    # ---- the notification outbox (probe/notify/outbox.py is its one user)
    async def outbox_add(self, deliveries: Iterable[NewDelivery], meta: dict[str, str] | None = None) -> int:
        """Queue deliveries (a key already queued for its notifier is skipped) and set `meta`, in one
        transaction; returns how many were new."""
    async def outbox_pending(self, notifier: str, limit: int) -> list[Delivery]:
        """The notifier's oldest pending deliveries, oldest first."""
    async def outbox_claim(self, delivery_id: int, attempts: int) -> bool:
        """Count an attempt, only if the row is pending with `attempts` attempts: False if it moved on."""
    async def outbox_record(self, delivery_id: int, state: str, attempts: int, next_ms: int, answer: str,
                            done_ms: int | None) -> None: ...
    async def outbox_list(self, notifier: str | None = None, limit: int = 100, state: str | None = None
                          ) -> list[Delivery]: ...
    async def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many rows each notifier has in each state."""

    # ---- page subscribers
    async def subscriber(self, subscriber_id: int) -> Subscriber | None: ...
    async def subscriber_by_email(self, email: str) -> Subscriber | None: ...
    async def subscribers(self, confirmed_only: bool = False) -> list[Subscriber]: ...
    async def subscriber_request(self, email: str, groups: tuple[str, ...], now: int) -> Subscriber:
        """A new pending subscriber, or the existing one with these groups and a new request time."""
    async def subscriber_confirm(self, subscriber_id: int, now: int) -> None: ...
    async def subscriber_remove(self, subscriber_id: int, outbox_notifier: str, outbox_key_prefix: str) -> None:
        """Forget the subscriber and drop its pending deliveries, in one transaction."""
    async def subscribers_forget_unconfirmed(self, requested_before_ms: int) -> None: ...

    # ---- maintenance scheduled through the admin API
    async def maintenance_windows(self) -> list[MaintenanceWindow]: ...
    async def maintenance_add(self, window: MaintenanceWindow, author: str, now: int) -> None: ...
    async def maintenance_cancel(self, window_id: str, now: int, end_ms: int) -> None: ...

    # ---- the config's maintenance windows, as probe has known them
    async def maintenance_definitions(self) -> dict[str, tuple[str, int]]:
        """[[maintenance]] id -> (its definition as JSON, since when it has had that schedule, ms)."""
    async def maintenance_definitions_set(self, definitions: dict[str, tuple[str, int]], removed: Iterable[str],
                                          past: Iterable[MaintenanceWindow]) -> None:
        """Set these definitions, forget the `removed` ids and keep `past` occurrences, in one transaction."""
    async def maintenance_past(self) -> list[MaintenanceWindow]:
        """Occurrences of definitions that changed or left the config, by start."""

    # ---- certificate expiry notices
    async def cert_notice_lowest(self, monitor: str, expires_ts: int) -> int | None:
        """The lowest threshold already announced for this certificate, or None."""
    async def cert_notice_add(self, notice: CertNotice, deliveries: Iterable[NewDelivery], now: int) -> None:
        """Record the notice (at `now`, ms), forget certificates expired before `now`, and queue the
        deliveries (due at once): one transaction."""
