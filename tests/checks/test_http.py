"""The HTTP check against real servers on 127.0.0.1, run through the real CheckRunner."""
from __future__ import annotations

import datetime
import ssl
import time
from dataclasses import dataclass

import pytest
import trustme

import probe.checks.http
import probe.checks.httpsession
from probe.checks.base import CheckContext, Progress
from probe.checks.http import HttpCheck, HttpOptions
from probe.config.loader import ConfigError, load_config
from probe.core.models import Status
from probe.engine.runner import CheckRunner
from tests.peers.http_target import (
    REQUESTS,
    closed_port,
    raw_server,
    replying,
    silent,
    target_app,
)

NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclass
class Monitor:
    id: str = "web"
    timeout: float = 1.0
    degraded_latency: float | None = None


@pytest.fixture
async def run():
    """run(url, timeout=..., **options) -> CheckResult, through the runner and its shared session."""
    runner = CheckRunner()

    async def go(url, *, timeout: float = 1.0, **options):
        return await runner.run(Monitor(timeout=timeout), HttpCheck(HttpOptions(url=str(url), **options)))

    yield go
    await runner.close()


@pytest.fixture
async def site(aiohttp_server):
    return await aiohttp_server(target_app())


# --- status -----------------------------------------------------------------------------

async def test_it_reports_http_200_as_up_without_numbers_in_the_reason(run, site):
    result = await run(site.make_url("/"))
    assert result.status is Status.UP
    assert result.reason == "HTTP 200"


async def test_it_reports_http_503_as_down(run, site):
    result = await run(site.make_url("/status/503"))
    assert result.status is Status.DOWN
    assert result.reason == "HTTP 503 (expected 2xx)"
    assert result.details["status_code"] == 503


@pytest.mark.parametrize("code, expect_status, reason", [
    (204, (200,), "HTTP 204 (expected 200)"),
    (404, ("2xx", 301), "HTTP 404 (expected 2xx or 301)"),
    (500, ("200-299", "3xx", 418), "HTTP 500 (expected 200-299, 3xx or 418)"),
])
async def test_it_names_the_expected_statuses_when_the_status_is_wrong(run, site, code, expect_status, reason):
    result = await run(site.make_url(f"/status/{code}"), expect_status=expect_status)
    assert (result.status, result.reason) == (Status.DOWN, reason)


@pytest.mark.parametrize("code, expect_status", [
    (404, ("400-404",)), (302, ("2xx", "3xx")), (204, (200, 204)), (418, ("418",)),
])
async def test_it_accepts_statuses_from_codes_classes_and_ranges(run, site, code, expect_status):
    result = await run(site.make_url(f"/status/{code}"), expect_status=expect_status, follow_redirects=False)
    assert (result.status, result.reason) == (Status.UP, f"HTTP {code}")


# --- body expectations ------------------------------------------------------------------

async def test_it_is_up_when_the_expected_text_is_there(run, site):
    result = await run(site.make_url("/"), expect_text="Welcome")
    assert result.status is Status.UP


async def test_it_reports_missing_text_as_down(run, site):
    result = await run(site.make_url("/"), expect_text="Goodbye")
    assert result.status is Status.DOWN
    assert result.reason == "expected text 'Goodbye' not found in the response"


async def test_it_checks_the_body_against_a_regex(run, site):
    good = await run(site.make_url("/"), expect_regex=r"the \w+$")
    bad = await run(site.make_url("/"), expect_regex=r"^Closed")
    assert good.status is Status.UP
    assert (bad.status, bad.reason) == (Status.DOWN, "response does not match /^Closed/")


async def test_it_is_up_when_every_json_path_has_its_value(run, site):
    result = await run(site.make_url("/json"), expect_json={
        "status": "ok", "$.data.version": "1.4.2", "items[1].state": "down",
        "checks.db[2]": 3, "count": 3.0, "ready": True, "$.checks.db": [1, 2, 3],
    })
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")


@pytest.mark.parametrize("expect_json, reason", [
    ({"status": "degraded"}, 'JSON status is "ok", expected "degraded"'),
    ({"ready": 1}, "JSON ready is true, expected 1"),  # a TOML integer is not a JSON boolean
    ({"count": "3"}, 'JSON count is 3, expected "3"'),
    ({"data.build": "x"}, "JSON path data.build missing"),
    ({"items[5].state": "up"}, "JSON path items[5].state missing"),
    ({"status.code": 1}, "JSON path status.code missing"),
])
async def test_it_reports_a_wrong_or_missing_json_value_as_down(run, site, expect_json, reason):
    result = await run(site.make_url("/json"), expect_json=expect_json)
    assert (result.status, result.reason) == (Status.DOWN, reason)


