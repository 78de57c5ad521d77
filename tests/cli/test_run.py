"""`probe run` as a process: one per database file, and a SIGTERM that always ends it."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time

from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import SMALL_CONFIG, spawn, tcp_monitors, wait_healthy

FLUSH_TIMEOUT_S, GRACE_S = 10, 5  # README: probe run exits within the flush timeout plus a few seconds


def config(write_config, web_port: int, name: str):
    """A small config whose one monitor checks the process's own port."""
    return write_config(SMALL_CONFIG.format(web_port=web_port) + tcp_monitors("self", 1, web_port), name)


async def test_a_second_probe_run_on_the_same_file_exits_at_once_naming_the_file_and_the_holder(write_config,
                                                                                              tmp_path):
    first_port, second_port = free_port(), free_port()
    first_config = config(write_config, first_port, "first.toml")
    second_config = config(write_config, second_port, "second.toml")
    first = await spawn(first_config, tmp_path / "first.log")
    try:
        await wait_healthy(first, first_port, tmp_path / "first.log")
        started = time.monotonic()
        refused = await asyncio.create_subprocess_exec(sys.executable, "-m", "probe", "run", "-c", str(second_config),
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            err = (await asyncio.wait_for(refused.communicate(), 20))[1].decode()
        finally:
            if refused.returncode is None:  # it ran beside the first: the bug this test is about
                refused.kill()
                await refused.wait()
        assert refused.returncode == 1, err
        (line,) = err.strip().splitlines()
        assert str(tmp_path / "probe.db") in line and f"pid {first.pid}" in line
        assert time.monotonic() - started < 10  # at once: no check ran, nothing waited on the file
        assert (await probe_cli("validate", "-c", str(second_config)))[0] == 0  # the other commands still work
        await wait_healthy(first, first_port, tmp_path / "first.log", timeout=5)  # the holder is undisturbed
        monitors = sqlite3.connect(tmp_path / "probe.db").execute("SELECT count(*) FROM monitors").fetchone()
        assert monitors == (1,)
        first.kill()  # kill -9: the kernel releases the lock, nothing is left to clean up by hand
        await first.wait()
        second = await spawn(second_config, tmp_path / "second.log")
        try:
            await wait_healthy(second, second_port, tmp_path / "second.log")
        finally:
            second.terminate()
            assert await asyncio.wait_for(second.wait(), FLUSH_TIMEOUT_S + GRACE_S) == 0
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()


async def test_sigterm_ends_probe_run_within_the_flush_timeout_while_its_writer_cannot_write(write_config,
                                                                                           tmp_path):
    """Another program holds the database's write lock: the writer retries, results pile up
    in memory, and a SIGTERM must still end the process (it used to log "probe stopped" and
    live on, its database threads waiting forever)."""
    port = free_port()
    proc = await spawn(config(write_config, port, "cfg.toml"), tmp_path / "probe.log")
    blocker = None
    try:
        await wait_healthy(proc, port, tmp_path / "probe.log")
        blocker = sqlite3.connect(tmp_path / "probe.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(1.5)  # checks go on; their results wait for the disk
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.wait_for(proc.wait(), FLUSH_TIMEOUT_S + GRACE_S + 5)
        took = time.monotonic() - started
        assert took <= FLUSH_TIMEOUT_S + GRACE_S, f"took {took:.1f}s"
        assert code != 0  # it could not save everything: it says so by its exit code
        log = (tmp_path / "probe.log").read_text()
        assert "could not flush" in log and "results lost" in log
    finally:
        if blocker is not None:
            blocker.execute("ROLLBACK")
            blocker.close()
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
