"""Push monitors told as stories against a real `probe run`: jobs report over HTTP, or stay silent,
and the database says what probe made of it. Expected times are derived from what was stored
(a report's own time), never from the test's clock."""
import asyncio
import json
import time

import aiohttp

from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import query, start_probe

TOKENS = {name: f"{name}-token-0123456789" for name in
          ("ontime", "missed", "failing", "exit2", "longrun", "kuma", "hourly")}
SECOND = 1000


def story_config(write_config, port):
    monitors = "".join(f"""
[[monitors]]
id = "{name}"
type = "push"
token = "{token}"
""" + {"longrun": 'period = "1h"\ngrace = "1m"\nmax_runtime = "1s"\n', "hourly": 'period = "1h"\ngrace = "1m"\n'}.get(
        name, 'period = "1s"\ngrace = "1s"\n') for name, token in TOKENS.items())
    return write_config(f"""
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "probe.db"
[defaults]
failure_threshold = 1
""" + monitors)


def results(db, monitor_id):
    """(ts, status, reason, details) of a monitor's stored results, oldest first."""
    return [(ts, status, reason, json.loads(details) if details else {}) for ts, status, reason, details in query(
        db, "SELECT r.ts, r.status, t.text, r.details FROM results r JOIN monitors m ON m.id = r.monitor"
            " JOIN reasons t ON t.id = r.reason WHERE m.key = ? ORDER BY r.ts", (monitor_id,))]


def incidents(db, monitor_id):
    return query(db, "SELECT i.started_ms, i.reason, i.resolved_ms FROM incidents i JOIN monitors m"
                     " ON m.id = i.monitor WHERE m.key = ? ORDER BY i.started_ms", (monitor_id,))


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_push_monitors_record_reports_and_silences(write_config, tmp_path):
    port = free_port()
    config = story_config(write_config, port)
    db = tmp_path / "probe.db"
    proc = await start_probe(config, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def call(path, method="GET", **kwargs):
                async with http.request(method, base + path, **kwargs) as response:
                    return response.status, await response.text()

            assert await call(f"/ping/{TOKENS['missed']}") == (200, "OK")
            assert await call(f"/ping/{TOKENS['hourly']}", "POST", data="backup done") == (200, "OK")
            assert await call(f"/ping/{TOKENS['longrun']}/start") == (200, "OK")
            assert await call(f"/ping/{TOKENS['failing']}/fail") == (200, "OK")
            assert await call(f"/ping/{TOKENS['exit2']}/2", "POST") == (200, "OK")
            assert (await call(f"/api/push/{TOKENS['kuma']}", params={"status": "down", "msg": "disk full"}))[0] == 200
            wrong = [await call(f"/ping/{TOKENS['ontime']}-wrong", "POST", data="stored nowhere"),
                     await call(f"/api/push/{TOKENS['kuma'][:-1]}", params={"msg": "stored nowhere"})]
            for _ in range(8):  # the cron job that is always on time
                assert (await call(f"/ping/{TOKENS['ontime']}"))[0] == 200
                await asyncio.sleep(0.5)
            await wait_for(lambda: len(incidents(db, "missed")) == 1 and incidents(db, "longrun"))
            check = await probe_cli("check", "-c", str(config), "longrun", "hourly")
    finally:
        proc.terminate()
        await proc.wait()

    # On time: every result up, no incident.
    assert {status for _, status, _, _ in results(db, "ontime")} == {0}
    assert len(results(db, "ontime")) == 8 and incidents(db, "ontime") == []

    # Missed: a down result at the slot (the report's time + period), recorded once the grace was
    # over (within a second), and the incident starts there.
    (pinged, _, _, _), (due, status, reason, details), *_ = results(db, "missed")
    assert due == pinged + 1 * SECOND and status == 2
    assert reason.startswith("no ping since ") and reason.endswith(", grace 1s)")
    assert details["due_ms"] == due and details["last_ping_ms"] == pinged
    assert 0 <= details["detected_ms"] - (due + 1 * SECOND) < 1 * SECOND
    assert incidents(db, "missed")[0][:2] == (due, reason)

    # Failures the job reported, in its words.
    assert incidents(db, "failing")[0][1] == "job reported failure"
    assert incidents(db, "exit2")[0][1] == "job reported failure: exit status 2"
    assert incidents(db, "kuma")[0][1] == "job reported failure — disk full"

    # A run past max_runtime is down at its start + max_runtime.
    (started,), = query(db, "SELECT value FROM meta WHERE key = 'passive_start:longrun'")
    (ts, status, reason, _), = results(db, "longrun")
    assert (ts, status) == (int(started) + 1 * SECOND, 2)
    assert reason.startswith("run started at ") and reason.endswith(" has not finished after 1s")
    assert incidents(db, "longrun")[0][0] == ts

    # A wrong token: 404, and nothing of it anywhere.
    assert [status for status, _ in wrong] == [404, 404]
    assert query(db, "SELECT count(*) FROM reasons WHERE text LIKE '%stored nowhere%'") == [(0,)]

    # `probe check` reports what `probe run` stored.
    code, out, err = check
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 1, err
    assert "DOWN" in rows["longrun"] and reason in rows["longrun"]
    assert "UP" in rows["hourly"] and "backup done" in rows["hourly"]
