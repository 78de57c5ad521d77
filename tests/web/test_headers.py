"""Security headers on every route of a real `probe run`: the routes are those its own
OpenAPI document lists (plus the admin API, static files and an unknown path), so a new
route is covered without a test edit."""
from __future__ import annotations

import re

import aiohttp
import pytest

from tests.cli.test_main import free_port
from tests.test_crash import spawn, wait_healthy

TOKEN = "token-for-header-tests"
PUBLIC_GET = re.compile(r"^/(api/v1/(?!admin/)|api/v2/|api/openapi\.json|badge/|history\.(atom|rss))")
# Push pings come from anywhere, a browser's script included (healthchecks answers them the same way).
PINGS = re.compile(r"^/(ping/|api/push/)")


def config_text(port: int, embed_from: str) -> str:
    return f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [page]
        url = "http://127.0.0.1:{port}"
        logo = "https://cdn.example.com/logo.png"
        {embed_from}
        [[notifiers]]
        id = "mail"
        type = "email"
        host = "127.0.0.1"
        port = 9
        mode = "plain"
        from = "status@acme.test"
        to = ["ops@acme.test"]
        [subscribers]
        email_via = "mail"
        [[monitors]]
        id = "web"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "1h"
    """


@pytest.fixture
async def running(write_config, tmp_path):
    started = []

    async def start(embed_from: str = ""):
        port = free_port()
        proc = await spawn(write_config(config_text(port, embed_from), f"cfg{len(started)}.toml"),
                           tmp_path / "probe.log")
        started.append(proc)
        await wait_healthy(proc, port, tmp_path / "probe.log")
        return f"http://127.0.0.1:{port}"
    yield start
    for proc in started:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def every_route(session, base: str) -> list[str]:
    async with session.get(f"{base}/api/openapi.json") as response:
        paths = list((await response.json())["paths"])
    return [p.replace("{id}", "web" if "monitor" in p or "badge" in p else "1") for p in paths] + [
        "/static/page.js", "/static/style.css", "/no/such/page", "/api/v1/admin/incidents", "/api/v1/no-such"]


def directives(csp: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}


async def test_every_route_carries_the_security_headers_and_only_public_reads_are_cross_origin(running):
    base = await running()
    async with aiohttp.ClientSession() as session:
        routes = await every_route(session, base)
        assert len(routes) > 20
        for path in routes:
            async with session.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                headers, kind = response.headers, response.content_type
            assert headers.get("X-Content-Type-Options") == "nosniff", path
            assert headers.get("Referrer-Policy") == "same-origin", path
            csp = directives(headers.get("Content-Security-Policy", ""))
            assert csp.get("default-src") == ["'none'"], path
            if kind == "text/html":
                assert csp["frame-ancestors"] == ["'none'"] and headers["X-Frame-Options"] == "DENY", path
                assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"], path
                assert csp["img-src"] == ["'self'", "data:", "https://cdn.example.com"], path  # [page] logo
                assert csp["form-action"] == ["'self'"] and csp["base-uri"] == ["'none'"], path
            if path.startswith("/badge/"):
                assert "frame-ancestors" not in csp and "X-Frame-Options" not in headers, path  # embeddable
            if not PINGS.match(path):  # pings answer any origin; a 404 for an unknown token may not
                assert (headers.get("Access-Control-Allow-Origin") == "*") == bool(PUBLIC_GET.match(path)), path
            if response.status < 400:
                assert response.status == 200, path


async def test_the_page_may_be_framed_by_the_origins_the_operator_names(running):
    base = await running('embed_from = ["https://intranet.example.com", "https://wiki.example.com:8443"]')
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/subscribe"):
            async with session.get(base + path) as response:
                csp = directives(response.headers["Content-Security-Policy"])
                assert csp["frame-ancestors"] == ["https://intranet.example.com", "https://wiki.example.com:8443"]
                assert "X-Frame-Options" not in response.headers  # it cannot name origins: CSP alone decides
