"""probe's own connectivity against real listeners on loopback (and ports nobody listens on),
with a real SQLite store for the state it keeps."""
import asyncio
import socket

import pytest

from probe.core.models import ResultRecord, Status
from probe.engine.connectivity import STATE_KEY, Connectivity
from probe.engine.incidents import Rules, Tracker, step


class Listener:
    """A TCP port that accepts and counts connections."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server = None

    async def start(self, port: int = 0) -> "Listener":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        return self

    def _accept(self, reader, writer) -> None:
        self.accepted += 1
        writer.close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def closed_target() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nobody listens once it is closed


class Changes(list):
    async def __call__(self, change):
        self.append(change)


async def test_a_failure_is_checked_against_the_targets_and_one_round_serves_a_moment(store):
    a, b = await Listener().start(), await Listener().start()
    changes = Changes()
    connectivity = Connectivity((a.target, b.target), store, changes)
    try:
        assert await asyncio.gather(*(connectivity.confirm() for _ in range(5))) == [True] * 5
        assert (a.accepted, b.accepted) == (1, 1)  # five failures at once: one round
        assert changes == [] and connectivity.health()["ok"] is True
    finally:
        await connectivity.stop()
        await a.stop()
        await b.stop()


async def test_one_target_answering_is_enough(store):
    a = await Listener().start()
    connectivity = Connectivity((closed_target(), a.target), store, Changes())
    try:
        assert await connectivity.confirm() is True
    finally:
        await connectivity.stop()
        await a.stop()


async def test_when_every_target_fails_it_is_lost_once_and_the_database_remembers(store):
    targets = (closed_target(), closed_target())
    changes = Changes()
    connectivity = Connectivity(targets, store, changes)
    try:
        assert await connectivity.confirm() is False
        assert await connectivity.confirm() is False  # known lost: no new round, no new change
        (change,) = changes
        assert change.lost and set(change.failures) == set(targets)
        assert all(reason.startswith("connection refused by 127.0.0.1:") for reason in change.failures.values())
        assert await store.meta_get(STATE_KEY) == str(change.since_ms)
        health = connectivity.health()
        assert (health["ok"], health["lost_since_ms"]) == (False, change.since_ms)
    finally:
        await connectivity.stop()
    again = Connectivity(targets, store, Changes())  # a restart: still lost, nothing said again
    await again.start()
    try:
        assert again.lost_since == change.since_ms and await again.confirm() is False
    finally:
        await again.stop()


async def test_it_is_back_as_soon_as_a_round_reaches_a_target_again(store):
    gone = closed_target()
    changes = Changes()
    connectivity = Connectivity((gone,), store, changes)
    await connectivity.start()
    listener = None
    try:
        assert await connectivity.confirm() is False
        listener = await Listener().start(int(gone.rpartition(":")[2]))
        for _ in range(100):  # the next round (every RECHECK_S) finds it
            if len(changes) == 2:
                break
            await asyncio.sleep(0.1)
        lost, restored = changes
        assert not restored.lost and restored.since_ms == lost.since_ms and restored.at_ms >= lost.at_ms
        assert connectivity.ok and await store.meta_get(STATE_KEY) == ""
    finally:
        await connectivity.stop()
        if listener:
            await listener.stop()


async def test_with_no_targets_nothing_is_asked(store):
    connectivity = Connectivity((), store, Changes())
    await connectivity.start()
    assert await connectivity.confirm() is True and not connectivity.enabled
    await connectivity.stop()


def test_a_failure_taken_offline_changes_no_streak():
    tracker, rules = Tracker(), Rules(failure_threshold=2)
    records = [ResultRecord("web", t, t, Status.DOWN, "timed out", offline=t < 3) for t in range(5)]
    kinds = [[tr.kind.value for tr in step(tracker, r, rules)] for r in records]
    assert kinds == [[], [], [], [], ["open"]]  # the two counted failures open it, from the first of them
    assert tracker.open.started_ms == 3


@pytest.mark.parametrize("target, problem", [
    ("1.1.1.1", 'must be "host:port" or an http(s) URL, e.g. "1.1.1.1:53" (got "1.1.1.1")'),
    ("1.1.1.1:0", 'must be "host:port" or an http(s) URL, e.g. "1.1.1.1:53" (got "1.1.1.1:0")'),
    ("bad host:53", 'host must be a host name or IP address (got "bad host")'),
    ("https://", 'must name a host (got "https://")'),
])
def test_a_connectivity_target_that_cannot_work_is_a_config_error(write_config, target, problem):
    from probe.config.loader import ConfigError, load_config
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(f'[server]\nconnectivity = ["8.8.8.8:53", "{target}"]\n'))
    assert caught.value.problems == [f"cfg.toml: server: connectivity[1] {problem}"]