async def test_it_reports_a_body_that_is_not_json_as_down(run, site):
    result = await run(site.make_url("/"), expect_json={"status": "ok"})
    assert result.status is Status.DOWN
    assert result.reason == "response is not JSON (Expecting value at line 1 column 1)"


# --- redirects --------------------------------------------------------------------------

async def test_it_follows_a_redirect(run, site):
    result = await run(site.make_url("/redirect"), expect_text="Welcome")
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert result.details["redirects"] == 1


async def test_it_reports_a_redirect_loop_as_too_many_redirects(run, site):
    result = await run(site.make_url("/loop"))
    assert (result.status, result.reason) == (Status.DOWN, "too many redirects (more than 10)")


async def test_max_redirects_is_the_number_of_redirects_that_may_be_followed(run, site):
    enough = await run(site.make_url("/chain/3"), max_redirects=3)
    too_few = await run(site.make_url("/chain/3"), max_redirects=2)
    none = await run(site.make_url("/chain/1"), max_redirects=0)
    assert (enough.status, enough.details["redirects"]) == (Status.UP, 3)
    assert too_few.reason == "too many redirects (more than 2)"
    assert none.reason == "too many redirects (more than 0)"


async def test_it_can_expect_the_redirect_itself(run, site):
    expected = await run(site.make_url("/moved"), follow_redirects=False, expect_status=(301,))
    unexpected = await run(site.make_url("/moved"), follow_redirects=False)
    assert (expected.status, expected.reason) == (Status.UP, "HTTP 301")
    assert (unexpected.status, unexpected.reason) == (Status.DOWN, "HTTP 301 (expected 2xx)")


# --- the request as configured, and what it measures ------------------------------------

async def test_it_sends_method_headers_and_body_as_configured(run, site):
    result = await run(site.make_url("/echo"), method="POST", body='{"order": 7}',
                       headers={"X-Token": "abc123", "Content-Type": "application/json"})
    assert result.status is Status.UP
    [received] = site.app[REQUESTS]
    assert received["method"] == "POST"
    assert received["body"] == '{"order": 7}'
    assert received["headers"]["X-Token"] == "abc123"
    assert received["headers"]["Content-Type"] == "application/json"
    assert received["headers"]["User-Agent"] == probe.checks.httpsession.USER_AGENT


async def test_it_reports_timing_phases_address_and_body_size(run, site):
    result = await run(site.make_url("/"))
    details = result.details
    assert details["address"] == "127.0.0.1"
    assert details["body_bytes"] == len("Welcome to the shop")
    assert details["redirects"] == 0
    assert 0 < details["connect_ms"] <= details["first_byte_ms"] <= details["total_ms"]
    assert result.latency_ms == pytest.approx(details["total_ms"], abs=0.01)
    assert "dns_ms" not in details  # an IP address is not looked up


async def test_it_times_name_resolution_done_by_the_system_resolver(system_resolver):
    result = system_resolver["http_by_name"]
    assert (result["status"], result["reason"]) == ("up", "HTTP 200"), result
    assert result["details"]["address"] == "127.0.0.1"
    assert 0 < result["details"]["dns_ms"] <= result["details"]["first_byte_ms"]
    assert ["udp", "shop.test.", "A"] in system_resolver["queries"]  # asked of the DNS server


async def test_it_reports_a_name_the_dns_server_does_not_know(system_resolver):
    """The DNS server answers NXDOMAIN; the words are the operating system's (glibc's)."""
    result = system_resolver["http_nxdomain"]
    assert (result["status"], result["reason"]) == ("down", "cannot resolve nowhere.test: Name or service not known")
    assert ["udp", "nowhere.test.", "A"] in system_resolver["queries"]


async def test_it_makes_its_own_session_when_run_without_one(site):
    result = await HttpCheck(HttpOptions(url=str(site.make_url("/")))).run(_context(None))
    assert result.status is Status.UP


# --- body size limit --------------------------------------------------------------------

async def test_it_stops_reading_an_endless_body_at_max_body_bytes(run, site):
    result = await run(site.make_url("/endless"), max_body_bytes=100_000)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert result.details["body_bytes"] == 100_000
    assert result.details["body_truncated"] is True


