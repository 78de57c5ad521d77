"""Page traffic is taken by a process of its own (web/front.py), so it cannot bend what checks
measure: the listening socket is not the checking process's, and a crowd on the page is
answered even while the checking process is frozen (SIGSTOP)."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.cli.test_main import free_port
from tests.test_crash import spawn, wait_healthy
from tests.web.test_headers import TOKEN, config_text

CROWD = 200


def listener_pid(port: int) -> int:
    """The process holding the listening TCP socket on 127.0.0.1:port (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(pid)
    raise AssertionError(f"nobody listens on {port}")


async def test_a_crowd_on_the_page_is_served_by_another_process_even_while_the_checks_process_is_frozen(
        write_config, tmp_path):
    port = free_port()
    proc = await spawn(write_config(config_text(port, "")), tmp_path / "probe.log")
    try:
        await wait_healthy(proc, port, tmp_path / "probe.log")
        front = listener_pid(port)
        assert front != proc.pid
        assert Path(f"/proc/{front}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(proc.pid)  # its child
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as first:
                page = await first.read()
            os.kill(proc.pid, signal.SIGSTOP)  # the checks, the store, the application: frozen
            try:
                async def visit():
                    async with session.get(f"http://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(total=4)) as r:
                        return r.status, await r.read()
                answers = await asyncio.gather(*(visit() for _ in range(CROWD)))
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            assert answers == [(200, page)] * CROWD
            admin = await session.get(f"http://127.0.0.1:{port}/api/v1/admin/health",
                                      headers={"Authorization": f"Bearer {TOKEN}"})
            assert admin.status == 200  # what is not cached goes through to the probe process
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert not any(line for line in (tmp_path / "probe.log").read_text().splitlines() if " ERROR " in line)
