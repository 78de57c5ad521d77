"""PostgreSQL as an operator meets it: a URL in the config, a server that is down or refuses,
two instances starting together, `probe storage copy` both ways, and the server going away
for a while under a running `probe run`. A real server (tests/peers/postgres.py), real processes."""
from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import time

import aiohttp
import pytest

from probe.config.storage import parse_storage_url
from probe.core.calendar import Calendar
from probe.storage import StoreError, open_storage
from probe.storage.postgres import MIGRATIONS
from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import spawn, wait_healthy
from tests.test_service import Target

SECRET = "s3cret-Pa55word"


def storage_config(write_config, url: str, extra: str = "") -> str:
    return str(write_config(f"""
        [storage]
        url = "{url}"
        connect_retry = "2s"
        {extra}
        [[monitors]]
        id = "web"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
    """))


@pytest.mark.parametrize("url, problem", [
    ("mysql://db/probe", 'has an unknown scheme "mysql://" (sqlite:// or postgresql://)'),
    ("postgresql://probe@db:99999/probe", 'has a bad host:port "db:99999"'),
    ("postgresql://probe@/probe", "names no host (postgresql://user@host:5432/dbname)"),
    ("postgresql://probe@db/probe?sslmod=require", 'has an unknown option "sslmod"'),
    ("postgresql://probe@db/probe?target_session_attrs=writable", "target_session_attrs must be one of"),
    ("sqlite://probe.db", 'must be "sqlite:///relative/path.db" or "sqlite:////absolute/path.db"'),
])
async def test_validate_names_a_bad_storage_url_in_one_line(write_config, url, problem):
    code, out, err = await probe_cli("validate", "-c", storage_config(write_config, url))
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("cfg.toml: storage: url ") and problem in line


async def test_validate_never_shows_the_password_of_a_bad_url(write_config):
    url = f"postgresql://probe:{SECRET}@db:0/probe"
    code, out, err = await probe_cli("validate", "-c", storage_config(write_config, url))
    assert code == 2 and 'bad host:port "db:0"' in err and SECRET not in err + out


async def test_a_path_and_a_url_together_are_one_config_error(write_config):
    path = storage_config(write_config, "sqlite:///a.db", extra='path = "b.db"')
    code, _, err = await probe_cli("validate", "-c", path)
    assert code == 2 and err.strip() == "cfg.toml: storage: url and path name two places for the data: set one of them"


async def test_an_unreachable_server_is_one_line_after_the_retries_and_exit_1(write_config, tmp_path):
    port = free_port()  # nobody listens there
    started = time.monotonic()
    code, out, err = await probe_cli("run", "-c", storage_config(write_config, f"postgresql://probe@127.0.0.1:{port}/x"))
    waited = time.monotonic() - started
    assert code == 1 and "Traceback" not in err
    assert f"probe: cannot open the database postgresql://probe@127.0.0.1:{port}/x: connection refused" in err
    assert "retrying for up to 2s" in err  # the reason was logged while it tried
    assert waited >= 2  # connect_retry: it did try for the time it was given


async def test_a_wrong_password_and_a_missing_database_fail_at_once_in_one_line(write_config, postgres):
    subprocess.run(["runuser", "-u", "postgres", "--", str(postgres.bin / "psql"), "-h", "127.0.0.1", "-p",
                    str(postgres.port), "-U", "postgres", "-q", "-c",
                    f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pw') THEN "
                    f"CREATE ROLE pw LOGIN PASSWORD '{SECRET}'; END IF; END $$"], check=True, capture_output=True)
    wrong = f"postgresql://pw:not-{SECRET}@127.0.0.1:{postgres.port}/postgres"
    code, _, err = await probe_cli("run", "-c", storage_config(write_config, wrong))
    assert code == 1 and "Traceback" not in err and SECRET not in err
    assert f"postgresql://pw@127.0.0.1:{postgres.port}/postgres: wrong password" in err
    missing = f"postgresql://postgres@127.0.0.1:{postgres.port}/nosuchdb"
    code, _, err = await probe_cli("run", "-c", storage_config(write_config, missing))
    assert code == 1 and "Traceback" not in err and ": no such database (" in err


async def test_two_instances_opening_one_new_database_migrate_it_once_and_only_one_writes(postgres, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="probe.store")
    target = parse_storage_url(postgres.create_database(), tmp_path)
    first, second = (open_storage(target, Calendar("UTC")) for _ in range(2))
    opened = await asyncio.gather(first.open(), second.open(), return_exceptions=True)
    try:
        refused = [o for o in opened if isinstance(o, StoreError)]
        assert len(refused) == 1 and "another probe is writing to this database" in str(refused[0])
        created = [r for r in caplog.records if r.getMessage().startswith("creating database")]
        assert len(created) == 1 and f"to_version={len(MIGRATIONS)}" in created[0].getMessage()
    finally:
        await first.close()
        await second.close()


async def test_storage_check_reads_a_database_without_changing_it(write_config, postgres):
    url = postgres.create_database()
    code, out, err = await probe_cli("storage", "check", "-c", storage_config(write_config, url))
    assert code == 0, err
    assert re.search(r"^engine\s+PostgreSQL \d+", out, re.M)
    assert re.search(rf"^schema\s+version 0 of {len(MIGRATIONS)}, {len(MIGRATIONS)} migration\(s\) pending", out, re.M)


