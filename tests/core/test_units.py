import pytest

from probe.core.units import format_duration, format_elapsed, parse_duration
from probe.view.stats import format_availability


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604800), ("1h30m", 5400),
    ("2w", 1209600), (45, 45), (0.25, 0.25), (" 10s ", 10),
])
def test_it_parses_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "10 s", "1x", "-5s", "s", True, [], -1])
def test_it_rejects_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("seconds, text", [
    (0.5, "500ms"), (60, "60s"), (90, "90s"), (300, "5m"), (3600, "1h"), (86400 * 30, "30d"), (1.5, "1.5s"),
])
def test_it_formats_durations_shortest_first(seconds, text):
    assert format_duration(seconds) == text


def test_it_formats_elapsed_time_for_people():
    assert format_elapsed(42) == "42s"
    assert format_elapsed(270) == "4m 30s"
    assert format_elapsed(2 * 3600 + 5 * 60 + 7) == "2h 5m"


@pytest.mark.parametrize("value, downtime, text", [
    (1 - 600 / 86400, 600_000, "99.31%"),  # 10 minutes down in a day
    (0.99996, 1, "99.99%"),  # never rounded up to 100.00 while there was downtime
    (1.0, 0, "100.00%"),
    (0.9995, 1, "99.95%"),
    (0.0, 1, "0.00%"),
    (None, 0, "no data"),
])
def test_it_formats_availability_honestly(value, downtime, text):
    assert format_availability(value, downtime) == text
