"""Dependencies told as stories: a router, the database behind it, the services behind that.
Results go through the real incident engine (ids from a real store); every check is a minute."""
import pytest

from probe.config.loader import load_config
from probe.core.models import EventKind, ResultRecord, Status
from probe.engine.dependencies import Dependencies
from probe.engine.incidents import IncidentEngine

UP, DOWN = Status.UP, Status.DOWN
MIN = 60_000


def monitor(monitor_id, depends_on=(), extra=""):
    deps = ", ".join(f'"{d}"' for d in depends_on)
    return f'[[monitors]]\nid = "{monitor_id}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1\n' \
           f'depends_on = [{deps}]\n{extra}\n'


class Network:
    """router <- db <- api, web; results fed at whole minutes."""

    def __init__(self, store, write_config, extra=""):
        self.config = load_config(write_config(
            "[defaults]\nfailure_threshold = 2\n" + monitor("router", extra=extra) + monitor("db", ["router"])
            + monitor("api", ["db"]) + monitor("web", ["db"])))
        self.engine = IncidentEngine(store)
        self.engine.configure(self.config.monitors)
        self.events = []

    def at(self, minute, **statuses):
        """Results of one minute, in the order given (a monitor's check may come before another's)."""
        for offset, (monitor_id, status) in enumerate(statuses.items()):
            ts = minute * MIN + offset
            record = ResultRecord(monitor_id, ts, ts, status, f"{monitor_id} {status.label} at {minute}")
            self.events += self.engine.observe(self.config.monitor(monitor_id).settings, record)
        return self

    def kinds(self):
        return [(e.kind, e.incident.monitor_id) for e in self.events]

    def first(self, monitor_id, kind=EventKind.OPENED):
        return next(e for e in self.events if e.incident.monitor_id == monitor_id and e.kind is kind)


async def test_a_parent_and_its_dependents_failing_together_make_one_incident_listing_them(store, write_config):
    net = Network(store, write_config)
    net.at(1, api=DOWN, db=DOWN, web=DOWN).at(2, api=DOWN, db=DOWN, web=DOWN)  # api reaches its threshold first
    assert net.kinds() == [(EventKind.OPENED, "db")]
    incident = net.events[0].incident
    assert incident.affected == ("api", "web")
    assert incident.monitor_ids == ("db", "api", "web")
    assert net.engine.open_incident("api") is None and net.engine.open_incident("web") is None
    net.at(3, api=DOWN, db=DOWN, web=DOWN)
    assert len(net.events) == 1  # no more events while it lasts


async def test_when_the_parent_recovers_a_dependent_still_failing_opens_its_own_incident_from_its_first_failure(
        store, write_config):
    net = Network(store, write_config)
    net.at(1, db=DOWN, api=DOWN, web=DOWN).at(2, db=DOWN, api=DOWN, web=DOWN)
    net.at(3, db=UP, api=DOWN, web=UP)  # api's check of minute 3 came after db's recovery: still failing
    assert net.kinds() == [(EventKind.OPENED, "db"), (EventKind.RESOLVED, "db"), (EventKind.OPENED, "api")]
    opened = net.first("api")
    assert opened.incident.started_ms == 1 * MIN + 1  # api's first failure, not now
    assert opened.at_ms == 3 * MIN + 1
    assert opened.reason == "api down at 3"
    assert net.engine.open_incident("web") is None


async def test_a_dependent_whose_last_check_predates_the_recovery_waits_for_its_next(store, write_config):
    net = Network(store, write_config)
    net.at(1, api=DOWN, web=DOWN, db=DOWN).at(2, api=DOWN, web=DOWN, db=DOWN)
    net.at(3, db=UP)  # db recovers; api and web have not been checked since
    assert net.kinds() == [(EventKind.OPENED, "db"), (EventKind.RESOLVED, "db")]
    net.at(3, api=DOWN, web=UP)
    assert net.kinds()[2:] == [(EventKind.OPENED, "api")]
    assert net.first("api").incident.started_ms == 1 * MIN


