"""The incident state machine, told as stories: results in, transitions out."""
from itertools import count

from probe.core.models import EventKind, Impact, ResultRecord, Status
from probe.engine.incidents import Rules, Tracker, step

UP, DEG, DOWN = Status.UP, Status.DEGRADED, Status.DOWN
MIN = 60_000


class Story:
    """Feed one monitor's results at one-minute steps and keep what happened."""

    def __init__(self, **rules):
        self.tracker = Tracker()
        self.rules = Rules(**rules)
        self.ids = count(1)
        self.t = 0
        self.transitions = []

    def then(self, *statuses, maintenance=False):
        for status in statuses:
            self.t += MIN
            record = ResultRecord("web", self.t, self.t, status, f"reason {self.t}", in_maintenance=maintenance)
            self.transitions += step(self.tracker, record, self.rules, lambda: next(self.ids))
        return self

    def kinds(self):
        return [t.kind for t in self.transitions]


def test_it_opens_an_incident_after_two_failures_starting_at_the_first():
    story = Story(failure_threshold=2).then(UP, DOWN)
    assert story.transitions == []
    story.then(DOWN)
    assert story.kinds() == [EventKind.OPENED]
    incident = story.transitions[0].incident
    assert incident.started_ms == 2 * MIN  # the first failing check
    assert incident.impact is Impact.MAJOR
    assert incident.is_open


def test_a_single_failure_below_the_threshold_opens_nothing():
    assert Story(failure_threshold=3).then(DOWN, DOWN, UP, DOWN, DOWN, UP).transitions == []


def test_it_resolves_after_success_threshold_at_the_first_good_check():
    story = Story(failure_threshold=2, success_threshold=2).then(DOWN, DOWN, UP)
    assert story.kinds() == [EventKind.OPENED]
    story.then(UP)
    assert story.kinds() == [EventKind.OPENED, EventKind.RESOLVED]
    resolved = story.transitions[-1].incident
    assert resolved.resolved_ms == 3 * MIN
    assert resolved.status == "resolved"
    assert story.tracker.open is None


def test_a_good_check_in_between_restarts_the_success_count():
    story = Story(failure_threshold=1, success_threshold=2).then(DOWN, UP, DOWN, UP)
    assert story.kinds() == [EventKind.OPENED]


def test_degraded_opens_a_minor_incident_and_down_escalates_it():
    story = Story(failure_threshold=2).then(DEG, DEG)
    assert story.kinds() == [EventKind.OPENED]
    assert story.transitions[0].incident.impact is Impact.MINOR
    story.then(DOWN)
    assert story.kinds() == [EventKind.OPENED]  # one down check is not yet an escalation
    story.then(DOWN)
    assert story.kinds() == [EventKind.OPENED, EventKind.ESCALATED]
    escalated = story.transitions[-1].incident
    assert escalated.impact is Impact.MAJOR
    assert escalated.id == story.transitions[0].incident.id  # the same incident, not a second one


def test_a_major_incident_stays_major_when_the_monitor_only_improves_to_degraded():
    story = Story(failure_threshold=1).then(DOWN, DEG, DEG)
    assert story.kinds() == [EventKind.OPENED]
    assert story.tracker.open.impact is Impact.MAJOR


def test_a_flapping_monitor_reopens_its_incident_instead_of_opening_new_ones():
    story = Story(failure_threshold=2, reopen_window_ms=5 * MIN)
    story.then(DOWN, DOWN, UP, DOWN, DOWN, UP, DOWN, DOWN)
    assert story.kinds() == [EventKind.OPENED, EventKind.RESOLVED, EventKind.REOPENED,
                             EventKind.RESOLVED, EventKind.REOPENED]
    assert len({t.incident.id for t in story.transitions}) == 1
    assert story.tracker.open.started_ms == 1 * MIN  # the original start is kept


def test_a_failure_long_after_the_resolve_opens_a_new_incident():
    story = Story(failure_threshold=1, reopen_window_ms=5 * MIN).then(DOWN, UP, UP, UP, UP, UP, UP, DOWN)
    assert story.kinds() == [EventKind.OPENED, EventKind.RESOLVED, EventKind.OPENED]
    assert story.transitions[0].incident.id != story.transitions[2].incident.id


def test_failures_during_maintenance_open_nothing():
    story = Story(failure_threshold=2).then(DOWN, DOWN, DOWN, maintenance=True)
    assert story.transitions == []
    story.then(DOWN)  # maintenance over: the count starts afresh
    assert story.transitions == []
    story.then(DOWN)
    assert story.kinds() == [EventKind.OPENED]
    assert story.tracker.open.started_ms == 4 * MIN


def test_the_incident_carries_the_reason_of_the_check_that_opened_it():
    story = Story(failure_threshold=2).then(DOWN, DOWN)
    assert story.tracker.open.reason == f"reason {2 * MIN}"
