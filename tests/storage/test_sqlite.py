import pytest

"""The store against a real SQLite file: what is written, what survives, what is read back."""
import asyncio
import sqlite3

from probe.core.calendar import Calendar
from probe.core.models import EventKind, ResultRecord, Status
from probe.engine.incidents import IncidentEngine
from probe.storage.sqlite import MIGRATIONS, SqliteStore
from tests.storage.breakage import fill_the_disk, free_space
from tests.view.test_stats import D0, MIN, _Monitor, feed


@pytest.fixture
def engine() -> str:
    return "sqlite"  # these tests are about the SQLite file itself


class Settings:
    failure_threshold, success_threshold, reopen_window = 2, 1, 300.0


def record(ts, status, reason="r", monitor="web"):
    return ResultRecord(monitor, ts, ts - 5, status, reason, 12.5, {"status_code": 503})


async def test_it_creates_the_schema_in_wal_mode_with_a_version(store):
    rows = await store.fetchall("PRAGMA journal_mode")
    assert rows[0][0] == "wal"
    assert (await store.fetchall("PRAGMA user_version"))[0][0] == len(MIGRATIONS)


async def test_it_keeps_each_reason_text_once(store):
    await feed(store, D0, D0 + 99 * MIN, lambda ts: Status.UP)
    assert await store.fetchall("SELECT count(*) FROM results") == [(100,)]
    assert await store.fetchall("SELECT text FROM reasons") == [("reason",)]


async def test_it_reads_back_results_with_lateness_reason_and_details(store):
    await store.sync_monitors([_Monitor("web", 60)])
    store.submit_result(record(D0, Status.DOWN, "HTTP 503 (expected 2xx)"), 60)
    store.submit_result(record(D0 + MIN, Status.UP, "HTTP 200"), 60)
    await store.flush()
    down, up = await store.results("web")
    assert (down.status, down.reason, down.late_ms, down.latency_ms) == (Status.DOWN, "HTTP 503 (expected 2xx)", 5, 12.5)
    assert down.details == {"status_code": 503}
    assert up.details == {}  # details are kept only for results that are not up
    assert [r.ts_ms for r in await store.recent_results("web", 1)] == [D0 + MIN]


async def test_incident_transitions_are_written_and_published_after_commit(store):
    await store.sync_monitors([_Monitor("web", 60)])
    engine = IncidentEngine(store)
    published = []

    def on_events(events):
        # By the time subscribers hear of an event, it is in the file.
        published.extend(events)

    store.subscribe(on_events)
    for i, status in enumerate([Status.DOWN, Status.DOWN, Status.UP]):
        r = record(D0 + i * MIN, status)
        events = engine.observe(Settings, r)
        store.submit_result(r, 60)
        store.submit_events(events)
    await store.flush()
    assert [e.kind for e in published] == [EventKind.OPENED, EventKind.RESOLVED]
    rows = await store.fetchall("SELECT id, kind, incident FROM events ORDER BY id")
    assert [(k, i) for _, k, i in rows] == [("open", 1), ("resolve", 1)]
    (incident,) = await store.incidents()
    assert (incident.started_ms, incident.resolved_ms, incident.status) == (D0, D0 + 2 * MIN, "resolved")
    updates = await store.fetchall("SELECT status, kind FROM incident_updates ORDER BY id")
    assert updates == [("investigating", "open"), ("resolved", "resolve")]


async def test_the_file_refuses_a_second_open_incident_for_one_monitor(store):
    await store.sync_monitors([_Monitor("web", 60)])
    conn = sqlite3.connect(store.path)
    insert = ("INSERT INTO incidents (id, monitor, impact, status, started_ms, updated_ms)"
              " VALUES (?, 1, 'major', 'investigating', 0, 0)")
    conn.execute(insert, (100,))
    try:
        conn.execute(insert, (101,))
        raise AssertionError("a duplicate open incident was accepted")
    except sqlite3.IntegrityError:
        pass
    finally:
        conn.close()


async def test_the_engine_restores_open_incidents_and_streaks_without_repeating_them(tmp_path):
    path = tmp_path / "probe.db"
    store = SqliteStore(path, Calendar("UTC"), flush_interval=0.01)
    await store.open()
    await store.sync_monitors([_Monitor("web", 60)])
    engine = IncidentEngine(store)
    for i in range(3):
        r = record(D0 + i * MIN, Status.DOWN)
        store.submit_events(engine.observe(Settings, r))
        store.submit_result(r, 60)
    await store.close()

    store = SqliteStore(path, Calendar("UTC"), flush_interval=0.01)
    await store.open()
    try:
        monitor = _Monitor("web", 60)
        monitor.failure_threshold, monitor.success_threshold = 2, 1
        engine = IncidentEngine(store)
        await engine.restore([monitor])
        tracker = engine.trackers["web"]
        assert tracker.open is not None and tracker.open.started_ms == D0
        assert tracker.bad_count == 3
        # Still down after the restart: no second incident.
        assert engine.observe(Settings, record(D0 + 3 * MIN, Status.DOWN)) == []
        (event,) = engine.observe(Settings, record(D0 + 4 * MIN, Status.UP))
        assert event.kind is EventKind.RESOLVED and event.incident.id == tracker.last_resolved.id
    finally:
        await store.close()


