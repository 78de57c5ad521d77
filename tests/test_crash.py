"""`kill -9` of a real `probe run`, then a restart: the file is intact and no incident is
duplicated or lost. The big one runs 200 monitors and a webhook and kills it at random moments, again
and again. After every kill the file passes `PRAGMA integrity_check` and its incidents are
exactly those its stored results call for (every run of `failure_threshold` bad results opened
or reopened one, and no incident stands without such a run); after the last restart every
notification is delivered, and a message arrives twice only in the documented window: the
process died between the channel's answer and the outbox row's update. It also measures what
a kill costs: the checks that the peers answered but whose results are not in the file.

PROBE_CRASH_ROUNDS (default 10) and PROBE_CRASH_SEED run it longer or differently by hand.
"""
import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.config.loader import load_config
from tests.cli.test_main import free_port
from tests.peers.receiver import Receiver

ROUNDS = int(os.environ.get("PROBE_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("PROBE_CRASH_SEED", "20261203"))
UP, DOWN, FLAP, FLAP_REOPEN = 140, 30, 15, 15  # 200 monitors
HOOK_LANES = 4  # the webhook's concurrency: this many messages may be in flight at a kill
DOWN_MONITORS, UP_MONITORS = 15, 10  # the small, quick one
FLAP_PERIOD_S = 3.0  # half of it failing: long enough for two bad checks at 500 ms
# One incident's life as its events may tell it: open, escalate while open, then resolve/reopen in turn.
LIFE = re.compile(r"open(,escalate)?(,resolve,reopen(,escalate)?)*(,resolve)?")


class Flapper:
    """HTTP answers that alternate between 200 and 503 (each monitor on its own phase) until
    settled; it notes when it answered each check."""

    def __init__(self) -> None:
        self.settled = False
        self.answered: list[float] = []  # time.monotonic() of every check it answered
        app = web.Application()
        app.router.add_get("/flap/{n}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        self.answered.append(time.monotonic())
        phase = (time.time() + int(request.match_info["n"]) * 0.37) % FLAP_PERIOD_S
        ok = self.settled or phase < FLAP_PERIOD_S / 2
        return web.Response(status=200 if ok else 503)


SMALL_CONFIG = """
[server]
listen = "127.0.0.1:{web_port}"
[storage]
path = "probe.db"
[defaults]
interval = "400ms"
timeout = "300ms"
failure_threshold = 2
"""


def tcp_monitors(prefix: str, count: int, port: int) -> str:
    return "".join(f'[[monitors]]\nid = "{prefix}-{i}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\n\n'
                   for i in range(count))


def crash_config(write_config, open_port, closed_port, flap_url, hook_url, web_port):
    monitors = [tcp_monitors("up", UP, open_port), tcp_monitors("down", DOWN, closed_port)]
    for i in range(FLAP + FLAP_REOPEN):
        # reopen_window 0: every failure is a new incident; the default keeps one incident per flapper.
        window = 'reopen_window = "0s"\n' if i < FLAP else ""
        monitors.append(f'[[monitors]]\nid = "flap-{i}"\ntype = "http"\nurl = "{flap_url}flap/{i}"\n'
                        f'interval = "500ms"\ntimeout = "400ms"\n{window}')
    return write_config(f"""
[server]
listen = "127.0.0.1:{web_port}"
[storage]
path = "probe.db"
[defaults]
interval = "1s"
timeout = "500ms"
failure_threshold = 2
notify = ["hook"]
[[notifiers]]
id = "hook"
type = "webhook"
url = "{hook_url}/hook"
timeout = "3s"
concurrency = {HOOK_LANES}
""" + "\n".join(monitors))


@dataclass
class Rounds:
    """When each process was started: a message belongs to the process that sent it."""

    starts: list[float] = field(default_factory=list)
    starts_ms: list[int] = field(default_factory=list)  # the same moments on the wall clock, as results are stamped

    def start(self) -> None:
        self.starts.append(time.monotonic())
        self.starts_ms.append(int(time.time() * 1000))

    def of(self, at: float) -> int:
        return max(i for i, start in enumerate(self.starts) if start <= at)


async def spawn(config_path, log_path):
    with open(log_path, "ab") as log:  # a file, not a pipe: a full pipe would stall the process
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "probe", "--log-level", "warning",
                                                    "run", "-c", str(config_path), stderr=log)


async def wait_healthy(proc, web_port, log_path, timeout=30.0):
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and proc.returncode is None:
            try:
                async with session.get(f"http://127.0.0.1:{web_port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    if proc.returncode is None:
        proc.kill()
    raise AssertionError("probe did not become healthy: " + log_path.read_text()[-3000:])


async def start_probe(config_path, web_port):
    """A `probe run` on this config, once its /healthz says 200; it logs to probe.log beside the config."""
    log_path = config_path.parent / "probe.log"
    proc = await spawn(config_path, log_path)
    await wait_healthy(proc, web_port, log_path)
    return proc


def query(db, sql, params=()):
    """Rows of `sql` from the database: a SQLite file, or a PostgreSQL URL (the same SQL, numbered)."""
    if isinstance(db, str) and db.startswith("postgresql://"):
        with ThreadPoolExecutor(1) as pool:  # a loop of its own: callers are sync, inside the test's loop
            return pool.submit(asyncio.run, _pg_query(db, sql, params)).result()
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def _pg_query(url: str, sql: str, params) -> list[tuple]:
    import asyncpg

    from probe.storage.postgres.store import numbered
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]
    finally:
        await conn.close()


def database_of(config_path):
    """The SQLite file or the PostgreSQL URL the config keeps its data in."""
    target = load_config(config_path).storage_target
    return target.dsn if target.kind == "postgresql" else target.path


def check_file(db_path, received, config_path) -> None:
    """What must hold after any kill: an intact file, and incidents that agree with the results.
    On PostgreSQL the server keeps its own integrity; the rest is checked the same way."""
    if not str(db_path).startswith("postgresql://"):
        assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
        if query(db_path, "PRAGMA user_version") == [(0,)]:  # killed before the first migration committed
            assert query(db_path, "SELECT name FROM sqlite_master") == [], "half a migration"
            return
    open_per_monitor = query(db_path, "SELECT monitor, count(*) FROM incidents WHERE resolved_ms IS NULL"
                                      " AND origin = 'auto' GROUP BY monitor HAVING count(*) > 1")
    assert open_per_monitor == [], "a monitor has two open incidents"
    orphans = query(db_path, "SELECT e.id FROM events e LEFT JOIN incidents i ON i.id = e.incident"
                             " WHERE i.id IS NULL")
    assert orphans == [], f"events name incidents that do not exist: {orphans}"
    # An incident starts at a stored bad result and resolves at a stored good one of its monitor.
    unfounded = query(db_path, """
        SELECT i.id FROM incidents i WHERE NOT EXISTS
            (SELECT 1 FROM results r WHERE r.monitor = i.monitor AND r.ts = i.started_ms AND r.status > 0)
        OR (i.resolved_ms IS NOT NULL AND NOT EXISTS
            (SELECT 1 FROM results r WHERE r.monitor = i.monitor AND r.ts = i.resolved_ms AND r.status = 0))""")
    assert unfounded == [], f"incidents that the stored results do not explain: {unfounded}"
    check_lives(db_path)
    check_incidents_follow_the_results(db_path, config_path)
    check_notified_incidents_exist(db_path, received)


def check_lives(db_path) -> None:
    """Each incident's events tell one possible story, and a monitor's incidents never overlap."""
    kinds = defaultdict(list)
    for incident, kind in query(db_path, "SELECT incident, kind FROM events ORDER BY id"):
        kinds[incident].append(kind)
    incidents = query(db_path, "SELECT id, monitor, started_ms, coalesce(resolved_ms, 1e18) FROM incidents"
                               " ORDER BY monitor, started_ms")
    for incident_id, *_ in incidents:
        story = ",".join(kinds[incident_id])
        assert LIFE.fullmatch(story), f"incident {incident_id} has the events {story!r}"
    for (_, m1, _, end), (i2, m2, start, _) in zip(incidents, incidents[1:]):
        assert m1 != m2 or start >= end, f"incident {i2} overlaps the one before it"


@dataclass
class BadRun:
    """Consecutive bad results of one monitor, and the good result that ended them (if any yet)."""

    first_ms: int
    count: int = 1
    nth_ms: list[int] = field(default_factory=list)
    ended_ms: int | None = None


def bad_runs(db_path) -> dict[str, list[BadRun]]:
    runs: dict[str, list[BadRun]] = defaultdict(list)
    going: dict[str, BadRun | None] = {}
    for key, ts, status in query(db_path, "SELECT m.key, r.ts, r.status FROM results r JOIN monitors m"
                                          " ON m.id = r.monitor ORDER BY m.key, r.ts"):
        run = going.get(key)
        if status == 0:
            if run is not None:
                run.ended_ms, going[key] = ts, None
            continue
        if run is None:
            run = going[key] = BadRun(ts)
            runs[key].append(run)
        else:
            run.count += 1
        run.nth_ms.append(ts)
    return runs


def expected_openings(runs: list[BadRun], monitor) -> list[tuple[str, int, int, int | None]]:
    """What the README's rules make of a monitor's stored results: each run of failure_threshold
    bad results opens an incident at its first result (the transition is stamped with the
    threshold-th), or reopens the last one when it begins within reopen_window of that one's
    resolve; the incident resolves at the first good result. Returns (kind, transition ms,
    started ms, resolved ms) per opening or reopening."""
    out, last_resolve = [], None
    for run in runs:
        if run.count < monitor.failure_threshold:
            continue
        reopens = last_resolve is not None and run.first_ms - last_resolve <= monitor.reopen_window * 1000
        started = out[-1][2] if reopens else run.first_ms
        out.append(("reopen" if reopens else "open", run.nth_ms[monitor.failure_threshold - 1], started, run.ended_ms))
        last_resolve = run.ended_ms
    return out


def check_incidents_follow_the_results(db_path, config_path) -> None:
    """For every monitor, every stored run of failure_threshold bad results is covered by an
    incident that opened or reopened at its threshold-th result, and every incident, each time
    it opened, was backed by such a run: the events are exactly those the results call for."""
    monitors = {m.id: m for m in load_config(config_path).monitors}
    assert {m.success_threshold for m in monitors.values()} == {1}  # (what expected_openings assumes)
    assert query(db_path, "SELECT count(*) FROM results WHERE flags != 0") == [(0,)]  # no maintenance here
    stored = defaultdict(list)
    for key, kind, at_ms, started, resolved in query(db_path, """
            SELECT m.key, e.kind, e.at_ms, i.started_ms, i.resolved_ms FROM events e
            JOIN incidents i ON i.id = e.incident JOIN monitors m ON m.id = i.monitor
            WHERE e.kind IN ('open', 'reopen') ORDER BY m.key, e.at_ms"""):
        stored[key].append((kind, at_ms, started, resolved))
    runs = bad_runs(db_path)
    for key, monitor in monitors.items():
        expected = expected_openings(runs.get(key, []), monitor)
        # An incident's resolve is that of its last run: compare it there, where the file has it too.
        assert [(k, at, started) for k, at, started, _ in stored.get(key, [])] == \
            [(k, at, started) for k, at, started, _ in expected], key
        last_resolve = {started: resolved for _, _, started, resolved in expected}
        assert {started: resolved for _, _, started, resolved in stored.get(key, [])} == last_resolve, key


def check_notified_incidents_exist(db_path, received) -> None:
    """Every incident a message told the receiver about is in the file, on the same monitor."""
    stored = dict(query(db_path, "SELECT i.id, m.key FROM incidents i JOIN monitors m ON m.id = i.monitor"))
    for request in received:
        doc = request.json
        assert stored.get(doc["incident"]["id"]) == doc["monitor"]["id"], f"notified but not stored: {doc['id']}"


async def wait_quiet(db_path, timeout=40.0) -> None:
    """Flappers settled and resolved, every event queued and every delivery sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        (open_flaps, pending, behind), = query(db_path, """SELECT
            (SELECT count(*) FROM incidents i JOIN monitors m ON m.id = i.monitor
              WHERE i.resolved_ms IS NULL AND m.key LIKE 'flap-%'),
            (SELECT count(*) FROM deliveries WHERE state = 'pending'),
            (SELECT count(*) FROM events WHERE id > (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta
              WHERE key = 'notify_cursor'))""")
        if open_flaps == pending == behind == 0:
            return
    raise AssertionError(f"not quiet: open flaps={open_flaps} pending={pending} events not queued={behind}")


def duplicates_in_the_window(received, rounds: Rounds) -> int:
    """A message may arrive twice only if its first copy was in flight when its process was
    killed (the crash fell between the answer and the row update). The channel runs HOOK_LANES
    lanes at once, and a lane's next claim queues behind the answers already being recorded, so
    an in-flight copy is among the last HOOK_LANES its process sent; returns how many arrived twice."""
    by_round = defaultdict(list)
    for request in received:
        by_round[rounds.of(request.at)].append(request.json["id"])
    copies = Counter(request.json["id"] for request in received)
    twice = {key for key, n in copies.items() if n > 1}
    for key in twice:
        first = [r for r, keys in by_round.items() if key in keys]
        assert copies[key] == len(first), f"{key} arrived twice from one process"
        for r in first[:-1]:
            assert key in by_round[r][-HOOK_LANES:], \
                f"{key} was re-sent but was not in flight when round {r} was killed"
    return len(twice)


@dataclass(frozen=True)
class Loss:
    answered: int  # checks of the counted monitors that their peers answered for the killed process
    lost: int  # of those, the ones whose result is not in the file
    window_ms: float  # how long before the kill the oldest of them was answered (the lost are the newest)


COUNTED = ("up-%", "flap-%")  # monitors whose peers count their checks (the down ones hit a closed port)


def results_lost(db_path, rounds: Rounds, round_: int, answered: list[float], killed: float) -> Loss:
    """What one kill cost: checks the peers answered for that process, against its results in the file."""
    seen = sorted(at for at in answered if rounds.of(at) == round_)
    stored = 0
    if query(db_path, "PRAGMA user_version") != [(0,)]:
        (stored,), = query(db_path, "SELECT count(*) FROM results r JOIN monitors m ON m.id = r.monitor"
                                    " WHERE r.ts >= ? AND (m.key LIKE ? OR m.key LIKE ?)",
                           (rounds.starts_ms[round_], *COUNTED))
    lost = len(seen) - stored
    return Loss(len(seen), lost, (killed - seen[-lost]) * 1000 if lost > 0 else 0.0)


def report_losses(losses: list[Loss]) -> None:
    per_kill = [loss.lost for loss in losses]
    print(f"results lost per kill (of {UP + FLAP + FLAP_REOPEN} counted monitors): {per_kill}; "
          f"mean {sum(per_kill) / len(per_kill):.1f}, max {max(per_kill)}; answered before the kill by at most "
          f"{max(loss.window_ms for loss in losses):.0f} ms; checks answered per kill {[l.answered for l in losses]}")


async def test_kill_9_at_random_moments_loses_and_duplicates_no_incident_and_no_notification(
        write_config, tmp_path):
    rng = random.Random(SEED)
    print(f"crash rounds={ROUNDS} seed={SEED} (PROBE_CRASH_ROUNDS, PROBE_CRASH_SEED)")
    connected: list[float] = []  # when the up monitors' port answered each check
    listener = await asyncio.start_server(lambda r, w: (connected.append(time.monotonic()), w.close()),
                                          "127.0.0.1", 0)
    flapper, receiver = Flapper(), await Receiver().start()
    await flapper.server.start_server()
    web_port, db_path, log_path = free_port(), tmp_path / "probe.db", tmp_path / "probe.log"
    config = crash_config(write_config, listener.sockets[0].getsockname()[1], free_port(),
                          str(flapper.server.make_url("/")), receiver.url, web_port)
    rounds, proc, losses = Rounds(), None, []
    try:
        for round_ in range(ROUNDS):
            rounds.start()
            proc = await spawn(config, log_path)
            if rng.random() < 0.2:  # now and then, die while starting up
                await asyncio.sleep(rng.uniform(0.0, 0.8))
            else:
                await wait_healthy(proc, web_port, log_path)
                await asyncio.sleep(rng.uniform(0.3, 3.5))
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await proc.wait()
            await asyncio.sleep(0.2)  # a request already on the wire is the dead process's, not the next one's
            check_file(db_path, receiver.requests, config)
            losses.append(results_lost(db_path, rounds, round_, connected + flapper.answered, killed))
        flapper.settled = True
        rounds.start()
        proc = await start_probe(config, web_port)
        await wait_quiet(db_path)
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
        listener.close()
        await flapper.server.close()
        await receiver.close()

    report_losses(losses)
    check_file(db_path, receiver.requests, config)
    events = query(db_path, "SELECT count(*), count(DISTINCT incident) FROM events")[0]
    deliveries = dict(query(db_path, "SELECT key, state FROM deliveries WHERE notifier = 'hook'"))
    expected = {f"event:{i}" for (i,) in query(db_path, "SELECT id FROM events")}
    arrived = {r.json["id"] for r in receiver.requests}
    duplicated = duplicates_in_the_window(receiver.requests, rounds)
    print(f"events={events[0]} incidents={events[1]} messages={len(receiver.requests)} "
          f"duplicated in the crash window={duplicated} of {ROUNDS} kills")
    assert events[1] >= DOWN + FLAP  # incidents did open and resolve while we killed
    assert set(deliveries) == expected and set(deliveries.values()) == {"sent"}
    assert arrived == expected  # every message arrived; none that is not in the outbox


async def wait_for_results_since(db_path, since_ms: int, monitors: int, timeout: float = 30.0) -> None:
    """Until every monitor has a result in the file taken after `since_ms`."""
    deadline = time.monotonic() + timeout
    sql = "SELECT count(DISTINCT monitor) FROM results WHERE ts >= ?"
    while query(db_path, sql, (since_ms,)) != [(monitors,)]:
        assert time.monotonic() < deadline, "the restarted probe stored no result for some monitors"
        await asyncio.sleep(0.1)


def open_incidents_per_monitor(db_path):
    return dict(query(db_path, "SELECT m.key, count(*) FROM incidents i JOIN monitors m ON m.id = i.monitor"
                               " GROUP BY m.key"))


async def test_kill_9_then_restart_keeps_the_file_intact_and_incidents_single(write_config, tmp_path, engine):
    """On either engine: a kill never leaves half a batch (an incident without the results that
    opened it, an event without its incident) and never a second incident for one monitor."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    open_port = server.sockets[0].getsockname()[1]
    web_port = free_port()
    config = write_config(SMALL_CONFIG.format(web_port=web_port) + tcp_monitors("down", DOWN_MONITORS, free_port())
                          + tcp_monitors("up", UP_MONITORS, open_port))
    db = database_of(config)
    rng = random.Random(7)
    try:
        for round_ in range(4):
            proc = await start_probe(config, web_port)
            await asyncio.sleep(1.2 + rng.random())  # incidents open in the first round
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            incidents = open_incidents_per_monitor(db)
            assert all(count == 1 for count in incidents.values()), (round_, incidents)
            check_file(db, [], config)
        restarted_ms = int(time.time() * 1000)
        proc = await start_probe(config, web_port)
        await wait_for_results_since(db, restarted_ms, DOWN_MONITORS + UP_MONITORS)
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
    finally:
        server.close()

    if engine == "sqlite":
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
    per_monitor = dict(query(db, "SELECT m.key, count(i.id) FROM monitors m LEFT JOIN incidents i"
                                 " ON i.monitor = m.id GROUP BY m.key"))
    ((still_open,),) = query(db, "SELECT count(*) FROM incidents WHERE resolved_ms IS NULL")
    ((results,),) = query(db, "SELECT count(*) FROM results")
    # Every down monitor has exactly the one incident it opened in the first round, still open.
    assert {k: v for k, v in per_monitor.items() if k.startswith("down-")} == \
        {f"down-{i}": 1 for i in range(DOWN_MONITORS)}
    assert all(v == 0 for k, v in per_monitor.items() if k.startswith("up-"))
    assert still_open == DOWN_MONITORS
    assert results > (DOWN_MONITORS + UP_MONITORS) * 5
