"""Config loading: the example loads; every broken file gets one precise line per mistake."""
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli.main import main
from probe.config.loader import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "config"

# Each invalid-*.toml beside the exact lines it must produce (blackbox_exporter's habit).
EXPECTED = {
    "invalid-bad-duration.toml": ['monitors[0] "web": interval must be a duration such as "500ms", "30s", '
                                  '"5m", "1h" or "7d" (got "1 minute")'],
    "invalid-bad-id.toml": ['monitors[0] "Web Site": id must match [a-z0-9][a-z0-9_-]* (got "Web Site")'],
    "invalid-bool.toml": ['monitors[0] "db": tls must be true or false (got "yes")'],
    "invalid-defaults-key.toml": ['defaults: "id" cannot have a default',
                                  'defaults: unknown key "intervall" (did you mean "interval"?)'],
    "invalid-duplicate-id.toml": ['monitors[1] "web": id "web" is already used by monitors[0]'],
    # Once, at defaults; a monitor that sets the same wrong value itself is told so itself.
    "invalid-defaults-value.toml": ['defaults: failure_threshold must be at least 1 (got 0)',
                                    'defaults: interval must be greater than 0 (got 0ms)',
                                    'monitors[2] "api": failure_threshold must be at least 1 (got 0)'],
    # No "names no [[monitors]] entry" or "names no [[notifiers]] entry" for entries that exist but are wrong.
    "invalid-no-cascade.toml": ['monitors[0] "db": port must be between 1 and 65535 (got 99999)',
                                'notifiers[0] "hook": url must be an http:// or https:// URL (got "ftp://example.com/hook")'],
    "invalid-defaults-cert-expiry-notify.toml": [
        'defaults: cert_expiry_notify must be a list (got 14)',
        'monitors[0] "mail": cert_expiry_notify[0] must be at least 1 day (got -3)'],
    "invalid-env-missing.toml": ['monitors[0] "web": url uses ${PROBE_TEST_UNSET_TOKEN}, but the environment '
                                 'variable PROBE_TEST_UNSET_TOKEN is not set'],
    "invalid-key-of-other-type.toml": ['monitors[0] "db": unknown key "url" for type "tcp" '
                                       '(it is a key of http monitors)'],
    "invalid-subscribers.toml": ['subscribers.webhooks[0] "partner": url must be an http:// or https:// URL '
                                 '(got "ftp://partner.example.com")',
                                 'subscribers.webhooks[1] "other": groups names no monitor group (got "Pubic")',
                                 'subscribers: confirm_within must be between 5m and 30d',
                                 'subscribers: email_via must name an [[notifiers]] entry of type "email" (got "hook")',
                                 'subscribers: email_via needs [page] url: the links in subscriber mail point there'],
    "invalid-language.toml": ['page: language must be one of "en", "zh-CN" (got "fr")'],
    "invalid-listen.toml": ['server: listen must be "host:port", e.g. "127.0.0.1:8080" (got "8080")'],
    "invalid-missing-required.toml": ['monitors[0] "db": port is required'],
    "invalid-missing-type.toml": ['monitors[0] "web": type is required'],
    "invalid-monitors-not-array.toml": ["monitors must be an array of tables ([[monitors]])"],
    "invalid-port-range.toml": ['monitors[0] "db": port must be between 1 and 65535 (got 70000)'],
    "invalid-retention.toml": ["storage: raw_retention must be at least 2d (got 1h)",
                               "storage: rollup_retention must be at least 400d (got 90d)"],
    "invalid-syntax.toml": ["not valid TOML: Illegal character '\\n' (at line 2, column 10)"],
    "invalid-timeout-not-shorter.toml": ['monitors[3] "api": timeout must be shorter than interval '
                                         '(got 90s ≥ 60s)'],
    "invalid-timezone.toml": ['page: timezone must be an IANA time zone such as "Europe/Berlin" '
                              '(got "Mars/Olympus_Mons")'],
    "invalid-unknown-monitor-key.toml": ['monitors[0] "web": unknown key "timout" (did you mean "timeout"?) '
                                         'for type "http"'],
    "invalid-unknown-top-level.toml": ['unknown key "sever" (did you mean "server"?) at the top level'],
    "invalid-unknown-type.toml": ['monitors[0] "ftp": type must be one of http | tcp | dns | icmp | push (got "ftp")'],
    "invalid-wrong-type.toml": ['monitors[0] "db": port must be an integer (got "5432")'],
    "invalid-zero-threshold.toml": ['monitors[0] "web": failure_threshold must be at least 1 (got 0)'],
    # --- what real users get wrong: typos, pasted text, editors, wrong kinds of value -----------
    "invalid-bad-host.toml": ['monitors[0] "db": host must be a host name or IP address (got "db.example .com")'],
    "invalid-bad-ip.toml": ['monitors[0] "gw": host is not a valid IPv4 address (got "192.168.1.300")'],
    "invalid-bad-regex.toml": ['monitors[0] "web": expect_regex is not a valid regular expression: missing ), '
                               'unterminated subpattern at position 9 (got "version: (\\d+")'],
    "invalid-bad-utf8.toml": ["not valid UTF-8 at line 3, column 13 (byte 0xe9); save the file as UTF-8"],
    "invalid-dns-record-type.toml": ['monitors[0] "dns": record_type must be one of "A", "AAAA", "CNAME", "MX", '
                                     '"TXT", "NS", "SOA", "SRV", "CAA", "PTR" (got "AAA")'],
    "invalid-dns-server.toml": ['monitors[0] "dns": server must be "host[:port]", e.g. "192.0.2.53", '
                                '"ns1.example.com:5353" or "[2001:db8::53]:53" (got "300.1.1.1:53")'],
    "invalid-duplicate-notifier.toml": ['notifiers[1] "hook": id "hook" is already used by notifiers[0]'],
    "invalid-empty-id.toml": ['monitors[0] "": id must match [a-z0-9][a-z0-9_-]* (got "")'],
    "invalid-env-syntax.toml": ['monitors[0] "web": url has "${" without a variable name and a closing "}" '
                                '(write "$$" for a literal "$")'],
    "invalid-float-threshold.toml": ['monitors[0] "web": failure_threshold must be an integer (got 2.5)'],
    "invalid-header-newline.toml": ['monitors[0] "web": headers."X-Token" must not contain line breaks'],
    "invalid-host-with-port.toml": ['monitors[0] "db": host must be a host name or IP address without a port; '
                                    'put the port in `port` (got "db.example.com:5432")'],
    "invalid-huge-interval.toml": ['monitors[0] "web": interval must be at most 36500d (got "99999999999d")'],
    "invalid-infinite-timeout.toml": ['monitors[0] "web": timeout must be a finite number of seconds (got inf)'],
    "invalid-list-element-type.toml": ['monitors[0] "web": expect_status [1] must be an integer or a string '
                                       '(got true)'],
    "invalid-maintenance-cron.toml": ['maintenance[0] "patch": cron is not a cron schedule '
                                      '(Invalid weekday name "sunday") (got "0 2 * * sunday-ish")'],
    "invalid-maintenance-end-before-start.toml": ['maintenance[0] "patch": end must be after start'],
    "invalid-maintenance-unknown-monitor.toml": ['maintenance[0] "patch": monitors names no [[monitors]] entry '
                                                 '(got "website")'],
    "invalid-method.toml": ['monitors[0] "web": method must be an HTTP method such as "GET" or "POST" '
                            '(got "GET /health")'],
    "invalid-negative-interval.toml": ['monitors[0] "web": interval must not be negative (got "-30s")'],
    "invalid-notifier-type.toml": ['notifiers[0] "oncall": type must be one of email | webhook | dingtalk | '
                                   'feishu | lark | wecom | slack | discord | teams | telegram | ntfy | gotify | '
                                   'pagerduty (got "victorops")'],
    "invalid-email-address.toml": ['notifiers[0] "mail": to must be an email address: An email address cannot '
                                   'end with a period. (got "oncall@example.com.")'],
    "invalid-embed-from.toml": ['page: embed_from must list origins such as "https://intranet.example.com" '
                                '(got "https://intranet.example.com/path")'],
    "invalid-trusted-proxies.toml": ['server: trusted_proxies must list IP addresses or networks such as '
                                     '"10.0.0.0/8" (got "proxy.internal")'],
    "invalid-notifier-url.toml": ['notifiers[0] "hook": url must be an http:// or https:// URL '
                                  '(got "hooks.example.com/probe")'],
    "invalid-notify-not-list.toml": ['monitors[0] "web": notify must be a list (got "hook")'],
    "invalid-page-link.toml": ['page: link must be an http:// or https:// URL or a path such as "/" '
                               '(got "javascript:alert(document.cookie)")'],
    "invalid-page-logo.toml": ['page: logo must be an http:// or https:// URL, a path such as "/logo.png" or a '
                               'data:image/ URL (got "javascript:alert(1)")'],
    "invalid-port-zero.toml": ['monitors[0] "db": port must be between 1 and 65535 (got 0)'],
    "invalid-section-twice.toml": ["not valid TOML: Cannot declare ('server',) twice (at line 4, column 8)"],
    "invalid-smart-quotes.toml": ["not valid TOML: Invalid value (at line 5, column 8); the line has typographic "
                                  "quotes (“ ” ‘ ’): TOML strings need straight ones (\" or ')"],
    "invalid-unknown-notifier.toml": ['monitors[0] "web": notify names no [[notifiers]] entry (got "ops-email")'],
    "invalid-url-host.toml": ['monitors[0] "shop": url has a host that is neither a host name nor an IP address '
                              '(got "https://shop example.com/")'],
    "invalid-url-no-scheme.toml": ['monitors[0] "shop": url must start with http:// or https:// '
                                   '(got "shop.example.com/health")'],
    "invalid-url-port.toml": ['monitors[0] "shop": url is not a valid URL: Port out of range 0-65535 '
                              '(got "https://shop.example.com:99999/")'],
    "invalid-url-scheme.toml": ['monitors[0] "shop": url must start with http:// or https:// '
                                '(got "htps://shop.example.com/")'],
    # --- [cluster]: several instances on one PostgreSQL ----------------------------------------
    "invalid-cluster-sqlite.toml": ['cluster needs PostgreSQL storage ([storage] url = "postgresql://..."): several '
                                    'instances share one database, and a SQLite file serves one process'],
    "invalid-cluster-locations.toml": ['defaults: locations must name locations of [cluster] (fra, sgp) (got "iad")',
                                       'monitors[1] "api": confirm must be at most the number of its locations, 1 '
                                       '(got 2)'],
    "invalid-cluster-location.toml": ['cluster: instance must be a name of letters, digits, \'.\', \'_\' or \'-\' '
                                      '(at most 63), e.g. "fra-1" (got "fra 1")',
                                      'cluster: location must be one of locations (fra, sgp) (got "FRA")',
                                      'cluster: heartbeat must be at least 100ms (got 0ms)'],
    "invalid-locations-without-cluster.toml": [
        'defaults: confirm needs a [cluster] section (several instances checking from several locations)',
        'monitors[0] "web": locations needs a [cluster] section (several instances checking from several locations)'],
    "invalid-source-address.toml": ['monitors[0] "web": source_address must be an IP address of this host, e.g. '
                                    '"192.0.2.10" (got "eth0")'],
}
# The ones most likely to escape as an exception, run as a real `probe validate` process.
AS_A_PROCESS = ["invalid-bad-utf8.toml", "invalid-infinite-timeout.toml", "invalid-smart-quotes.toml",
                "invalid-syntax.toml", "invalid-env-syntax.toml", "invalid-huge-interval.toml"]