async def test_ids_continue_after_a_restart(tmp_path):
    path = tmp_path / "probe.db"
    store = SqliteStore(path, flush_interval=0.01)
    await store.open()
    first = store.allocate_id("events")
    await store.sync_monitors([_Monitor("web", 60)])
    engine = IncidentEngine(store)
    for i in range(2):
        store.submit_events(engine.observe(Settings, record(D0 + i * MIN, Status.DOWN)))
    await store.close()
    store = SqliteStore(path, flush_interval=0.01)
    await store.open()
    try:
        assert store.allocate_id("incidents") == 2
        assert store.allocate_id("events") > first
    finally:
        await store.close()


async def test_pruning_drops_old_raw_results_and_keeps_rollups(store):
    await feed(store, D0, D0 + 3 * 24 * 60 * MIN, lambda ts: Status.UP, interval_ms=10 * MIN)
    deleted = await store.prune(raw_retention_s=2 * 86400, rollup_retention_s=400 * 86400,
                                now=D0 + 3 * 24 * 60 * MIN)
    assert deleted == 6 * 24
    (oldest,) = await store.fetchall("SELECT min(ts) FROM results")
    assert oldest[0] == D0 + 24 * 60 * MIN
    assert (await store.fetchall("SELECT min(start) FROM rollups WHERE res = 1"))[0][0] == D0


async def test_a_full_disk_keeps_the_batch_and_writes_it_when_space_returns(store):
    await store.sync_monitors([_Monitor("web", 60)])
    await fill_the_disk(store)
    batch = [D0 + i * MIN for i in range(500)]  # more than the free room of the pages the file has
    for ts in batch:
        store.submit_result(record(ts, Status.UP), 60)
    for _ in range(500):  # the writer tries the batch, and says so
        if not store.healthy:
            break
        await asyncio.sleep(0.01)
    assert not store.healthy and "database or disk is full" in store.last_error
    assert store.pending_results == len(batch) and await store.results("web") == []
    await free_space(store)
    await store.flush()
    assert store.healthy and store.last_error is None
    assert [r.ts_ms for r in await store.results("web")] == batch


async def test_prune_drops_finished_notifications_past_retention_but_never_pending_ones(store):
    day = 86_400_000
    now = 1_800_000_000_000
    rows = [("a", "event:1", "sent", now - 10 * day), ("a", "event:2", "failed", now - 10 * day),
            ("a", "event:3", "pending", None), ("a", "event:4", "sent", now - day)]
    await store.write([("INSERT INTO deliveries (notifier, key, payload, state, next_ms, created_ms, done_ms)"
                        " VALUES (?,?,'{}',?,0,0,?)", row) for row in rows])
    await store.prune(raw_retention_s=2 * 86400, rollup_retention_s=400 * 86400, now=now)
    left = await store.fetchall("SELECT key FROM deliveries ORDER BY key")
    assert [k for (k,) in left] == ["event:3", "event:4"]


async def test_after_a_quiet_spell_a_result_is_written_within_the_batch_interval_without_a_flush(tmp_path):
    # An idle writer sleeps with no timer; the first result must start the batch's clock.
    import time
    store = SqliteStore(tmp_path / "probe.db", Calendar("UTC"), flush_interval=0.2)
    await store.open()
    try:
        await store.sync_monitors([_Monitor("web", 60)])
        await asyncio.sleep(0.5)  # longer than the interval: the writer has gone to sleep
        for round_ in range(2):
            ts = D0 + round_ * MIN
            submitted = time.monotonic()
            store.submit_result(record(ts, Status.UP), 60)
            # Until it is in the file (pending_results drops when the batch is taken, before it commits).
            while [r.ts_ms for r in await store.recent_results("web", 1)] != [ts]:
                assert time.monotonic() - submitted < 2.0, "the writer did not wake for a new result"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
    finally:
        await store.close()


async def test_a_store_opened_to_read_reads_beside_the_writer_and_changes_nothing(tmp_path):
    import hashlib

    from probe.storage import StoreError
    path = tmp_path / "probe.db"
    writer = SqliteStore(path, Calendar("UTC"), flush_interval=0.01)
    await writer.open()
    await writer.sync_monitors([_Monitor("web", 60)])
    writer.submit_result(ResultRecord("web", 1_000, 1_000, Status.DOWN, "refused", details={"x": 1}), 60)
    await writer.flush()
    def contents():  # the database and its log (the -shm index is shared memory, not data)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()
                if p.name in ("probe.db", "probe.db-wal")}
    before = contents()
    # Another time zone would make a writer rebuild the daily rollups: a reader must not.
    reader = SqliteStore(path, Calendar("Asia/Shanghai"), read_only=True)
    await reader.open()
    try:
        (record,) = await reader.recent_results("web", 1)
        assert (record.status, record.reason, record.details) == (Status.DOWN, "refused", {"x": 1})
        assert await reader.meta_get("daily_tz") == "UTC"
    finally:
        await reader.close()
    assert contents() == before
    await writer.close()
    missing = SqliteStore(tmp_path / "none.db", read_only=True)
    try:
        await missing.open()
        raise AssertionError("opened a database that does not exist")
    except StoreError as exc:
        assert "no such database" in str(exc)
    assert not (tmp_path / "none.db").exists()
async def test_a_new_database_is_one_log_line_and_an_up_to_date_one_none(tmp_path, caplog):
    import logging
    caplog.set_level(logging.INFO, logger="probe.store")
    for _ in range(2):  # created, then opened again as it is
        store = SqliteStore(tmp_path / "new.db", Calendar("UTC"))
        await store.open()
        await store.close()
    lines = [r.getMessage() for r in caplog.records if "database" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("creating database") and f"to_version={len(MIGRATIONS)}" in lines[0]
