"""[cluster] membership, leadership and who checks what, told with real instances' connections to
a real PostgreSQL: one leads, the others follow; when the leader's connection is lost another takes
over; an instance that stops heartbeating is gone after three heartbeats, and only its monitors move."""
from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from probe.config.cluster import ClusterConfig
from probe.config.storage import parse_storage_url
from probe.core.calendar import Calendar
from probe.engine.cluster import Cluster, rendezvous
from probe.storage import open_storage

HEARTBEAT = 0.2
LOCATIONS = ("a", "b")


class Instance:
    """One instance's store and Cluster, with what it was told."""

    def __init__(self, url, tmp_path, name, location):
        self.store = open_storage(parse_storage_url(url, tmp_path), Calendar("UTC"), flush_interval=0.01,
                                  cluster=True)
        link = self.store.cluster_link(name, location, "test", HEARTBEAT)
        self.told: list[str] = []
        self.cluster = Cluster(ClusterConfig(name, location, LOCATIONS, HEARTBEAT), link,
                               on_lead=self._lead, on_follow=self._follow, on_members=lambda: None,
                               on_message=lambda channel, payload: None, on_connect=self._nothing)

    async def _lead(self, term):
        self.told.append(f"lead {term}")

    async def _follow(self):
        self.told.append("follow")

    async def _nothing(self):
        pass

    async def start(self):
        await self.store.open()
        await self.cluster.start()
        return self

    async def stop(self):
        await self.cluster.stop()
        await self.store.close()

    def crash(self):
        """What a kill -9 leaves: no more heartbeats, the connection gone without a word."""
        self.cluster._task.cancel()
        self.cluster.link.close()


async def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.02)
    return time.monotonic()


@pytest.fixture
async def instances(postgres, tmp_path):
    url = postgres.create_database()
    started = []

    async def start(name, location):
        started.append(await Instance(url, tmp_path, name, location).start())
        return started[-1]

    start.url = url
    yield start
    for instance in started:
        try:
            await instance.stop()
        except Exception:  # a crashed one has nothing left to stop cleanly
            await instance.store.close()


async def test_one_instance_leads_and_another_takes_over_within_three_heartbeats_when_its_connection_is_lost(
        instances):
    one, two = await instances("one", "a"), await instances("two", "b")
    await until(lambda: len(one.cluster.members) == len(two.cluster.members) == 2)
    leader, other = (one, two) if one.cluster.leading else (two, one)
    assert leader.told == ["lead 1"] and not other.cluster.leading and other.told == []

    # The server ends the leader's session (a lost network, a restarted pooler): the lock goes with it.
    conn = await asyncpg.connect(instances.url)
    pid = leader.cluster.link.conn.get_server_pid()
    await conn.execute("SELECT pg_terminate_backend($1)", pid)
    await conn.close()
    lost = time.monotonic()
    taken = await until(lambda: other.cluster.leading)
    assert taken - lost < 3 * HEARTBEAT + 1.0
    assert other.told == ["lead 2"]
    await until(lambda: "follow" in leader.told)
    assert not leader.cluster.leading  # one leader at a time, the term says which
    await until(lambda: len(leader.cluster.members) == 2)  # it reconnected and is a member again


async def test_an_instance_unseen_for_three_heartbeats_is_gone_and_a_clean_stop_is_gone_at_once(instances):
    one, two, three = [await instances(name, "a") for name in ("one", "two", "three")]
    await until(lambda: len(one.cluster.members) == 3)
    two.crash()
    crashed = time.monotonic()
    gone = await until(lambda: [m.instance for m in one.cluster.members] == ["one", "three"])
    # by the database's clock, from its last heartbeat (up to one before the crash)
    assert 2 * HEARTBEAT - 0.1 <= gone - crashed < 3 * HEARTBEAT + 1.0
    await three.stop()
    stopped = time.monotonic()
    gone = await until(lambda: [m.instance for m in one.cluster.members] == ["one"])
    assert gone - stopped < 2 * HEARTBEAT + 0.5  # its row went with the stop: no waiting for it to go stale


async def test_a_restart_under_the_same_name_takes_over_its_row_and_a_live_name_is_refused(instances):
    first = await instances("fra-1", "a")
    with pytest.raises(Exception, match='"fra-1" is the name of a live instance'):
        await instances("fra-1", "a")
    first.crash()
    await asyncio.sleep(3 * HEARTBEAT + 0.1)
    again = await instances("fra-1", "a")
    assert [m.instance for m in again.cluster.members] == ["fra-1"]


def test_rendezvous_moves_only_the_monitors_of_the_instance_that_went():
    monitors = [f"m{i}" for i in range(300)]
    before = {m: rendezvous(m, ["x", "y", "z"]) for m in monitors}
    after = {m: rendezvous(m, ["x", "z"]) for m in monitors}
    moved = {m for m in monitors if before[m] != after[m]}
    assert moved == {m for m in monitors if before[m] == "y"}
    assert 60 < len(moved) < 140  # about a third each
    assert rendezvous("m1", []) is None


async def test_within_a_location_each_monitor_has_exactly_one_instance_and_other_locations_check_it_too(instances):
    a1, a2, b1 = await instances("a1", "a"), await instances("a2", "a"), await instances("b1", "b")
    await until(lambda: all(len(i.cluster.members) == 3 for i in (a1, a2, b1)))
    monitors = [f"m{i}" for i in range(100)]
    for m in monitors:
        assert [a1.cluster.owns(m, LOCATIONS), a2.cluster.owns(m, LOCATIONS)].count(True) == 1
        assert b1.cluster.owns(m, LOCATIONS)
        assert not b1.cluster.owns(m, ("a",))  # a monitor checked from a only
