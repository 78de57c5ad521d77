"""Statuspage v2 routes, field by field, as tools written for Atlassian's API read them."""
import re
from datetime import datetime

from probe.view.statuspage import ROUTES

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
ID = re.compile(r"^[0-9a-z]{12}$")
PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                  "start_date", "group_id", "page_id", "group", "only_show_if_degraded"}
INCIDENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                 "shortlink", "started_at", "page_id", "incident_updates", "components"}
UPDATE_KEYS = {"id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
               "affected_components"}
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}


def check_page(page):
    assert PAGE_KEYS <= page.keys() and ID.match(page["id"]) and ISO.match(page["updated_at"])
    assert page["name"] == "Acme Status" and page["time_zone"] == "Europe/Berlin"


def check_incident(incident, page_id):
    assert INCIDENT_KEYS <= incident.keys()
    assert ID.match(incident["id"]) and incident["page_id"] == page_id
    assert incident["status"] in {"investigating", "identified", "monitoring", "resolved", "postmortem"}
    assert incident["impact"] in {"none", "minor", "major", "critical"}
    for key in ("created_at", "updated_at", "started_at"):
        assert ISO.match(incident[key]), key
    for update in incident["incident_updates"]:
        assert UPDATE_KEYS <= update.keys() and update["incident_id"] == incident["id"]
        assert update["body"] and ISO.match(update["display_at"])
    times = [datetime.fromisoformat(u["created_at"]) for u in incident["incident_updates"]]
    assert times == sorted(times, reverse=True)  # newest first, as Statuspage lists them


async def test_summary_has_the_components_status_and_open_incident(site):
    client, _ = site
    doc = await (await client.get("/api/v2/summary.json")).json()
    assert set(doc) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    check_page(doc["page"])
    assert doc["status"] == {"indicator": "major", "description": "Partial System Outage"}
    by_name = {c["name"]: c for c in doc["components"]}
    website = next(n for n in by_name if n.startswith("Website"))
    assert set(by_name) == {"Public", "Public API", website, "Backend", "Database"}
    for component in doc["components"]:
        assert COMPONENT_KEYS <= component.keys()
        assert component["status"] in COMPONENT_STATUSES and ID.match(component["id"])
        assert component["page_id"] == doc["page"]["id"] and ISO.match(component["created_at"])
    public, backend, db = by_name["Public"], by_name["Backend"], by_name["Database"]
    assert public["group"] is True
    assert set(public["components"]) == {by_name["Public API"]["id"], by_name[website]["id"]}
    assert db["status"] == "major_outage" and db["group_id"] == backend["id"] and db["group"] is False
    assert backend["status"] == "major_outage"  # its only member is down
    assert by_name["Public API"]["status"] == "operational"
    (incident,) = doc["incidents"]
    check_incident(incident, doc["page"]["id"])
    assert (incident["name"], incident["status"], incident["impact"]) == ("Database is down", "investigating", "major")
    assert incident["resolved_at"] is None
    assert incident["incident_updates"][0]["body"] == "We are currently investigating this issue."
    assert [c["name"] for c in incident["components"]] == ["Database"]


async def test_every_v2_route_answers_in_statuspage_shape(site):
    client, _ = site
    for name in ROUTES:
        response = await client.get(f"/api/v2/{name}")
        assert response.status == 200 and response.content_type == "application/json", name
        doc = await response.json()
        check_page(doc["page"])
        for incident in doc.get("incidents", []):
            check_incident(incident, doc["page"]["id"])
        for window in doc.get("scheduled_maintenances", []):
            check_incident(window, doc["page"]["id"])
            assert window["impact"] == "maintenance" and ISO.match(window["scheduled_for"])


async def test_past_incidents_are_resolved_with_their_times(site):
    client, _ = site
    doc = await (await client.get("/api/v2/incidents.json")).json()
    resolved = [i for i in doc["incidents"] if i["status"] == "resolved"]
    assert {i["name"] for i in resolved} >= {"Public API is down"}
    api = next(i for i in resolved if i["name"] == "Public API is down")
    took = datetime.fromisoformat(api["resolved_at"]) - datetime.fromisoformat(api["started_at"])
    assert took.total_seconds() == 3600
    assert [u["status"] for u in api["incident_updates"]] == ["resolved", "investigating"]
    unresolved = await (await client.get("/api/v2/incidents/unresolved.json")).json()
    assert [i["name"] for i in unresolved["incidents"]] == ["Database is down"]


async def test_a_statuspage_client_reads_the_page(site):
    """What a Statuspage aggregator does: summary -> overall status, broken components, open incidents."""
    client, _ = site
    summary = await (await client.get("/api/v2/summary.json")).json()
    broken = sorted(c["name"] for c in summary["components"]
                    if not c["group"] and c["status"] != "operational")
    assert summary["status"]["indicator"] in ("minor", "major", "critical")
    assert broken == ["Database"]
    assert [i["name"] for i in summary["incidents"] if i["status"] != "resolved"] == ["Database is down"]


async def test_a_window_that_ended_is_verifying_until_its_monitors_check_up_again(write_config):
    from probe.core.models import MaintenanceWindow, ResultRecord, Status
    from probe.core.units import now_ms
    from probe.web.page import CACHE
    from tests.web.test_subscribe import open_site
    site, smtp = await open_site(write_config)
    try:
        probe, now = site.probe, now_ms()
        window = MaintenanceWindow("op-1", "Upgrade", ("web",), now - 7_200_000, now - 600_000)
        await probe.schedule_maintenance(window, "test")
        web = probe.config.monitor("web")
        probe.record(web, ResultRecord("web", now - 300_000, now - 300_000, Status.DOWN, "refused"))

        async def active():
            site.client.app[CACHE]._entries.clear()  # the 5 s cache would hide the change
            doc = await (await site.client.get("/api/v2/scheduled-maintenances/active.json")).json()
            return [(w["name"], w["status"], w["resolved_at"]) for w in doc["scheduled_maintenances"]]

        assert await active() == [("Upgrade", "verifying", None)]
        probe.record(web, ResultRecord("web", now - 1000, now - 1000, Status.UP, "connected"))
        assert await active() == []
        doc = await (await site.client.get("/api/v2/scheduled-maintenances.json")).json()
        assert [w["status"] for w in doc["scheduled_maintenances"]] == ["completed"]
    finally:
        await site.client.close()
        await site.hook.close()
        smtp.stop()