async def test_a_dependent_that_fails_after_the_parent_opened_is_listed_once_without_a_notice(store, write_config):
    net = Network(store, write_config)
    net.at(1, db=DOWN).at(2, db=DOWN).at(3, web=DOWN).at(4, web=DOWN).at(5, web=DOWN)
    assert net.kinds() == [(EventKind.OPENED, "db"), (EventKind.AFFECTED, "db")]
    listed = net.events[1]
    assert listed.incident.affected == ("web",) and listed.incident.id == net.events[0].incident.id
    assert not EventKind.AFFECTED.on_timeline


async def test_the_cause_speaks_for_everything_behind_it(store, write_config):
    net = Network(store, write_config)
    net.at(1, router=DOWN, db=DOWN, api=DOWN).at(2, router=DOWN, db=DOWN, api=DOWN)
    assert net.kinds() == [(EventKind.OPENED, "router")]
    assert net.events[0].incident.affected == ("db", "api")


async def test_a_blip_of_the_parent_holds_a_dependent_only_while_it_lasts(store, write_config):
    net = Network(store, write_config)
    net.at(1, db=DOWN, api=DOWN).at(2, db=UP, api=DOWN)  # db failed once: no incident anywhere
    assert net.kinds() == [(EventKind.OPENED, "api")]  # api's second failure came after db was back
    assert net.first("api").incident.started_ms == 1 * MIN + 1


async def test_with_success_threshold_a_check_between_recovery_and_resolve_counts_as_still_failing(
        store, write_config):
    net = Network(store, write_config, extra="success_threshold = 2")
    net.at(1, router=DOWN, db=DOWN).at(2, router=DOWN, db=DOWN)
    net.at(3, router=UP, db=DOWN)  # router recovering, not yet resolved: db still held
    assert net.kinds() == [(EventKind.OPENED, "router")]
    net.at(4, router=UP)
    assert net.kinds()[1:] == [(EventKind.RESOLVED, "router"), (EventKind.OPENED, "db")]
    assert net.first("db").incident.started_ms == 1 * MIN + 1


async def test_a_restart_keeps_the_listing_and_the_hold(store, write_config):
    net = Network(store, write_config)
    await store.sync_monitors(net.config.monitors)
    net.at(1, db=DOWN, api=DOWN).at(2, db=DOWN, api=DOWN)
    for event in net.events:
        store.submit_events([event])
    for minute in (1, 2):
        for offset, monitor_id in enumerate(("db", "api")):
            ts = minute * MIN + offset
            store.submit_result(ResultRecord(monitor_id, ts, ts, DOWN, f"{monitor_id} down"), 60)
    await store.flush()
    again = IncidentEngine(store)
    again.configure(net.config.monitors)
    await again.restore(net.config.monitors)
    assert again.open_incident("db").affected == ("api",)
    events = again.observe(net.config.monitor("api").settings, ResultRecord("api", 3 * MIN, 3 * MIN, DOWN, "x"))
    assert events == []


def test_ancestors_and_descendants_are_nearest_first():
    class M:
        def __init__(self, id, depends_on=()):
            self.id, self.depends_on = id, depends_on
    deps = Dependencies([M("router"), M("db", ["router"]), M("api", ["db", "router"]), M("web", ["api"])])
    assert deps.ancestors("web") == ["api", "db", "router"]
    assert deps.descendants("router") == ["db", "api", "web"]


@pytest.mark.parametrize("body, problems", [
    (monitor("a", ["b"]) + monitor("b", ["a"]), ['monitors[0] "a": depends_on makes a cycle: a → b → a']),
    (monitor("a", ["a"]), ['monitors[0] "a": depends_on makes a cycle: a → a']),
    (monitor("a", ["nope"]), ['monitors[0] "a": depends_on names no [[monitors]] entry (got "nope")']),
    (monitor("a") + monitor("b", ["c"]) + monitor("c", ["d"]) + monitor("d", ["b", "a"]),
     ['monitors[1] "b": depends_on makes a cycle: b → c → d → b']),
])
def test_cycles_and_unknown_ids_are_config_errors_one_line_each(write_config, body, problems):
    from probe.config.loader import ConfigError
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(body))
    assert caught.value.problems == [f"cfg.toml: {line}" for line in problems]