async def test_with_the_server_stopped_for_20_s_checks_go_on_and_nothing_is_lost(write_config, postgres):
    """50 monitors every second; the server goes away for 20 s. Checks go on, results wait in
    memory (counted in /healthz), and once it is back every second of every monitor is in the
    database, and the monitor that was down throughout has exactly one incident."""
    web_port = free_port()
    url = postgres.create_database()
    async with Target() as target:
        monitors = "".join(f'[[monitors]]\nid = "m{i}"\ntype = "http"\nurl = "{target.url}"\n' for i in range(49))
        config = write_config(f"""
            [server]
            listen = "127.0.0.1:{web_port}"
            [storage]
            url = "{url}"
            [defaults]
            interval = "1s"
            timeout = "900ms"
            failure_threshold = 2
            {monitors}
            [[monitors]]
            id = "dead"
            type = "tcp"
            host = "127.0.0.1"
            port = {free_port()}
        """)
        log_path = config.parent / "probe.log"
        proc = await spawn(config, log_path)
        try:
            await wait_healthy(proc, web_port, log_path)
            await asyncio.sleep(3)
            outage_from = time.time() * 1000
            await asyncio.to_thread(postgres.pg_ctl, "stop")
            health = await _healthz_during(web_port, 20.0)
            await asyncio.to_thread(postgres.pg_ctl, "start")
            outage_to = time.time() * 1000
            mended = await _healthz_until(web_port, lambda h: h["database_writable"], 30.0)
            await asyncio.sleep(2)
        finally:
            proc.terminate()
            await proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-2000:]
    worst = max(health, key=lambda h: h["database"]["pending_results"])
    assert worst["status"] == "failing" and not worst["database_writable"]
    assert worst["database"]["pending_results"] >= 50 * 15  # held in memory, and counted
    assert mended["database"]["dropped_results"] == 0
    gaps, incidents = await _after(url, outage_from, outage_to)
    assert gaps == {}, f"seconds missing around the outage: {gaps}"
    assert incidents == [("dead", 1)]  # one incident for the monitor down throughout, none twice


async def _healthz_during(port: int, seconds: float) -> list[dict]:
    seen, deadline = [], time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                seen.append(await response.json())
            await asyncio.sleep(0.5)
    return seen


async def _healthz_until(port: int, condition, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                body = await response.json()
            if condition(body) or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.2)


async def _after(url: str, outage_from: float, outage_to: float) -> tuple[dict, list]:
    """Per monitor, the gaps over 2.5 s between its results from 2 s before to 2 s after the
    outage; and how many incidents each monitor has."""
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT m.key, r.ts FROM results r JOIN monitors m ON m.id = r.monitor"
                                " WHERE r.ts BETWEEN $1 AND $2 ORDER BY m.key, r.ts",
                                int(outage_from) - 2000, int(outage_to) + 2000)
        incidents = await conn.fetch("SELECT m.key, count(*) FROM incidents i JOIN monitors m ON m.id = i.monitor"
                                     " GROUP BY m.key ORDER BY m.key")
    finally:
        await conn.close()
    by_monitor: dict[str, list[int]] = {}
    for key, ts in rows:
        by_monitor.setdefault(key, []).append(ts)
    gaps = {key: [(a, b) for a, b in zip(ts, ts[1:]) if b - a > 2500] for key, ts in by_monitor.items()}
    assert len(by_monitor) == 50
    return {k: v for k, v in gaps.items() if v}, [tuple(r) for r in incidents]


async def test_buckets_read_as_rows_give_the_shared_querys_sums(postgres, tmp_path):
    """PostgreSQL reads single-bucket segments as one range per resolution (fast cold page);
    every value must be what the shared query's per-bucket sums give: sparse, repeated, mixed with ranges."""
    from types import SimpleNamespace

    from probe.core.calendar import HOUR_MS
    from probe.core.models import ResultRecord, Status
    from probe.storage.reads import Reads
    from probe.storage.rollcache import DAILY, HOURLY
    store = open_storage(parse_storage_url(postgres.create_database(), tmp_path), Calendar("UTC"), flush_interval=0.01)
    await store.open()
    try:
        await store.sync_monitors([SimpleNamespace(id=k, display_name=k, type="tcp", group="", interval=600.0)
                                   for k in ("a", "b", "c")])
        day = 20_000 * 24 * HOUR_MS
        for n in range(30):  # 50 hours, every 100 min; "c" only in the first hours
            ts = day + n * 100 * 60_000
            for key in ("a", "b") if n > 3 else ("a", "b", "c"):
                status = Status.DOWN if (n + len(key)) % 7 == 0 else Status.UP
                store.submit_result(ResultRecord(key, ts, ts, status, "r", 10.0 + n / 3), 600)
        await store.flush()
        hours = [day + h * HOUR_MS for h in (0, 1, 2, 5, 5, 30, 48)]  # 2: no rows
        segments = ([(HOURLY, h, h + 1) for h in hours] + [(HOURLY, day, day + 24 * HOUR_MS)]
                    + [(DAILY, day, day + 1), (DAILY, day + 24 * HOUR_MS, day + 24 * HOUR_MS + 1)])
        mine = sorted(await store.rollup_totals(segments))
        assert mine == sorted(await Reads.rollup_totals(store, segments))
        assert {row[0] for row in mine} == set(range(len(segments))) - {2}
    finally:
        await store.close()
