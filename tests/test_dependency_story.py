"""Dependencies told as a story against a real `probe run`: a web server goes down and the
site and API behind it fail with it; then the server comes back while the API stays down.
Two channels (a webhook and Slack) receive what is sent; the database says what was decided."""
import asyncio
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.cli.test_main import free_port
from tests.peers.receiver import Receiver
from tests.test_crash import query, start_probe


class Target:
    """HTTP answers per path, switched by the test."""

    def __init__(self) -> None:
        self.status = {"server": 200, "site": 200, "api": 200}
        app = web.Application()
        app.router.add_get("/{name}", self.answer)
        self.server = TestServer(app, host="127.0.0.1")

    async def answer(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status[request.match_info["name"]])


def config(write_config, port, target, hook):
    monitors = "".join(f'[[monitors]]\nid = "{name}"\ntype = "http"\nurl = "{target}/{name}"\n'
                       + ('depends_on = ["server"]\n' if name != "server" else "") for name in ("server", "site", "api"))
    return write_config(f"""
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "probe.db"
[defaults]
interval = "500ms"
timeout = "400ms"
failure_threshold = 2
notify = ["hook", "chat"]
[[notifiers]]
id = "hook"
type = "webhook"
url = "{hook}/hook"
[[notifiers]]
id = "chat"
type = "slack"
url = "{hook}/slack"
""" + monitors)


def incidents(db):
    """(monitor, started, resolved, affected) of every incident, oldest first."""
    return query(db, "SELECT m.key, i.started_ms, i.resolved_ms, i.affected FROM incidents i"
                     " JOIN monitors m ON m.id = i.monitor ORDER BY i.id")


def results(db, monitor_id):
    return query(db, "SELECT r.ts, r.status FROM results r JOIN monitors m ON m.id = r.monitor"
                     " WHERE m.key = ? ORDER BY r.ts", (monitor_id,))


def events(db):
    return query(db, "SELECT e.kind, m.key, e.at_ms FROM events e JOIN incidents i ON i.id = e.incident"
                     " JOIN monitors m ON m.id = i.monitor ORDER BY e.id")


async def until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def sent(receiver, path):
    return [r for r in receiver.requests if r.path_qs == path]


async def test_one_incident_for_a_parent_and_its_dependents_then_the_one_still_down_opens_its_own(
        write_config, tmp_path):
    target, receiver = Target(), await Receiver().start()
    await target.server.start_server()
    port, db = free_port(), tmp_path / "probe.db"
    path = config(write_config, port, f"http://127.0.0.1:{target.server.port}", receiver.url)
    proc = await start_probe(path, port)
    try:
        await until(lambda: all(results(db, m) for m in ("server", "site", "api")))
        target.status = {"server": 503, "site": 503, "api": 503}  # the server dies, and everything behind it
        await until(lambda: incidents(db) and len(sent(receiver, "/hook")) == 1 and len(sent(receiver, "/slack")) == 1)
        await asyncio.sleep(2.0)  # four more checks each: nothing else may open or be sent
        during = incidents(db)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v2/incidents/unresolved.json") as response:
                v2 = (await response.json())["incidents"]
            async with http.get(f"http://127.0.0.1:{port}/api/v1/incidents") as response:
                v1 = (await response.json())["incidents"]
        hook_open, slack_open = sent(receiver, "/hook"), sent(receiver, "/slack")

        target.status = {"server": 200, "site": 200, "api": 503}  # back, but the API stays down
        await until(lambda: len(incidents(db)) == 2 and len(sent(receiver, "/hook")) == 3)
        await asyncio.sleep(2.0)
        after = incidents(db)
    finally:
        proc.terminate()
        await proc.wait()
        await receiver.close()
        await target.server.close()

    # Down together: exactly one incident, the server's, listing the two behind it.
    (monitor, started, resolved, affected), = during
    assert (monitor, resolved) == ("server", None) and sorted(affected.split()) == ["api", "site"]
    assert len(hook_open) == len(slack_open) == 1
    doc = hook_open[0].json
    assert (doc["event"], doc["monitor"]["id"]) == ("open", "server")
    assert sorted(a["id"] for a in doc["affected"]) == ["api", "site"]
    assert "Also affected" in slack_open[0].body.decode()
    (incident,) = v2
    assert sorted(c["name"] for c in incident["components"]) == ["api", "server", "site"]
    assert v1[0]["monitors"][0] == "server" and sorted(v1[0]["monitors"]) == ["api", "server", "site"]

    # Server back, API still down: the API's own incident, from its first failure, opened at its
    # first check after the server recovered; the site, back too, opened nothing.
    server, api = after
    assert server[0] == "server" and server[2] is not None
    assert api[0] == "api" and api[2] is None
    api_results = results(db, "api")
    last_up = max(ts for ts, status in api_results if status == 0)
    first_failure = min(ts for ts, status in api_results if ts > last_up)
    assert api[1] == first_failure
    opened_at = next(at for kind, key, at in events(db) if (kind, key) == ("open", "api"))
    assert opened_at == min(ts for ts, _ in api_results if ts >= server[2])
    hook_events = [(r.json["event"], r.json["monitor"]["id"]) for r in sent(receiver, "/hook")]
    assert hook_events == [("open", "server"), ("resolve", "server"), ("open", "api")]
    assert len(sent(receiver, "/slack")) == 3
