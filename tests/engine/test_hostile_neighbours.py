"""Hostile targets beside 200 healthy ones, in the real Probe (scheduler, runner, engine, store).

The peers run in a process of their own (tests/peers/hostile.py), as real targets would:
their work must not be charged to the probe's event loop. What is asserted is behaviour:
each hostile monitor gets down results with its reason, every healthy one stays up,
nothing is lost to a stray exception, and every slot of every healthy monitor yields its one
result (after a stall of the event loop the scheduler would run a monitor once for its latest
slot, skipping the others: a hang charged to the loop would show as a missing slot).
"""
from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.config.loader import load_config
from probe.core.models import Status
from probe.service import Probe

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = 200
INTERVAL_S = 2
RESULTS_EACH = 3  # slots every monitor must have had before the probe stops

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


async def every_monitor_has(probe, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await probe.store.flush()
        counts = await probe.store.fetchall("SELECT count(*) FROM results GROUP BY monitor")
        if len(counts) == len(probe.monitors) and min(n for (n,) in counts) >= count:
            return
        assert time.monotonic() < deadline, f"results per monitor after {timeout} s: {sorted(counts)[:5]}..."
        await asyncio.sleep(0.1)


async def test_hostile_targets_fail_in_words_while_200_healthy_monitors_miss_no_slot(peers, tmp_path, caplog):
    path = tmp_path / "probe.toml"
    path.write_text(config_text(peers))
    probe = Probe(load_config(path), flush_interval=0.1)
    await probe.start()
    try:
        await every_monitor_has(probe, RESULTS_EACH)
    finally:
        await probe.stop()
    await probe.store.open()
    try:
        results = {m: await probe.store.results(m) for m in probe.monitors}
    finally:
        await probe.store.close()

    for monitor_id, (_, words) in HOSTILE.items():
        got = results[monitor_id]
        assert len(got) >= RESULTS_EACH, monitor_id  # every tick yields its one result, none stuck behind a hang
        for result in got:
            assert result.status is Status.DOWN, (monitor_id, result.reason)
            assert words in result.reason and "unexpectedly" not in result.reason, (monitor_id, result.reason)
    healthy = [r for m, rs in results.items() if m.startswith("ok-") for r in rs]
    assert len(healthy) >= HEALTHY * RESULTS_EACH
    assert all(r.status is Status.UP for r in healthy), {r.reason for r in healthy if r.status is not Status.UP}
    for monitor_id, got in results.items():
        gaps = {b.scheduled_ms - a.scheduled_ms for a, b in zip(got, got[1:])}
        # One result a slot, no slot skipped (stored times are whole milliseconds: +-1).
        assert gaps <= {INTERVAL_S * 1000 - 1, INTERVAL_S * 1000, INTERVAL_S * 1000 + 1}, (monitor_id, gaps)
    late = sorted(r.late_ms for r in healthy)  # a figure, not a verdict (BENCHMARKS.md measures it)
    logging.getLogger("test").warning("healthy lateness p50=%d ms p99=%d ms max=%d ms over %d checks",
                                      late[len(late) // 2], late[int(len(late) * 0.99)], late[-1], len(late))
    assert not [r for r in caplog.records if r.name == "probe.runner" and r.levelno >= logging.ERROR]
