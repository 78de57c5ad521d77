"""While probe's own network is down, the running app says so to the operator (/healthz, /metrics,
one notice) and claims no outage in public. A real app, real checks of a port nobody listens on,
connectivity targets nobody listens on either, a webhook receiver on loopback."""
import asyncio
import re

from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.service import Probe
from probe.web.app import create_app
from tests.engine.test_connectivity import closed_target
from tests.peers.receiver import Receiver


async def test_while_cut_off_the_operator_hears_it_and_the_public_sees_no_outage(write_config):
    receiver = await Receiver().start()
    target, unreachable = closed_target(), closed_target()
    probe = Probe(load_config(write_config(f"""
        [server]
        connectivity = ["{target}"]
        metrics = true
        [storage]
        path = "probe.db"
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{receiver.url}/hook"
        [[monitors]]
        id = "web"
        name = "Website"
        type = "tcp"
        host = "127.0.0.1"
        port = {unreachable.rpartition(":")[2]}
        interval = "500ms"
        timeout = "400ms"
        failure_threshold = 1
        notify = ["hook"]
        [[monitors]]
        id = "silent-job"
        type = "push"
        token = "silent-job-token-0123456789"
        period = "1s"
        grace = "1s"
        failure_threshold = 1
        [[monitors]]
        id = "failing-job"
        type = "push"
        token = "failing-job-token-0123456789"
        period = "1h"
        grace = "1m"
        failure_threshold = 1
    """)), flush_interval=0.05)
    client = TestClient(TestServer(create_app(probe), host="127.0.0.1"))
    await client.start_server()
    try:
        await receiver.wait_for(1)
        assert (await client.get("/ping/failing-job-token-0123456789/fail")).status == 200
        for _ in range(50):  # the silent job's first slot is a second after the start, plus a second's grace
            await probe.store.flush()
            if await probe.store.results("silent-job"):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # more failed checks: nothing more is said or opens
        health = await client.get("/healthz")
        connectivity = (await health.json())["connectivity"]
        metrics = await (await client.get("/metrics")).text()
        page = await (await client.get("/")).text()
        statuses = {m["id"]: m["status"] for m in (await (await client.get("/api/v1/status")).json())["monitors"]}
        results = await (await client.get("/api/v1/monitors/web/results")).json()
        incidents = await probe.store.incidents()
        missed = await probe.store.results("silent-job")
    finally:
        await client.close()
        await receiver.close()
    assert health.status == 200  # not probe's fault: a restart would not bring the network back
    assert (connectivity["ok"], list(connectivity["failures"])) == (False, [target])
    assert re.search(r"^probe_connectivity_ok 0\.0$", metrics, re.MULTILINE)
    (notice,) = receiver.requests
    assert (notice.json["type"], notice.json["event"], notice.json["status"]) == (
        "probe.connectivity_lost", "connectivity_lost", "down")
    assert target in notice.json["reason"]
    # A job's own failure report counts (it came over the network); its silence does not.
    assert [i.monitor_id for i in incidents] == ["failing-job"]
    assert missed and all(r.offline and "due_ms" in r.details for r in missed)
    # Cut off, the website and the silent job show no data, not down; the job that said it failed is down.
    assert statuses == {"web": "unknown", "silent-job": "unknown", "failing-job": "down"}
    rows = dict(re.findall(r'<article class="monitor" id="m-([\w-]+)" data-status="(\w+)">', page))
    assert rows == statuses
    assert results["results"] and all(r["offline"] for r in results["results"] if r["status"] == "down")