async def test_a_body_of_exactly_max_body_bytes_is_not_cut(run, site):
    result = await run(site.make_url("/bytes/1000"), max_body_bytes=1000, expect_text="x")
    assert result.status is Status.UP
    assert result.details["body_bytes"] == 1000
    assert "body_truncated" not in result.details


async def test_it_says_text_was_searched_only_in_the_part_it_read(run, site):
    result = await run(site.make_url("/endless"), max_body_bytes=100_000, expect_text="ok")
    assert result.reason == "expected text 'ok' not found in the first 100000 bytes"


async def test_it_refuses_to_judge_json_that_was_cut(run, site):
    result = await run(site.make_url("/json"), max_body_bytes=10, expect_json={"status": "ok"})
    assert result.status is Status.DOWN
    assert result.reason == "response body exceeds max_body_bytes (10 bytes); cannot check JSON"


# --- failures of the peer ---------------------------------------------------------------

async def test_it_reports_a_server_that_never_answers_as_timed_out(run):
    async with raw_server(silent) as port:
        started = time.perf_counter()
        result = await run(f"http://127.0.0.1:{port}/health", timeout=0.5)
        elapsed = time.perf_counter() - started
    assert result.status is Status.DOWN
    assert result.reason == f"timed out after 500ms while waiting for the response from http://127.0.0.1:{port}/health"
    assert "connect_ms" in result.details  # the phases that finished are kept
    assert elapsed < 0.5 + 2.0  # given up at its timeout (with room for a busy machine), not hung


async def test_a_timeout_while_reading_the_body_says_so(run):
    headers_only = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhalf a bo"
    async with raw_server(replying(headers_only, then_stall=True)) as port:
        result = await run(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert result.reason == f"timed out after 500ms while reading the body of http://127.0.0.1:{port}/"
    assert result.details["status_code"] == 200


async def test_it_reports_connection_refused(run):
    port = closed_port()
    result = await run(f"http://127.0.0.1:{port}/")
    assert (result.status, result.reason) == (Status.DOWN, f"connection refused by 127.0.0.1:{port}")


@pytest.mark.parametrize("reply, words", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", "got more than 8190 bytes"),
    (b"", "the server closed the connection"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "not enough data"),
])
async def test_it_reports_a_reply_that_is_not_valid_http_as_down(run, reply, words):
    async with raw_server(replying(reply)) as port:
        result = await run(f"http://127.0.0.1:{port}/")
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"invalid HTTP response from http://127.0.0.1:{port}/: ")
    assert words in result.reason.lower()
    assert "\n" not in result.reason


# --- TLS --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def trust_ca(ca, monkeypatch):
    """Make the check's verifying TLS context trust the test CA (and only it)."""
    trusted = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    ca.configure_trust(trusted)
    unverified = probe.checks.http.client_context(False)
    monkeypatch.setattr(probe.checks.http, "client_context", lambda verify: trusted if verify else unverified)


def _server_tls(ca: trustme.CA, **validity) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", **validity).configure_cert(context)
    return context


async def test_it_reports_https_with_a_valid_certificate_as_up(run, aiohttp_server, ca, trust_ca):
    server = await aiohttp_server(target_app(), ssl=_server_tls(ca))
    result = await run(server.make_url("/"))
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert result.details["cert_expires_ts"] > time.time() + 14 * 86400
    assert result.details["tls_version"].startswith("TLS")
    assert result.details["connect_ms"] > 0


async def test_it_reports_an_expired_certificate_as_down(run, aiohttp_server, ca, trust_ca):
    tls = _server_tls(ca, not_before=NOW - datetime.timedelta(days=30), not_after=NOW - datetime.timedelta(days=1))
    server = await aiohttp_server(target_app(), ssl=tls)
    result = await run(server.make_url("/"))
    assert result.status is Status.DOWN
    assert result.reason == f"TLS handshake with 127.0.0.1:{server.port} failed: certificate has expired"


async def test_it_reports_a_certificate_near_expiry_as_degraded(run, aiohttp_server, ca, trust_ca):
    tls = _server_tls(ca, not_after=NOW + datetime.timedelta(days=6, hours=1))
    server = await aiohttp_server(target_app(), ssl=tls)
    result = await run(server.make_url("/"))
    assert result.status is Status.DEGRADED
    assert result.reason == "TLS certificate expires in 6 days (threshold 14 days)"
    no_threshold = await run(server.make_url("/"), cert_expiry_days=None)
    assert no_threshold.status is Status.UP


