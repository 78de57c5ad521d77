"""[[notifiers]] in the config: every mistake named by notifier and key."""
from __future__ import annotations

import pytest

from probe.config.loader import ConfigError, load_config


def problems_of(write_config, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text))
    return caught.value.problems


def test_a_full_notifier_section_loads(write_config, monkeypatch):
    monkeypatch.setenv("DINGTALK_TOKEN", "tok123")
    monkeypatch.setenv("DINGTALK_SECRET", "SECabcdef")
    config = load_config(write_config("""
        [[notifiers]]
        id = "ops-dingtalk"
        type = "dingtalk"
        url = "https://oapi.dingtalk.com/robot/send?access_token=${DINGTALK_TOKEN}"
        secret = "${DINGTALK_SECRET}"
        events = ["open", "resolve"]
        min_impact = "major"
        [[notifiers]]
        id = "oncall-mail"
        type = "email"
        host = "smtp.example.com"
        from = "probe@example.com"
        to = ["oncall@example.com"]
        [defaults]
        notify = ["ops-dingtalk"]
        [[monitors]]
        id = "web"
        type = "tcp"
        host = "127.0.0.1"
        port = 80
        [[monitors]]
        id = "db"
        type = "tcp"
        host = "127.0.0.1"
        port = 5432
        notify = ["ops-dingtalk", "oncall-mail"]
    """))
    ding, mail = config.notifiers
    assert ding.options.url.endswith("access_token=tok123") and ding.options.secret == "SECabcdef"
    assert ding.settings.events == ("open", "resolve") and ding.settings.min_impact == "major"
    assert mail.options.from_ == "probe@example.com" and mail.options.mode == "starttls"
    assert config.monitor("web").notify == ("ops-dingtalk",)
    assert config.monitor("db").notify == ("ops-dingtalk", "oncall-mail")
    assert "SECabcdef" not in repr(config)  # secrets stay out of reprs and logs


def test_mistakes_name_the_file_the_notifier_and_the_key(write_config):
    lines = problems_of(write_config, """
        [[notifiers]]
        id = "a"
        type = "dingtalk"
        [[notifiers]]
        id = "b"
        type = "slack"
        url = "hooks.slack.com/x"
        [[notifiers]]
        id = "c"
        type = "pager"
        [[notifiers]]
        id = "d"
        type = "webhook"
        url = "http://127.0.0.1/"
        evnets = ["open"]
        [[notifiers]]
        id = "e"
        type = "webhook"
        url = "http://127.0.0.1/"
        events = ["opened"]
        min_impact = "huge"
        [[notifiers]]
        id = "z"
        type = "webhook"
        url = "http://127.0.0.1/"
        [[notifiers]]
        id = "z"
        type = "ntfy"
        topic = "t"
    """)
    text = "\n".join(lines)
    assert 'cfg.toml: notifiers[0] "a": url is required' in text
    assert 'notifiers[1] "b": url must be an http:// or https:// URL (got "hooks.slack.com/x")' in text
    assert 'notifiers[2] "c": type must be one of email | webhook | dingtalk' in text
    assert 'notifiers[3] "d": unknown key "evnets" (did you mean "events"?)' in text
    assert 'notifiers[4] "e": events' in text and '"opened"' in text
    assert 'notifiers[4] "e": min_impact must be' in text
    assert 'notifiers[6] "z": id "z" is already used by notifiers[5]' in text


def test_an_unset_secret_variable_is_named_not_printed(write_config):
    lines = problems_of(write_config, """
        [[notifiers]]
        id = "tg"
        type = "telegram"
        token = "${PROBE_NO_SUCH_VARIABLE}"
        chat_id = "1"
    """)
    assert any('notifiers[0] "tg": token uses ${PROBE_NO_SUCH_VARIABLE}, but the environment variable'
               in line for line in lines)


def test_an_unknown_notify_id_is_a_config_error(write_config):
    lines = problems_of(write_config, """
        [[monitors]]
        id = "web"
        type = "tcp"
        host = "127.0.0.1"
        port = 80
        notify = ["nobody"]
    """)
    assert any('monitors[0] "web": notify names no [[notifiers]] entry (got "nobody")' in line for line in lines)


def test_email_keys_are_checked_together(write_config):
    lines = problems_of(write_config, """
        [[notifiers]]
        id = "m"
        type = "email"
        host = "smtp.example.com"
        from = "a@example.com"
        to = []
        username = "me"
        mode = "ssl"
    """)
    text = "\n".join(lines)
    assert 'notifiers[0] "m": mode must be' in text
