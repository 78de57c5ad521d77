"""A monitor's page draws what it depends on and what depends on it (public monitors only), and an
incident that speaks for its dependents is titled by its own monitor and names them after it."""
import re

from probe.core.models import EventKind, Impact, Incident, IncidentEvent
from tests.web.conftest import serve


def monitor(monitor_id, depends_on=(), public=True):
    deps = ", ".join(f'"{d}"' for d in depends_on)
    return (f'[[monitors]]\nid = "{monitor_id}"\nname = "{monitor_id.title()}"\ntype = "tcp"\nhost = "127.0.0.1"\n'
            f'port = 1\ndepends_on = [{deps}]\npublic = {"true" if public else "false"}\n')


async def test_the_monitor_page_draws_its_dependencies_and_leaves_private_ones_out(write_config):
    client, probe = await serve(write_config(
        '[storage]\npath = "probe.db"\n' + monitor("api", ["db"]) + monitor("router") + monitor("db", ["router"])
        + monitor("secret", ["db"], public=False)))
    try:
        html = await (await client.get("/monitors/db")).text()
        drawing = re.search(r'<div class="dependencies">(.+?)<h3>', html, re.DOTALL).group(1)
        assert re.findall(r'<a href="/monitors/(\w+)">', drawing) == ["router", "api"]
        assert drawing.index("Depends on") < drawing.index("<strong>Db</strong>") < drawing.index("Needed by")
        assert "Secret" not in html
        lone = await (await client.get("/monitors/router")).text()
        assert "Needed by" in lone and "Depends on" not in lone
    finally:
        await client.close()


async def test_an_incident_is_titled_by_its_own_monitor_and_lists_its_dependents_after_it(write_config):
    # "api" comes first in the file: the title must still be the incident's own monitor's.
    client, probe = await serve(write_config(
        '[storage]\npath = "probe.db"\n' + monitor("api", ["db"]) + monitor("db")))
    try:
        incident = Incident(probe.store.allocate_id("incidents"), "db", "", Impact.MAJOR, "investigating",
                            1_000, reason="x", affected=("api",))
        probe.store.submit_events([IncidentEvent(probe.store.allocate_id("events"), EventKind.OPENED, 1_000,
                                                 incident)])
        await probe.store.flush()
        html = await (await client.get(f"/incidents/{incident.id}")).text()
        assert "Db is down" in html and "Api is down" not in html
        assert re.search(r'<p class="muted">Db, Api</p>', html)
    finally:
        await client.close()
