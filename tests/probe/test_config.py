"""Config loading: the example loads; every broken file gets one precise line per mistake."""
from pathlib import Path

import pytest

from probe.config import ConfigError, load_config

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
    "invalid-unknown-type.toml": ['monitors[0] "ftp": type must be one of http | tcp | dns | icmp (got "ftp")'],
    "invalid-wrong-type.toml": ['monitors[0] "db": port must be an integer (got "5432")'],
    "invalid-zero-threshold.toml": ['monitors[0] "web": failure_threshold must be at least 1 (got 0)'],
}


def test_every_broken_config_in_the_corpus_has_its_expected_message():
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("invalid-*.toml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_config_is_answered_with_precise_lines(name):
    with pytest.raises(ConfigError) as caught:
        load_config(CORPUS / name)
    assert caught.value.problems == [f"{name}: {line}" for line in EXPECTED[name]]


def test_the_example_config_loads_with_a_monitor_of_every_type():
    import checks

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
