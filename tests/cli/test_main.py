"""`probe validate` and `probe check` as an operator runs them: a real process, real peers."""
import asyncio
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[2]


async def probe_cli(*args, cwd=None):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probe", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_validate_accepts_the_example_config():
    code, out, err = await probe_cli("validate", "-c", str(ROOT / "config.example.toml"))
    assert code == 0, err
    assert "ok (5 monitors)" in out


async def test_validate_prints_every_problem_and_exits_2_without_a_traceback(write_config):
    path = write_config("""
        [server]
        listen = "nope"
        [[monitors]]
        id = "api"
        type = "http"
        url = "http://127.0.0.1/"
        interval = "60s"
        timeout = "90s"
        [[monitors]]
        id = "db"
        type = "tcp"
        host = "127.0.0.1"
        port = "5432"
    """)
    code, out, err = await probe_cli("validate", "-c", str(path))
    assert code == 2
    assert err.splitlines() == [
        'cfg.toml: server: listen must be "host:port", e.g. "127.0.0.1:8080" (got "nope")',
        'cfg.toml: monitors[0] "api": timeout must be shorter than interval (got 90s ≥ 60s)',
        'cfg.toml: monitors[1] "db": port must be an integer (got "5432")',
    ]
    assert "Traceback" not in err


async def test_run_refuses_to_start_on_a_broken_config(write_config):
    path = write_config("""
        [[monitors]]
        id = "db"
        type = "tcp"
        host = "127.0.0.1"
    """)
    code, out, err = await probe_cli("run", "-c", str(path))
    assert code == 2
    assert err.strip() == 'cfg.toml: monitors[0] "db": port is required'


async def test_check_prints_a_table_and_exits_1_when_a_monitor_is_down(write_config):
    async def handler(request):
        return web.Response(status=int(request.match_info["code"]))

    app = web.Application()
    app.router.add_get("/{code}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        closed = free_port()
        path = write_config(f"""
            [defaults]
            timeout = "2s"
            [[monitors]]
            id = "ok"
            type = "http"
            url = "http://127.0.0.1:{server.port}/200"
            [[monitors]]
            id = "broken"
            type = "http"
            url = "http://127.0.0.1:{server.port}/503"
            [[monitors]]
            id = "closed"
            type = "tcp"
            host = "127.0.0.1"
            port = {closed}
            [[monitors]]
            id = "ping"
            type = "icmp"
            host = "127.0.0.1"
        """)
        code, out, err = await probe_cli("check", "-c", str(path))
        lines = out.splitlines()
        only_ok = await probe_cli("check", "-c", str(path), "ok")
        unknown = await probe_cli("check", "-c", str(path), "nope")
    assert code == 1, err
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "LATENCY", "REASON"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "UP" in rows["ok"] and "HTTP 200" in rows["ok"]
    assert "DOWN" in rows["broken"] and "HTTP 503 (expected 2xx)" in rows["broken"]
    assert "DOWN" in rows["closed"] and f"connection refused by 127.0.0.1:{closed}" in rows["closed"]
    assert "UP" in rows["ping"]
    assert only_ok[0] == 0 and len(only_ok[1].splitlines()) == 2
    assert unknown[0] == 2 and 'no monitor with id "nope"' in unknown[2]


async def test_notify_test_sends_to_the_channel_and_prints_its_answer(write_config, monkeypatch):
    from tests.peers.receiver import Answer, Receiver

    receiver = await Receiver().start()
    try:
        receiver.json_default({"errcode": 0, "errmsg": "ok"})
        path = write_config(f"""
            [[notifiers]]
            id = "ops-dingtalk"
            type = "dingtalk"
            url = "{receiver.url}/robot/send?access_token=t"
            secret = "${{PROBE_TEST_DING_SECRET}}"
        """)
        monkeypatch.setenv("PROBE_TEST_DING_SECRET", "SECverysecretvalue")
        code, out, err = await probe_cli("notify-test", "-c", str(path), "ops-dingtalk")
        assert code == 0, err
        assert out.startswith("ops-dingtalk (dingtalk): sent: HTTP 200") and '"errcode": 0' in out
        assert receiver.requests[0].json["markdown"]["title"] == "[TEST] probe test"
        assert "SECverysecretvalue" not in out + err  # secrets are never printed

        receiver.default = Answer(200, '{"errcode": 300005, "errmsg": "token is not exist"}')
        code, out, _ = await probe_cli("notify-test", "-c", str(path), "ops-dingtalk")
        assert code == 1 and "FAILED: DingTalk errcode 300005: token is not exist (permanent" in out

        code, _, err = await probe_cli("notify-test", "-c", str(path), "nope")
        assert code == 2 and 'no notifier with id "nope" (known: ops-dingtalk)' in err
    finally:
        await receiver.close()


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.mkdir(), "cannot open the database file"),
    (lambda p: p.write_bytes(b"not sqlite at all " * 20), "not a database"),
])
async def test_run_names_a_database_it_cannot_open_in_one_line_without_a_traceback(write_config, tmp_path,
                                                                                    make, problem):
    make(tmp_path / "probe.db")
    path = write_config(f"""
        [server]
        listen = "127.0.0.1:{free_port()}"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "db"
        type = "tcp"
        host = "127.0.0.1"
        port = 1
    """)
    code, out, err = await probe_cli("run", "-c", str(path))
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"probe: cannot open the database {tmp_path / 'probe.db'}: {problem} (")
