"""Message words: the certificate expiry phrase in each language."""
from __future__ import annotations

import pytest

from probe.notifiers.text import expiry_text

DAY = 86400


@pytest.mark.parametrize("seconds, en, zh", [
    (10 * DAY + 3600, "TLS certificate expires in 10 days", "TLS 证书将在 10 天后过期"),
    (2 * DAY, "TLS certificate expires in 2 days", "TLS 证书将在 2 天后过期"),
    (1.9 * DAY, "TLS certificate expires in 1 day", "TLS 证书将在 1 天后过期"),
    (13 * 3600 - 5, "TLS certificate expires in 13 hours", "TLS 证书将在 13 小时后过期"),
    (5400, "TLS certificate expires in 2 hours", "TLS 证书将在 2 小时后过期"),
    (600, "TLS certificate expires in 1 hour", "TLS 证书将在 1 小时后过期"),
])
def test_the_time_left_is_whole_days_and_hours_on_the_last_day(seconds, en, zh):
    assert expiry_text(seconds, "en") == en
    assert expiry_text(seconds, "zh-CN") == zh