async def test_it_rejects_a_certificate_from_an_unknown_ca(run, aiohttp_server, trust_ca):
    server = await aiohttp_server(target_app(), ssl=_server_tls(trustme.CA()))
    result = await run(server.make_url("/"))
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"TLS handshake with 127.0.0.1:{server.port} failed: certificate not trusted")


async def test_it_accepts_an_untrusted_certificate_when_verify_tls_is_off(run, aiohttp_server, trust_ca):
    server = await aiohttp_server(target_app(), ssl=_server_tls(trustme.CA()))
    result = await run(server.make_url("/"), verify_tls=False)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert "cert_expires_at" in result.details  # read from the raw certificate


async def test_an_expired_certificate_is_down_even_with_verify_tls_off(run, aiohttp_server, ca):
    # Every client that does verify is refused, so the service is down for them.
    tls = _server_tls(ca, not_before=NOW - datetime.timedelta(days=30), not_after=NOW - datetime.timedelta(days=3))
    server = await aiohttp_server(target_app(), ssl=tls)
    result = await run(server.make_url("/"), verify_tls=False, cert_expiry_days=None)
    assert (result.status, result.reason) == (Status.DOWN, "TLS certificate expired 3 days ago")


# --- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize("line, problem", [
    ('url = "ftp://x"', 'url must start with http:// or https:// (got "ftp://x")'),
    ('url = "http:///health"', 'url has no host name (got "http:///health")'),
    ('method = "GET /"', 'method must be an HTTP method such as "GET" or "POST" (got "GET /")'),
    ("expect_status = [700]", 'expect_status entries must be a status code (200), a class ("2xx") '
                              'or a range ("200-299") between 100 and 599 (got 700)'),
    ('expect_status = ["2xx", "299-200"]', 'expect_status entries must be a status code (200), a class ("2xx") '
                                           'or a range ("200-299") between 100 and 599 (got "299-200")'),
    ("expect_status = []", "expect_status must not be empty"),
    ('expect_regex = "(ok"', 'expect_regex is not a valid regular expression: '
                             'missing ), unterminated subpattern at position 0 (got "(ok")'),
    ('expect_json = { "a..b" = 1 }', 'expect_json."a..b" is not a JSON path '
                                     '(use names, dots and [n], e.g. "data.items[0].state")'),
    ('headers = { "X Bad" = "1" }', 'headers."X Bad" is not a valid header name'),
    ("max_redirects = -1", "max_redirects must be at least 0 (got -1)"),
    ("max_body_bytes = 0", "max_body_bytes must be greater than 0 (got 0)"),
    ("cert_expiry_days = -1", "cert_expiry_days must be at least 0 (got -1)"),
    ("cert_expiry_notify = [7, 0]", "cert_expiry_notify[1] must be at least 1 day (got 0)"),
    ("cert_expiry_notify = [14, 7, 14]", "cert_expiry_notify lists 14 more than once"),
    ("cert_expiry_notify = 7", "cert_expiry_notify must be a list (got 7)"),
    ('cert_expiry_notify = ["7d"]', 'cert_expiry_notify [0] must be an integer (got "7d")'),
])
def test_the_config_loader_rejects_bad_http_options(tmp_path, line, problem):
    url = "" if line.startswith("url") else 'url = "https://shop.example/health"\n'
    path = tmp_path / "cfg.toml"
    path.write_text(f'[[monitors]]\nid = "web"\ntype = "http"\n{url}{line}\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [f'cfg.toml: monitors[0] "web": {problem}']


def test_the_config_loader_accepts_a_full_http_monitor(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('[[monitors]]\nid = "web"\ntype = "http"\nurl = "https://shop.example/health"\n'
                    'method = "POST"\nexpect_status = [200, "3xx", "400-404"]\nexpect_regex = "^ok"\n'
                    'expect_json = { "$.data.items[0].state" = "up" }\nmax_redirects = 0\n')
    [monitor] = load_config(path).monitors
    assert monitor.options.expect_status == (200, "3xx", "400-404")
    assert isinstance(monitor.make_check(), HttpCheck)


# --- helpers ----------------------------------------------------------------------------

def _context(session) -> CheckContext:
    return CheckContext(timeout=1.0, progress=Progress(), http=session)
