"""probe's own connectivity, told as a story against a real `probe run` in a network namespace of
the test's own (`unshare --net`, as tests/checks/test_icmp.py): its loopback interface is the
whole network. Taking it down makes every connectivity target and every monitor fail at once,
as a machine that lost its network; bringing it up is the network coming back, with one
monitor's server gone meanwhile. Only loopback addresses, only inside the namespace.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_crash import query

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = 2  # results.flags (probe/storage/rollups.py FLAG_OFFLINE)

NETNS_PROGRAM = r"""
import asyncio, json, socket, subprocess, sys, time
from pathlib import Path
from aiohttp import web

def now():
    return int(time.time() * 1000)

async def serve(host):
    server = await asyncio.start_server(lambda reader, writer: writer.close(), host, 0)
    return server, server.sockets[0].getsockname()[1]

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

async def main(folder):
    received = []
    async def hook(request):
        received.append({"received_ms": now(), **(await request.json())})
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]
    (_, a), (b_server, b), (_, c1), (_, c2) = [await serve(f"127.0.0.{n}") for n in (2, 3, 4, 5)]
    config = folder / "cfg.toml"
    config.write_text(f'''
[server]
listen = "127.0.0.1:{free_port()}"
connectivity = ["127.0.0.4:{c1}", "127.0.0.5:{c2}"]
[storage]
path = "probe.db"
[defaults]
interval = "500ms"
timeout = "400ms"
failure_threshold = 2
notify = ["hook"]
[[notifiers]]
id = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
timeout = "1s"
[[monitors]]
id = "stays"
type = "tcp"
host = "127.0.0.2"
port = {a}
[[monitors]]
id = "gone"
type = "tcp"
host = "127.0.0.3"
port = {b}
''')
    with open(folder / "probe.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "probe", "--log-level", "info", "run",
                                                    "-c", str(config), stderr=log)
    await asyncio.sleep(3)
    marks = {"down_ms": now()}
    subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
    b_server.close()  # this one's server goes while the network is down: it stays down after
    await asyncio.sleep(6)
    marks["up_ms"] = now()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    await asyncio.sleep(14)
    proc.terminate()
    await proc.wait()
    print(json.dumps({"marks": marks, "received": received}))

asyncio.run(main(Path(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> dict:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) to make a private network namespace")
    command = ["unshare", "--net", "--map-root-user", "sh", "-ec"]
    trial = subprocess.run([*command, "ip link set lo up && ip link add veth0 type veth peer name veth1"],
                           capture_output=True, text=True)
    if trial.returncode:
        pytest.skip(f"cannot create a network namespace here: {trial.stderr.strip()}")
    folder = tmp_path_factory.mktemp("connectivity")
    program = shlex.join([sys.executable, "-c", NETNS_PROGRAM, str(folder)])
    proc = subprocess.run([*command, f"ip link set lo up\nexec {program}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr + (folder / "probe.log").read_text()[-3000:]
    return json.loads(proc.stdout) | {"db": folder / "probe.db"}


def results(db, monitor_id):
    return query(db, "SELECT r.ts, r.status, r.flags FROM results r JOIN monitors m ON m.id = r.monitor"
                     " WHERE m.key = ? ORDER BY r.ts", (monitor_id,))


def test_while_probe_is_cut_off_no_incident_opens_and_its_channels_hear_it_once(story):
    db, marks = story["db"], story["marks"]
    events = [doc["event"] for doc in story["received"]]
    assert events.count("connectivity_lost") == 1
    assert events.count("connectivity_restored") == 1
    lost = next(d for d in story["received"] if d["event"] == "connectivity_lost")
    assert lost["type"] == "probe.connectivity_lost" and marks["down_ms"] <= _ms(lost["started_at"]) <= marks["up_ms"]
    # Every failure while the network was down is stored, as offline, and opened nothing.
    during = [r for m in ("stays", "gone") for r in results(db, m) if marks["down_ms"] <= r[0] < marks["up_ms"]]
    assert during and all(flags & OFFLINE for _, status, flags in during if status == 2)
    started = [s for (s,) in query(db, "SELECT started_ms FROM incidents")]
    assert all(s >= marks["up_ms"] for s in started), "an incident opened during the outage"


def test_when_it_is_back_checks_resume_and_only_the_monitor_still_down_opens_an_incident(story):
    db, marks = story["db"], story["marks"]
    stays = [r for r in results(db, "stays") if r[0] >= marks["up_ms"]]
    assert stays and stays[-1][1] == 0  # checks resumed, and it is up
    (monitor, started), = query(db, "SELECT m.key, i.started_ms FROM incidents i JOIN monitors m ON m.id = i.monitor")
    assert monitor == "gone"
    counted = [ts for ts, status, flags in results(db, "gone") if status == 2 and not flags & OFFLINE]
    assert started == min(ts for ts in counted if ts >= marks["up_ms"])  # its first failure that counts
    opened = [d for d in story["received"] if d["event"] == "open"]
    assert [d["monitor"]["id"] for d in opened] == ["gone"]
    order = [d["event"] for d in story["received"]]
    assert order.index("connectivity_lost") < order.index("connectivity_restored") < order.index("open")


def _ms(iso: str) -> int:
    from datetime import datetime
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
