"""A running status page over generated history, shared by the page and API tests."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.service import Probe
from probe.web.app import create_app
from tests.web.history import make_history


async def serve(path, middlewares=()):
    """The app over the history at `path`; `middlewares` go innermost, next to the handlers."""
    probe = Probe(load_config(path), flush_interval=0.05)
    app = create_app(probe)
    app.middlewares.extend(middlewares)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    for monitor_id in probe.scheduler.monitor_ids():
        probe.scheduler.unschedule(monitor_id)  # the history is the test's; no live checks
    return client, probe


@pytest.fixture
async def site(write_config):
    client, probe = await serve(await make_history(write_config))
    yield client, probe
    await client.close()
