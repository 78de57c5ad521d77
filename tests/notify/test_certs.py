"""Certificate expiry notices end to end: a real TLS server on loopback whose trustme certificate
expires in N days, the real engine and outbox over a real file, real webhook receivers."""
from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from probe.config.loader import load_config
from probe.notifiers.text import headline, render
from probe.notify.certs import DAY_S, crossed, due
from probe.service import Probe
from tests.notify.test_dispatcher import started
from tests.peers.receiver import Receiver

# --- the threshold rules ------------------------------------------------------------------

@pytest.mark.parametrize("days_left, expected", [
    (40, None), (14.01, None), (14, 14), (13.5, 14), (7.2, 14), (7, 7), (5, 7), (1.5, 7), (0.9, 1),
    (0.001, 1), (0, None), (-3, None)])
def test_the_threshold_crossed_is_the_lowest_one_the_days_left_have_reached(days_left, expected):
    assert crossed(days_left * DAY_S, (14, 7, 1)) == expected


def test_thresholds_may_be_listed_in_any_order_and_none_means_never():
    assert crossed(5 * DAY_S, (1, 30, 7)) == 7
    assert crossed(5 * DAY_S, ()) is None


def test_a_notice_is_due_only_below_every_threshold_already_announced():
    assert due(14, None)  # first sight
    assert not due(14, 14)  # the same threshold again: a later check
    assert due(7, 14)  # crossed the next one
    assert not due(14, 7)  # the clock went back, or the thresholds were raised: no second 14-day notice
    assert not due(None, None)  # above every threshold


# --- end to end -------------------------------------------------------------------------

# `ca` and `trusting` (the tcp check trusts the test CA) come from tests/conftest.py.


