"""Pings go through the front process in batches (web/front.py, Pings): each is answered as the
application answers it when asked directly, a crowd of them is stored whole, and the front's
own way in (/_front/pings) is closed to everyone else."""
from __future__ import annotations

import asyncio
import sqlite3

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.service import Probe
from probe.web.app import create_app
from tests.cli.test_main import free_port
from tests.test_crash import start_probe

JOBS = 40
PINGS_EACH = 10  # under the per-token burst: every one is accepted
VARYING = {"Date", "Server"}


def config_text(port: int) -> str:
    jobs = "".join(f'[[monitors]]\nid = "job-{i}"\ntype = "push"\ntoken = "token-{i:04d}-abcdefghijkl"\n'
                   f'period = "1h"\ngrace = "5m"\n' for i in range(JOBS))
    return f'[server]\nlisten = "127.0.0.1:{port}"\n[storage]\npath = "probe.db"\n' + jobs


# (method, path, body): one of each answer the push routes give
ASKED = [("GET", "/ping/token-0000-abcdefghijkl", None),
         ("POST", "/ping/token-0001-abcdefghijkl", "backup done, 3.2 GB \xe9t\xe9"),
         ("HEAD", "/ping/token-0002-abcdefghijkl", None),
         ("GET", "/ping/token-0003-abcdefghijkl/start", None),
         ("GET", "/ping/token-0003-abcdefghijkl/fail", None),
         ("POST", "/ping/token-0004-abcdefghijkl/2", "rsync: connection refused"),
         ("GET", "/ping/token-0005-abcdefghijkl/0", None),
         ("GET", "/ping/token-0006-abcdefghijkl/300", None),
         ("GET", "/ping/no-such-token", None),
         ("GET", "/api/push/token-0007-abcdefghijkl?status=down&msg=disk%20full&ping=12.5", None),
         ("GET", "/api/push/token-0008-abcdefghijkl?ping=fast", None),
         ("POST", "/api/push/no-such-token", "x"),
         ("GET", "/ping/token-0009-abcdefghijkl/", None)]


async def answers(session: aiohttp.ClientSession, base: str) -> list[tuple]:
    out = []
    for method, path, body in ASKED:
        async with session.request(method, base + path, data=body.encode() if body else None) as response:
            headers = sorted((k, v) for k, v in response.headers.items() if k not in VARYING)
            out.append((method, path, response.status, headers, await response.read()))
    return out


async def test_a_ping_through_the_front_is_answered_as_the_application_answers_it(write_config, tmp_path):
    port = free_port()
    (tmp_path / "direct").mkdir()
    direct_config = write_config(config_text(free_port()), name="direct/probe.toml")
    app = TestClient(TestServer(create_app(Probe(load_config(direct_config), flush_interval=0.01)),
                                host="127.0.0.1"))
    await app.start_server()
    proc = await start_probe(write_config(config_text(port)), port)
    try:
        async with aiohttp.ClientSession() as session:
            through_the_front = await answers(session, f"http://127.0.0.1:{port}")
            directly = await answers(session, str(app.make_url("")))
    finally:
        proc.terminate()
        assert await proc.wait() == 0
        await app.close()
    assert [status for _, _, status, _, _ in directly] == [200, 200, 200, 200, 200, 200, 200, 400, 404, 200, 400,
                                                          404, 404]
    for front, app_answer in zip(through_the_front, directly):
        assert front == app_answer


async def test_a_crowd_of_pings_is_stored_whole_and_in_the_order_each_job_sent_them(write_config, tmp_path):
    port = free_port()
    proc = await start_probe(write_config(config_text(port)), port)
    try:
        async with aiohttp.ClientSession() as session:
            async def job(i: int) -> list[int]:
                statuses = []
                for n in range(PINGS_EACH):
                    path = f"/ping/token-{i:04d}-abcdefghijkl" + ("/start" if n % 2 == 0 else "")
                    async with session.post(f"http://127.0.0.1:{port}{path}", data=f"run {n}") as response:
                        statuses.append(response.status)
                return statuses
            statuses = await asyncio.gather(*(job(i) for i in range(JOBS)))
    finally:
        proc.terminate()
        assert await proc.wait() == 0
    assert statuses == [[200] * PINGS_EACH] * JOBS
    with sqlite3.connect(tmp_path / "probe.db") as db:
        # a /start stores no result; each success stores one, with the job's words, in order
        stored = db.execute("SELECT m.key, t.text FROM results r JOIN monitors m ON m.id = r.monitor"
                            " JOIN reasons t ON t.id = r.reason ORDER BY r.ts").fetchall()
    for i in range(JOBS):
        said = [text for key, text in stored if key == f"job-{i}"]
        assert said == [f"run {n}" for n in range(1, PINGS_EACH, 2)]


async def test_the_fronts_own_way_in_is_closed_to_everyone_else(write_config, tmp_path):
    port = free_port()
    config = write_config(config_text(port))
    batch = [["GET", "/ping/token-0000-abcdefghijkl", "", 1]]
    app = TestClient(TestServer(create_app(Probe(load_config(config), flush_interval=0.01)), host="127.0.0.1"))
    await app.start_server()
    try:
        refused_by_the_app = await app.post("/_front/pings", json=batch)
        assert refused_by_the_app.status == 404
    finally:
        await app.close()
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/_front/pings", json=batch) as response:
                assert response.status == 404
    finally:
        proc.terminate()
        assert await proc.wait() == 0
    with sqlite3.connect(tmp_path / "probe.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone() == (0,)
