"""[cluster] What the locations' checks of one monitor confirm together, told as rounds: each
location reports its result of a slot, and the round is decided once all live ones have, or at
its deadline."""
from probe.core.models import ResultRecord, Status
from probe.engine.confirmation import GRACE_MS, Confirmation, Rule

UP, DEG, DOWN = Status.UP, Status.DEGRADED, Status.DOWN
INTERVAL, TIMEOUT = 10_000, 2_000
NAMES = {"a": "Alpha", "b": "Bravo", "c": "Charlie"}


def confirmation(confirm=2, locations=("a", "b", "c")):
    c = Confirmation(NAMES)
    c.configure({"web": Rule(locations, confirm, INTERVAL, TIMEOUT)})
    return c


def report(c, slot, location, status, decide=True, latency=5.0):
    c.seen(ResultRecord("web", slot + 10, slot, status, f"{status.label} here", latency, location=location),
           decide=decide)


def test_one_location_failing_out_of_three_with_confirm_2_is_up_and_names_no_one():
    c = confirmation()
    for location, status in zip("abc", (DOWN, UP, UP)):
        report(c, INTERVAL, location, status)
    (decided,) = c.ready(INTERVAL + 100, live="abc")
    assert decided.status is UP and decided.location == "" and decided.details == {}


def test_two_locations_failing_with_confirm_2_is_down_from_both_by_name():
    c = confirmation()
    for location, status in zip("abc", (DOWN, DOWN, UP)):
        report(c, INTERVAL, location, status)
    (decided,) = c.ready(INTERVAL + 100, live="abc")
    assert decided.status is DOWN
    assert decided.reason == "down here (from Alpha and Bravo)"
    assert decided.details == {"locations": {"a": "down", "b": "down", "c": "up"}}


def test_with_confirm_1_one_failing_location_is_enough():
    c = confirmation(confirm=1)
    for location, status in zip("abc", (UP, UP, DOWN)):
        report(c, INTERVAL, location, status)
    assert [r.status for r in c.ready(INTERVAL + 100, live="abc")] == [DOWN]


def test_a_round_waits_for_every_live_location_until_its_deadline():
    c = confirmation()
    report(c, INTERVAL, "a", DOWN)
    report(c, INTERVAL, "b", DOWN)
    assert c.ready(INTERVAL + 100, live="abc") == []  # c is alive: its result is awaited
    (decided,) = c.ready(INTERVAL + TIMEOUT + GRACE_MS, live="abc")
    assert decided.status is DOWN


def test_a_location_without_a_recent_result_is_no_data_and_never_counts_as_up():
    c = confirmation()
    report(c, INTERVAL, "a", UP)  # a's last word, long ago
    slot = 10 * INTERVAL
    report(c, slot, "b", DOWN)
    *_, decided = c.ready(slot + TIMEOUT + GRACE_MS, live="b")
    # with a silent, c never heard: b alone is all there is to go by
    assert decided.status is DOWN
    assert decided.details["locations"] == {"a": "no data", "b": "down", "c": "no data"}


def test_each_round_is_decided_once_and_in_order():
    c = confirmation()
    for slot in (INTERVAL, 2 * INTERVAL):
        for location in "abc":
            report(c, slot, location, DOWN)
    assert [r.scheduled_ms for r in c.ready(3 * INTERVAL, live="abc")] == [INTERVAL, 2 * INTERVAL]
    assert c.ready(3 * INTERVAL, live="abc") == []
    c.decided("web", 2 * INTERVAL)
    report(c, 2 * INTERVAL, "a", UP)  # late, for a round already decided (by a former leader)
    assert c.ready(4 * INTERVAL, live="abc") == []


def test_an_instance_that_does_not_lead_keeps_each_locations_newest_but_no_rounds():
    c = confirmation()
    for location in "abc":
        report(c, INTERVAL, location, DOWN, decide=False)
    assert c.ready(10 * INTERVAL, live="abc") == []
    assert {loc: r.status for loc, r in c.latest("web").items()} == {"a": DOWN, "b": DOWN, "c": DOWN}
