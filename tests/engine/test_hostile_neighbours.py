"""Hostile targets beside 200 healthy ones, in the real Probe (scheduler, runner, engine, store).

The peers run in a process of their own (tests/peers/hostile.py), as real targets would:
their work must not be charged to the probe's event loop. What is asserted is behaviour:
each hostile monitor gets down results with its reason, every healthy one stays up,
nothing is lost to a stray exception, and the healthy checks still start on time.
"""
from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from probe.config.loader import load_config
from probe.core.models import Status
from probe.service import Probe

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = 200
INTERVAL_S = 2
RUN_S = 7.0
# The goal is p99 <= 250 ms (BENCHMARKS.md measures it on a quiet machine); the test machine is
# shared by many jobs, so the test holds a bound that only a blocked event loop would miss.
LATE_BOUND_MS = 1000

HOSTILE = {  # monitor id -> (TOML lines, words its reason must hold)
    "silent-http": ('type = "http"\nurl = "http://127.0.0.1:{never_answers}/"', "timed out after 1s"),
    "drip-http": ('type = "http"\nurl = "http://127.0.0.1:{drip}/"', "timed out after 1s"),
    "drip-body": ('type = "http"\nurl = "http://127.0.0.1:{drip_body}/"', "while reading the body"),
    "endless-body": ('type = "http"\nurl = "http://127.0.0.1:{endless_body}/"\nexpect_text = "healthy"\n'
                     "max_body_bytes = 65536", "not found in the first 65536 bytes"),
    "huge-body": ('type = "http"\nurl = "http://127.0.0.1:{huge_body}/"\nexpect_text = "healthy"\n'
                  "max_body_bytes = 65536", "not found in the first 65536 bytes"),
    "redirect-loop": ('type = "http"\nurl = "http://127.0.0.1:{healthy}/loop"', "too many redirects"),
    "bad-tls": ('type = "http"\nurl = "https://127.0.0.1:{garbage}/"', "TLS handshake"),
    "tls-hang-up": ('type = "tcp"\nhost = "127.0.0.1"\nport = {hang_up}\ntls = true', "TLS handshake"),
    "garbage-http": ('type = "http"\nurl = "http://127.0.0.1:{garbage}/"', "invalid HTTP response"),
    "giant-headers": ('type = "http"\nurl = "http://127.0.0.1:{giant_headers}/"', "Too many headers"),
    "endless-headers": ('type = "http"\nurl = "http://127.0.0.1:{endless_headers}/"', "Too many headers"),
    "reset-http": ('type = "http"\nurl = "http://127.0.0.1:{reset_after_request}/"', "reset"),
    "reset-tcp": ('type = "tcp"\nhost = "127.0.0.1"\nport = {reset_at_once}\nsend = "PING"\nexpect = "PONG"',
                  "reset"),
    "dns-silent": ('type = "dns"\nquery = "app.test"\nserver = "127.0.0.1:{dns_silent}"', "no answer"),
    "dns-garbage": ('type = "dns"\nquery = "app.test"\nserver = "127.0.0.1:{dns_garbage}"', "malformed"),
    "dns-truncated": ('type = "dns"\nquery = "app.test"\nserver = "127.0.0.1:{dns_truncate_hang}"',
                      "no answer"),
}


@pytest.fixture(scope="module")
def peers():
    """The hostile peers and a healthy HTTP target in a child process; yields {name: port}."""
    child = subprocess.Popen([sys.executable, "-m", "tests.peers.hostile"], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        yield json.loads(child.stdout.readline())
    finally:
        child.terminate()
        child.wait(10)


def config_text(ports: dict[str, int]) -> str:
    common = f'interval = "{INTERVAL_S}s"\ntimeout = "1s"\n'
    blocks = ['[storage]\npath = "probe.db"\n']
    for n in range(HEALTHY):
        blocks.append(f'[[monitors]]\nid = "ok-{n:03}"\ntype = "http"\n'
                      f'url = "http://127.0.0.1:{ports["healthy"]}/?n={n}"\n{common}')
    for monitor_id, (lines, _) in HOSTILE.items():
        blocks.append(f'[[monitors]]\nid = "{monitor_id}"\n{lines.format(**ports)}\n{common}')
    return "\n".join(blocks)


async def test_hostile_targets_fail_in_words_while_200_healthy_monitors_stay_on_time(peers, tmp_path, caplog):
    path = tmp_path / "probe.toml"
    path.write_text(config_text(peers))
    probe = Probe(load_config(path), flush_interval=0.1)
    await probe.start()
    try:
        await asyncio.sleep(RUN_S)
    finally:
        await probe.stop()
    await probe.store.open()
    try:
        results = {m: await probe.store.results(m) for m in probe.monitors}
    finally:
        await probe.store.close()

    for monitor_id, (_, words) in HOSTILE.items():
        got = results[monitor_id]
        assert len(got) >= 2, monitor_id  # every tick yields its one result, none stuck behind a hang
        for result in got:
            assert result.status is Status.DOWN, (monitor_id, result.reason)
            assert words in result.reason and "unexpectedly" not in result.reason, (monitor_id, result.reason)
    healthy = [r for m, rs in results.items() if m.startswith("ok-") for r in rs]
    assert len(healthy) >= HEALTHY * 2
    assert all(r.status is Status.UP for r in healthy), {r.reason for r in healthy if r.status is not Status.UP}
    late = sorted(r.late_ms for r in healthy)
    p99 = late[int(len(late) * 0.99)]
    logging.getLogger("test").warning("healthy lateness p50=%d ms p99=%d ms max=%d ms over %d checks",
                                      late[len(late) // 2], p99, late[-1], len(late))
    assert p99 < LATE_BOUND_MS
    assert not [r for r in caplog.records if r.name == "probe.runner" and r.levelno >= logging.ERROR]
