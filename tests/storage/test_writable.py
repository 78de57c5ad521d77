"""A database that stops taking writes (disk full, read-only) and comes back: the real file,
the real writer, the real web app. The disk is filled with SQLite's own `max_page_count`
on the writer connection (portable: CI need not allow mounts); read-only is `query_only`,
which fails writes with the same SQLITE_READONLY a read-only mount gives (a mount with files
open for writing cannot be remounted read-only on purpose). Where the machine allows it, a
real 8 MB tmpfs is filled to ENOSPC as well."""
import asyncio
import logging
import re
import sqlite3
import subprocess
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.core.models import Status
from probe.service import Probe
from probe.storage.sqlite import SqliteStore
from probe.storage.writable import problem_of
from probe.web.app import create_app
from tests.cli.test_main import free_port, probe_cli
from tests.storage.breakage import fill_the_disk, free_space, read_only, writable
from tests.storage.test_sqlite import D0, _Monitor, record
from tests.test_crash import start_probe
from tests.test_service import Target


@pytest.fixture
def engine() -> str:
    return "sqlite"  # these tests are about the SQLite file itself


async def eventually(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def busy_config(write_config, url, db: str = "probe.db", monitors: int = 8):
    """Several monitors checked often, so the writer soon needs a new page of the file."""
    entries = "".join(f"""
        [[monitors]]
        id = "web-{i}"
        name = "Website {i}"
        type = "http"
        url = "{url}"
        """ for i in range(monitors))
    return load_config(write_config(f"""
        [storage]
        path = "{db}"
        [defaults]
        interval = "200ms"
        timeout = "150ms"
        failure_threshold = 2
        """ + entries))


def rows_in_file(path, since_ms: int) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM results WHERE ts >= ?", (since_ms,)).fetchone()[0]
    finally:
        conn.close()


def test_problems_are_named_in_words_an_operator_understands():
    assert problem_of(_sqlite_error("database or disk is full", 13)) == "database full"
    assert problem_of(_sqlite_error("attempt to write a readonly database", 8)) == "read-only"
    assert problem_of(_sqlite_error("attempt to write a readonly database", 1032)) == "read-only"  # extended
    assert problem_of(OSError(28, "No space left on device")) == "database full"
    assert problem_of(sqlite3.OperationalError("something else")) == "database write failed"


def _sqlite_error(text: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code
    return exc


async def _story(tmp_path, write_config, caplog, break_it, mend_it, problem, db="probe.db"):
    """Target down -> incident in the file -> database breaks -> page and /healthz -> mended -> writes resume."""
    caplog.set_level(logging.INFO, logger="probe.store")
    async with Target() as target:
        probe = Probe(busy_config(write_config, target.url, db), flush_interval=0.05)
        async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
            target.healthy = False
            await eventually(lambda: _incident_in_file(probe), what="an incident in the file")
            await break_it(probe.store)
            broken = await eventually(lambda: _health_when(client, 503), what="/healthz 503")
            page = await client.get("/")
            html = await page.text()
            api = await (await client.get("/api/v1/status")).json()
            metrics = await (await client.get("/metrics")).text()
            await eventually(lambda: _failed_at_least(probe.store, 2), what="a second failed batch")
            kept = probe.store.pending_results
            failures, mended_ms = probe.store.write_state.failures, int(time.time() * 1000)
            in_file_before = rows_in_file(probe.store.path, 0)
            await mend_it(probe.store)
            healthy = await eventually(lambda: _health_when(client, 200), what="/healthz 200 again")
            # A few more checks after resumption, in the real file.
            await eventually(lambda: _rows_since(probe.store.path, mended_ms, 2), what="results after resumption")
            await probe.store.flush()
            pending = probe.store.pending_results
    assert page.status == 200 and "Website 3 is down" in html  # the last known state
    assert {m["status"] for m in api["monitors"]} == {"down"}
    assert broken["status"] == "failing"
    assert "probe_database_writable 0.0" in metrics and "probe_database_dropped_results_total 0.0" in metrics
    assert re.search(r"^probe_database_pending_results [1-9]", metrics, re.M)
    assert broken["problems"] == [problem]  # the public words; the admin API has the path and the error
    assert broken["database"]["problem"] == problem and broken["database"]["writable"] is False
    assert broken["database"]["since_ms"] is not None and broken["database"]["dropped_results"] == 0
    assert healthy["database"] == {**healthy["database"], "problem": None, "writable": True}
    assert healthy["problems"] == [] and pending == 0
    assert failures >= 2 and kept >= 20  # several batches failed, results waited in memory...
    assert rows_in_file(probe.store.path, 0) >= in_file_before + kept  # ...and then reached the file
    assert rows_in_file(probe.store.path, mended_ms) >= 2  # written after resumption, in the real file
    messages = [r.getMessage() for r in caplog.records if r.name == "probe.store"]
    # ...yet one line when writes stop and one when they resume.
    assert len([m for m in messages if m.startswith("database not writable")]) == 1, messages
    assert len([m for m in messages if m.startswith("database writable again")]) == 1, messages
    assert f"problem={problem!r}" in next(m for m in messages if m.startswith("database not writable"))


async def _rows_since(path, since_ms: int, count: int) -> bool:
    return rows_in_file(path, since_ms) >= count


async def _incident_in_file(probe):
    return (await probe.store.fetchall("SELECT count(*) FROM incidents"))[0][0] == len(probe.monitors)


async def _health_when(client, status):
    response = await client.get("/healthz")
    return await response.json() if response.status == status else None


async def _failed_at_least(store, n):
    return store.write_state.failures >= n


async def test_a_full_disk_keeps_the_page_serving_says_so_in_healthz_and_writing_resumes_by_itself(
        tmp_path, write_config, caplog):
    await _story(tmp_path, write_config, caplog, fill_the_disk, free_space, "database full")


async def test_a_read_only_database_keeps_the_page_serving_says_so_in_healthz_and_writing_resumes_by_itself(
        tmp_path, write_config, caplog):
    await _story(tmp_path, write_config, caplog, read_only, writable, "read-only")


async def test_results_beyond_the_memory_bound_are_dropped_and_counted_and_the_rest_written(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="probe.store")
    store = SqliteStore(tmp_path / "probe.db", flush_interval=0.01, max_pending=5)
    await store.open()
    try:
        await store.sync_monitors([_Monitor("web", 60)])
        await read_only(store)
        store.submit_result(record(D0, Status.UP), 60)
        await eventually(lambda: _not_writable(store), what="the first failed batch")
        for i in range(1, 11):
            store.submit_result(record(D0 + i * 60_000, Status.UP), 60)
        dropped, pending = store.dropped_results, store.pending_results
        await writable(store)
        await store.flush()
        stored = await store.results("web")
    finally:
        await store.close()
    assert (dropped, pending) == (5, 6)  # the batch being retried, plus the bound of 5
    assert [r.ts_ms for r in stored] == [D0 + i * 60_000 for i in range(6)]
    assert len([r for r in caplog.records if "dropping newer ones" in r.getMessage()]) == 1


async def _not_writable(store):
    return not store.healthy


def fill_up(filler) -> None:
    with open(filler, "wb") as fh, pytest.raises(OSError, match="No space left"):
        while True:
            fh.write(b"x" * 65536)
            fh.flush()


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MB file system (tmpfs), where the machine lets the test mount one (root, not CI)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_really_full_disk_is_named_and_writing_resumes_when_a_file_is_deleted(
        tmp_path, write_config, caplog, small_disk):
    filler = small_disk / "filler"

    async def fill(store):
        fill_up(filler)

    async def delete(store):
        filler.unlink()

    await _story(tmp_path, write_config, caplog, fill, delete, "database full", db=str(small_disk / "probe.db"))


async def test_probe_run_started_on_a_full_disk_says_so_in_one_line(write_config, small_disk):
    port, db = free_port(), small_disk / "probe.db"
    head = f'[server]\nlisten = "127.0.0.1:{port}"\n[storage]\npath = "{db}"\n'
    monitor = '[[monitors]]\nid = "{}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1\ninterval = "100ms"\ntimeout = "50ms"\n'
    config = write_config(head + monitor.format("a"))
    proc = await start_probe(config, port)
    await asyncio.sleep(0.5)
    proc.kill()  # as a crash does, it leaves its write-ahead log behind, so the next start opens the file
    await proc.wait()
    fill_up(small_disk / "filler")
    write_config(head + monitor.format("a") + monitor.format("b"))  # a new monitor: its row must be written
    code, out, err = await asyncio.wait_for(probe_cli("run", "-c", str(config)), 30)
    assert code == 1
    assert err.strip().splitlines() == [
        f"probe: cannot write the database {db}: database full (database or disk is full)"]