class TlsServer:
    """A TLS listener on 127.0.0.1; `serve(not_after)` swaps the certificate for the next handshakes."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server: asyncio.Server | None = None
        self.port = 0

    def serve(self, not_after: datetime) -> int:
        self.ca.issue_cert("127.0.0.1", not_after=not_after).configure_cert(self.context)
        return int(not_after.timestamp())

    async def __aenter__(self) -> "TlsServer":
        async def hold_open(reader, writer):
            await reader.read()
            writer.close()
        self.server = await asyncio.start_server(hold_open, "127.0.0.1", 0, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def in_days(days: float) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)


def config(write_config, port: int, hook: str, zh: str, quiet: str, pager: str):
    return load_config(write_config(f"""
        [storage]
        path = "probe.db"
        [page]
        url = "https://status.example.com/"
        timezone = "Asia/Shanghai"
        [[monitors]]
        id = "mail"
        name = "Mail"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        tls = true
        interval = "0.3s"
        timeout = "250ms"
        notify = ["hook", "zh", "quiet", "pager"]
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook}/hook"
        events = ["cert_expiring"]
        [[notifiers]]
        id = "zh"
        type = "webhook"
        url = "{zh}/zh"
        language = "zh-CN"
        [[notifiers]]
        id = "quiet"
        type = "webhook"
        url = "{quiet}/quiet"
        events = ["open", "resolve"]
        [[notifiers]]
        id = "pager"
        type = "pagerduty"
        routing_key = "R0UTING"
        url = "{pager}/enqueue"
    """))


async def checks_ran(probe, n: int = 3, timeout: float = 10.0) -> None:
    """Wait until `n` more checks were recorded: proof that silence is not for want of checks."""
    target = sum(probe.check_counts.values()) + n
    deadline = time.monotonic() + timeout
    while sum(probe.check_counts.values()) < target:
        assert time.monotonic() < deadline, "the monitor stopped checking"
        await asyncio.sleep(0.05)


async def test_one_notice_per_threshold_none_after_a_restart_and_afresh_for_a_renewed_certificate(
        write_config, trusting, ca):
    hook, zh, quiet, pager = [await Receiver().start() for _ in range(4)]
    shift = [0.0]  # days the probe's clock is ahead: a certificate's life in seconds
    try:
        async with TlsServer(ca) as server:
            expires = server.serve(in_days(10) + timedelta(hours=1))
            cfg = config(write_config, server.port, hook.url, zh.url, quiet.url, pager.url)
            probe = await started(cfg)
            probe.certs.clock = lambda: time.time() + shift[0] * DAY_S
            try:
                (first,) = await settled(probe, hook, 1)
                assert first.json["id"] == f"cert:mail:{expires}:14"
                assert first.json["type"] == "certificate.expiring" and first.json["event"] == "cert_expiring"
                assert first.json["summary"] == "[CERTIFICATE EXPIRING] Mail — TLS certificate expires in 10 days"
                assert first.json["cert_expires_at"] == datetime.fromtimestamp(expires, timezone.utc).isoformat(
                    timespec="milliseconds")
                assert first.json["incident"]["url"] == "https://status.example.com/monitors/mail"
                (chinese,) = await zh.wait_for(1)
                assert chinese.json["summary"] == "[证书即将过期] Mail — TLS 证书将在 10 天后过期"

                shift[0] = 4  # 6 days left: the 7-day threshold, once
                second = (await settled(probe, hook, 2))[1]
                assert second.json["id"] == f"cert:mail:{expires}:7"
                assert second.json["summary"].endswith("TLS certificate expires in 6 days")
                shift[0] = 9.5  # 13 hours left
                third = (await settled(probe, hook, 3))[2]
                assert third.json["id"] == f"cert:mail:{expires}:1"
                assert third.json["summary"].endswith("TLS certificate expires in 13 hours")
                # The sent rows go with the raw results (here: all of them), so the outbox
                # cannot be what remembers: cert_notices must.
                await probe.store.prune(0, 400 * DAY_S, now=int(time.time() * 1000) + 1000)
                assert await probe.notify.deliveries("hook") == []
            finally:
                await probe.stop()

            probe = await started(cfg)  # the same file: what was announced is remembered
            probe.certs.clock = lambda: time.time() + shift[0] * DAY_S
            try:
                await checks_ran(probe, 4)
                shift[0] = 0  # back to 10 days left: still nothing (14 went out before)
                await checks_ran(probe, 4)
                await asyncio.sleep(0.5)
                assert len(hook.requests) == 3

                server.serve(in_days(90))  # renewed
                await checks_ran(probe, 4)
                await asyncio.sleep(0.5)
                assert len(hook.requests) == 3
                renewed = server.serve(in_days(5) + timedelta(hours=1))  # first seen 5 days before expiry: the 7-day notice only
                fourth = (await settled(probe, hook, 4))[3]
                assert fourth.json["id"] == f"cert:mail:{renewed}:7"
                assert fourth.json["summary"].endswith("TLS certificate expires in 5 days")
            finally:
                await probe.stop()
        assert [r.json["id"].rsplit(":", 1)[1] for r in zh.requests] == ["14", "7", "1", "7"]  # all events: the same
        assert quiet.requests == [] and pager.requests == []  # not subscribed; PagerDuty takes none
    finally:
        for receiver in (hook, zh, quiet, pager):
            await receiver.close()


async def settled(probe, receiver: Receiver, count: int):
    """The first `count` requests, once more checks have run and brought no further one."""
    await receiver.wait_for(count, timeout=10)
    await checks_ran(probe, 3)
    await asyncio.sleep(0.3)  # a notice queued by the last check would have arrived by now
    assert len(receiver.requests) == count, [r.json["id"] for r in receiver.requests]
    return receiver.requests


# --- the message --------------------------------------------------------------------------

EXPIRES_TS = 1_796_803_200  # 2026-12-09 08:00:00 UTC = 16:00 in Shanghai
NOW_S = EXPIRES_TS - 6 * DAY_S - 3600


def notice(write_config, language: str, public: str = "true"):
    cfg = load_config(write_config(f"""
        [page]
        url = "https://status.example.com"
        timezone = "Asia/Shanghai"
        language = "{language}"
        [[monitors]]
        id = "web"
        name = "Website"
        type = "http"
        url = "https://127.0.0.1/"
        public = {public}
        notify = ["hook"]
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "http://127.0.0.1:9/"
    """))
    probe = Probe(cfg)  # not started: message() only reads the config
    return probe.notify.messages.certificate(cfg.notifiers[0], cfg.monitors[0], EXPIRES_TS, 7, "up", NOW_S)


def test_the_notice_names_the_monitor_days_left_expiry_in_page_time_and_links_its_page(write_config):
    message = notice(write_config, "en")
    assert message.key == f"cert:web:{EXPIRES_TS}:7" and message.severity == "warning"
    assert headline(message) == "[CERTIFICATE EXPIRING] Website — TLS certificate expires in 6 days"
    assert render(message, "text") == (
        "[CERTIFICATE EXPIRING] Website — TLS certificate expires in 6 days\n\n"
        "Expires: 2026-12-09 16:00:00 CST\n\n"
        "Renew the certificate before then: once it has expired, clients that verify it refuse to connect.\n\n"
        "Details on the status page: https://status.example.com/monitors/web")
    assert "- Expires: 2026-12-09 16:00:00 CST" in render(message, "markdown")
    assert '<a href="https://status.example.com/monitors/web">' in render(message, "html")


def test_the_notice_in_chinese(write_config):
    assert render(notice(write_config, "zh-CN"), "markdown") == (
        "**[证书即将过期] Website — TLS 证书将在 6 天后过期**\n\n"
        "- 过期时间: 2026-12-09 16:00:00 CST\n\n"
        "请在此之前续期证书：证书过期后，验证证书的客户端将拒绝连接。\n\n"
        "[在状态页查看详情](https://status.example.com/monitors/web)")


def test_a_private_monitor_gets_no_link_to_a_page_it_does_not_have(write_config):
    assert notice(write_config, "en", public="false").url == ""