def test_every_broken_config_in_the_corpus_has_its_expected_message():
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("invalid-*.toml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_config_is_answered_with_precise_lines(name):
    with pytest.raises(ConfigError) as caught:
        load_config(CORPUS / name)
    assert caught.value.problems == [f"{name}: {line}" for line in EXPECTED[name]]


def test_the_corpus_holds_at_least_30_distinct_mistakes():
    assert len(EXPECTED) >= 30
    assert len({line for lines in EXPECTED.values() for line in lines}) >= len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_validate_prints_the_lines_and_exits_2_without_a_traceback(name, capsys):
    assert main(["validate", "-c", str(CORPUS / name)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"{name}: {line}" for line in EXPECTED[name]]
    assert "Traceback" not in out + err


@pytest.mark.parametrize("name", AS_A_PROCESS)
def test_probe_validate_as_a_process_exits_2_with_one_line_per_problem(name):
    done = subprocess.run([sys.executable, "-m", "probe", "validate", "-c", str(CORPUS / name)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"{name}: {line}" for line in EXPECTED[name]]


def test_a_file_saved_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (CORPUS.parent.parent / "config.example.toml").read_bytes())
    assert load_config(path).page.title == "Acme Status"


def test_the_example_config_loads_with_a_monitor_of_every_type():
    from probe import checks

    config = load_config(ROOT / "config.example.toml")
    assert {m.type for m in config.monitors} == set(checks.REGISTRY)
    assert config.page.title == "Acme Status"


def test_defaults_apply_to_every_monitor_unless_it_overrides_them(write_config):
    config = load_config(write_config("""
        [defaults]
        interval = "30s"
        timeout = "5s"
        verify_tls = false        # an http key: ignored by the tcp monitor
        [[monitors]]
        id = "a"
        type = "http"
        url = "https://127.0.0.1/"
        [[monitors]]
        id = "b"
        type = "tcp"
        host = "127.0.0.1"
        port = 22
        interval = "2m"
    """))
    a, b = config.monitors
    assert (a.interval, a.timeout, a.options.verify_tls) == (30, 5, False)
    assert (b.interval, b.timeout) == (120, 5)
    assert a.display_name == "a" and a.failure_threshold == 2


def test_cert_expiry_notify_comes_from_defaults_for_http_and_tcp_and_a_monitor_may_override_it(write_config):
    config = load_config(write_config("""
        [defaults]
        cert_expiry_notify = [30, 7]
        [[monitors]]
        id = "web"
        type = "http"
        url = "https://127.0.0.1/"
        [[monitors]]
        id = "mail"
        type = "tcp"
        host = "127.0.0.1"
        port = 465
        tls = true
        cert_expiry_notify = []
        [[monitors]]
        id = "dns"
        type = "dns"
        query = "example.com"
    """))
    web, mail, dns = config.monitors
    assert web.options.cert_expiry_notify == (30, 7)
    assert mail.options.cert_expiry_notify == ()
    assert not hasattr(dns.options, "cert_expiry_notify")  # not a key of dns monitors, and no error


def test_cert_expiry_notify_defaults_to_14_7_and_1_days(write_config):
    (monitor,) = load_config(write_config("""
        [[monitors]]
        id = "web"
        type = "http"
        url = "https://127.0.0.1/"
    """)).monitors
    assert monitor.options.cert_expiry_notify == (14, 7, 1)


def test_environment_variables_expand_and_double_dollar_stays_a_dollar(write_config, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_TOKEN", "s3cr3t")
    config = load_config(write_config("""
        [[monitors]]
        id = "a"
        type = "http"
        url = "https://127.0.0.1/?token=${PROBE_TEST_TOKEN}&price=$$5"
        headers = { Authorization = "Bearer ${PROBE_TEST_TOKEN}" }
    """))
    options = config.monitors[0].options
    assert options.url == "https://127.0.0.1/?token=s3cr3t&price=$5"
    assert options.headers == {"Authorization": "Bearer s3cr3t"}


def test_a_secret_is_never_echoed_in_an_error(write_config, monkeypatch):
    monkeypatch.setenv("PROBE_TEST_TOKEN", "s3cr3t")
    with pytest.raises(ConfigError) as caught:
        load_config(write_config("""
            [[monitors]]
            id = "a"
            type = "http"
            url = "ftp://${PROBE_TEST_TOKEN}@127.0.0.1/"
        """))
    assert "s3cr3t" not in str(caught.value)
    assert "${PROBE_TEST_TOKEN}" in str(caught.value)


def test_the_database_path_is_relative_to_the_config_file(write_config, tmp_path):
    config = load_config(write_config("""
        [storage]
        path = "data/probe.db"
    """))
    assert config.database_path == tmp_path / "data" / "probe.db"


def test_all_problems_are_reported_at_once(write_config):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config("""
            [server]
            listen = "nope"
            [[monitors]]
            id = "a"
            type = "tcp"
            host = "127.0.0.1"
            port = 0
            [[monitors]]
            id = "b"
            type = "icmp"
        """))
    assert len(caught.value.problems) == 3


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    (line,) = caught.value.problems
    assert line.endswith("nope.toml: cannot read: No such file or directory")


def test_a_monitor_may_only_notify_channels_that_exist(write_config):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config("""
            [[monitors]]
            id = "web"
            type = "tcp"
            host = "127.0.0.1"
            port = 80
            notify = ["nobody"]
        """))
    assert caught.value.problems == ['cfg.toml: monitors[0] "web": notify names no [[notifiers]] entry (got "nobody")']


CLUSTER = """
    [storage]
    url = "postgresql://probe@db.internal/probe"
    [cluster]
    instance = "${PROBE_TEST_INSTANCE}"
    location = "${PROBE_TEST_LOCATION}"
    locations = { fra = "Frankfurt", sgp = "Singapore", iad = "Ashburn" }
    [defaults]
    source_address = "${PROBE_TEST_SOURCE}"
    [[monitors]]
    id = "web"
    type = "http"
    url = "https://example.com/"
    [[monitors]]
    id = "api"
    type = "http"
    url = "https://api.example.com/"
    locations = ["fra", "sgp"]
    confirm = 1
"""


def test_one_cluster_config_serves_every_instance_through_the_environment(write_config, monkeypatch):
    from probe.config import schema
    from probe.config.cluster import confirm_needed, monitor_locations
    monkeypatch.setattr(schema, "_expanded", {})  # values seen in ${...} are hidden in later messages: not the corpus's
    path = write_config(CLUSTER)
    seen = []
    for instance, location, source in (("fra-1", "fra", "127.0.0.2"), ("sgp-1", "sgp", "127.0.0.3")):
        monkeypatch.setenv("PROBE_TEST_INSTANCE", instance)
        monkeypatch.setenv("PROBE_TEST_LOCATION", location)
        monkeypatch.setenv("PROBE_TEST_SOURCE", source)
        config = load_config(path)
        web, api = config.monitors
        seen.append((config.cluster.instance, config.cluster.location, web.source_address))
        assert config.cluster.names == {"fra": "Frankfurt", "sgp": "Singapore", "iad": "Ashburn"}
        assert config.cluster.heartbeat == 2.0
        # every location and a majority of them by default; the monitor's own otherwise
        assert (monitor_locations(web, config.cluster), confirm_needed(web, config.cluster)) == (
            ("fra", "sgp", "iad"), 2)
        assert (monitor_locations(api, config.cluster), confirm_needed(api, config.cluster)) == (("fra", "sgp"), 1)
    assert seen == [("fra-1", "fra", "127.0.0.2"), ("sgp-1", "sgp", "127.0.0.3")]


def test_locations_may_be_a_list_of_ids_shown_as_they_are(write_config):
    config = load_config(write_config("""
        [storage]
        url = "postgresql://probe@db.internal/probe"
        [cluster]
        instance = "a-1"
        location = "a"
        locations = ["a", "b", "c", "d"]
        heartbeat = "500ms"
        [[monitors]]
        id = "web"
        type = "http"
        url = "https://example.com/"
    """))
    assert config.cluster.names == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert config.cluster.heartbeat == 0.5
    from probe.config.cluster import confirm_needed
    assert confirm_needed(config.monitors[0], config.cluster) == 3  # a majority of four


def test_without_a_cluster_section_a_config_is_what_it_was(write_config):
    config = load_config(CORPUS.parent.parent / "config.example.toml")
    assert config.cluster is None
    assert all(m.locations == () and m.confirm is None and m.source_address == "" for m in config.monitors)


def test_a_source_address_needs_no_cluster(write_config):
    config = load_config(write_config("""
        [[monitors]]
        id = "db"
        type = "tcp"
        host = "127.0.0.1"
        port = 5432
        source_address = "127.0.0.2"
    """))
    assert config.cluster is None and config.monitors[0].source_address == "127.0.0.2"
