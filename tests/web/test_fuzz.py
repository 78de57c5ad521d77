"""Fuzz every public route that /api/openapi.json describes, with schemathesis: no 500, no traceback;
and a real `probe run`'s forms and raw malformed HTTP: no 500, and no traceback in its log either.

Schemathesis and hypothesis are synchronous (requests), so the status page runs on an
event loop of its own in a thread, over the same generated history the other web tests use.
Valid and invalid values both (schemathesis' positive and negative modes), a bounded number
of examples per route so that the whole file stays within seconds.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from tests.cli.test_main import free_port  # noqa: E402
from tests.web.conftest import serve  # noqa: E402
from tests.web.history import make_history  # noqa: E402
from tests.web.test_headers import config_text  # noqa: E402

EXAMPLES = 25
TRACEBACK_WORDS = ("Traceback (most recent call last)", 'File "/', "aiohttp/web_protocol.py")


class PageInAThread:
    """The status page over generated history, served from its own thread's event loop."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.client = None

    def start(self) -> str:
        self.thread.start()
        self.client, _ = self._run(self._serve())
        return str(self.client.make_url("")).rstrip("/")

    async def _serve(self):
        def write_config(text: str, name: str = "cfg.toml"):
            path = self.folder / name
            path.write_text(text)
            return path
        return await serve(await make_history(write_config, days=7))

    def stop(self) -> None:
        self._run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    page = PageInAThread(tmp_path_factory.mktemp("fuzz"))
    url = page.start()
    yield url
    page.stop()


def no_traceback(ctx, response, case) -> None:
    body = response.content.decode("utf-8", "replace")
    for words in TRACEBACK_WORDS:
        assert words not in body, f"{case.method} {case.formatted_path}: the body shows internals ({words!r})"


def fuzz(operation, mode: GenerationMode, base_url: str) -> None:
    # schemathesis' pytest plugin does not run under pytest 9 yet; hypothesis directly does.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def one(case):
        response = case.call(base_url=base_url, timeout=30)
        case.validate_response(response, checks=[not_a_server_error], additional_checks=[no_traceback])
    one()


def test_no_public_route_answers_500_or_shows_a_traceback(base_url):
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every public route, not a few
    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE, base_url)
        try:
            fuzz(operation, GenerationMode.NEGATIVE, base_url)
        except Unsatisfiable:
            pass  # a route without parameters has no invalid request to make


HOSTILE_QUERY_VALUES = ["²", "", "0", "-1", "9" * 40, "1e309", "nan", "inf", "null", "[]", "{}", "%00", "\x00",
                        "../../etc/passwd", "<script>alert(1)</script>", "' OR 1=1 --", "2026-13-45T99:99:99Z",
                        "1" * 5000, "ℌ𝔢𝔩𝔩𝔬", "24h;drop"]
# Each route with the parameters it reads, plus one it does not ("lang"), which must be ignored.
PAGE_PARAMS = {"/": [], "/history": ["before"], "/monitors/api": [], "/incidents/1": [], "/api/v1/status": [],
               "/api/v1/incidents": ["limit", "before"], "/api/v1/monitors/api/results": ["since", "until", "limit"],
               "/badge/api/uptime.svg": ["window"], "/history.atom": [], "/api/v2/summary.json": []}
PATH_TEMPLATES = ["/monitors/{}", "/incidents/{}", "/api/v1/monitors/{}", "/badge/{}/status.svg"]


def assert_no_failure(response, *what) -> None:
    assert response.status_code < 500, (*what, response.status_code)
    assert not any(w in response.text for w in TRACEBACK_WORDS), what


def test_the_pages_query_parameters_never_answer_500_or_show_a_traceback(base_url):
    with requests.Session() as session:
        for path, names in PAGE_PARAMS.items():
            for name in [*names, "lang"]:
                for value in HOSTILE_QUERY_VALUES:
                    response = session.get(f"{base_url}{path}", params={name: value}, timeout=30)
                    assert_no_failure(response, path, name, value)


def test_hostile_path_segments_never_answer_500_or_show_a_traceback(base_url):
    with requests.Session() as session:
        for template in PATH_TEMPLATES:
            for value in HOSTILE_QUERY_VALUES:
                url = base_url + template.format(quote(value, safe=""))
                assert_no_failure(session.get(url, timeout=30), template, value)


# ---- the page's forms and raw malformed HTTP, against a real `probe run` and its log ----------

RAW_REQUESTS = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /subscribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
    b"POST /unsubscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS ClientHello on the HTTP port
]
def raw_answer(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            return sock.recv(200).split(b"\r\n")[0]
        except (ConnectionResetError, TimeoutError):
            return b""


def test_forms_and_malformed_http_never_answer_500_nor_log_a_traceback(tmp_path):
    port = free_port()
    (tmp_path / "cfg.toml").write_text(textwrap.dedent(config_text(port, embed_from="")))  # subscribing on
    log_path = tmp_path / "probe.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "probe", "--log-level", "info", "run", "-c",
                                 str(tmp_path / "cfg.toml")], stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base)
        schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
        forms = [r.ok() for r in schema.get_all_operations() if r.ok().method.upper() == "POST"]
        assert {"/subscribe", "/subscribe/confirm", "/unsubscribe"} <= {f.path for f in forms}  # and the pings
        for operation in forms:
            fuzz(operation, GenerationMode.POSITIVE, base)
            fuzz(operation, GenerationMode.NEGATIVE, base)
        answers = [raw_answer(port, data) for data in RAW_REQUESTS]
        assert all(not a.startswith(b"HTTP/1.") or a.split()[1].startswith(b"4") for a in answers), answers
    finally:
        proc.terminate()
        proc.wait(30)
    lines = log_path.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line or " ERROR " in line], "\n".join(lines[-40:])
    refused = [line for line in lines if "bad request from 127.0.0.1:" in line]
    # Not a method at all (GARBAGE, a ClientHello) on a connection's first request: DEBUG, as aiohttp has it.
    assert len(refused) == len(RAW_REQUESTS) - 2, "\n".join(lines[-40:])
    assert all(" INFO " in line for line in refused)


def wait_until_serving(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("probe run did not start")
