"""Private monitors appear in no public response: a crawl of every public route and every link.

The site has two private monitors with distinctive names, URL, host and group, each with an
incident (one automatic, others written through the admin API, one of them shared with a public
monitor) and maintenance (from the config and from the admin API). The crawl starts from
/api/openapi.json (every path, with every monitor and incident id filled in, private ones
included) and follows every link found in HTML, feeds and JSON, headers included.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

from tests.web.conftest import serve
from tests.web.history import PRIVATE_HOST, PRIVATE_NAME, make_history

VAULT = dict(id="zz-vault", name="Quokka Vault Keeper", group="Hush Group", host="quokka-vault.internal.example",
             url="https://quokka-vault.internal.example:8443/ledger?key=hushhush")
# Words that only the private monitors and what was written about them alone carry.
FORBIDDEN = [VAULT["id"], "Quokka", "quokka-vault", "Hush Group", "hushhush", PRIVATE_NAME, PRIVATE_HOST,
             "Wombat", "5999"]
AUTH = {"Authorization": "Bearer t0ken"}
LINK = re.compile(r'(?:href|src)="([^"]+)"|"(/(?:api|monitors|incidents|history|badge)[^"\s]*)"'
                  r'|<link>([^<]+)</link>|<(?:id|guid[^>]*)>([^<]+)</')


def extra_config() -> str:
    now = datetime.now(timezone.utc)

    def at(delta: timedelta) -> str:
        return (now + delta).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'''
[[monitors]]
id = "{VAULT['id']}"
name = "{VAULT['name']}"
group = "{VAULT['group']}"
description = "Quokka internals"
public = false
show_target = true          # even so: private wins
type = "http"
url = "{VAULT['url']}"
[[maintenance]]
id = "quokka-patch"
title = "Quokka patch night"
description = "Wombat rekeying"
monitors = ["{VAULT['id']}"]
start = {at(-timedelta(minutes=30))}
duration = "2h"
[[maintenance]]
id = "network-work"
title = "Network work"
monitors = ["api", "{VAULT['id']}", "secret"]
start = {at(timedelta(days=1))}
duration = "1h"
'''


async def write_private_history(client) -> None:
    """Incidents and a maintenance window on the private monitors, as an operator would write them."""
    async def post(path, body, expect=201):
        response = await client.post(path, headers=AUTH, json=body)
        assert response.status == expect, await response.text()
        return await response.json()
    alone = await post("/api/v1/admin/incidents", {"title": "Quokka vault is sealed", "impact": "major",
                                                  "monitors": [VAULT["id"]], "body": "Wombat says hi"})
    await post(f"/api/v1/admin/incidents/{alone['id']}/updates", {"status": "monitoring", "body": "Quokka back"})
    await post("/api/v1/admin/incidents", {"title": "Storage is slow", "impact": "minor",
                                          "monitors": ["db", VAULT["id"], "secret"], "body": "Looking into it."})
    start = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    await post("/api/v1/admin/maintenance", {"title": "Quokka upgrade", "description": "Wombat time",
                                            "monitors": [VAULT["id"]], "start": start, "duration": "1h"})


def seeds(doc: dict, monitor_ids: list[str], incident_ids: list[int]) -> list[str]:
    paths = []
    for path in doc["paths"]:
        if "{id}" not in path:
            paths.append(path)
            continue
        ids = incident_ids if path.startswith("/incidents/") else monitor_ids
        paths += [path.replace("{id}", str(i)) for i in ids]
    paths += [f"/badge/{m}/uptime.svg?window={w}" for m in monitor_ids for w in ("24h", "90d")]
    return paths + ["/metrics"]  # without a metrics_token it is as public as the page


def links(body: str, base: str) -> set[str]:
    found = set()
    for groups in LINK.findall(body):
        link = html.unescape(next(g for g in groups if g))
        if link.startswith(base):
            link = link[len(base):] or "/"
        if link.startswith("/") and not link.startswith(("//", "/static/", "/api/v1/admin")):
            found.add(link.split("#")[0])
    return found


async def crawl(client, start: list[str], limit: int = 600) -> dict[str, tuple[int, str]]:
    base = str(client.make_url("")).rstrip("/")
    seen: dict[str, tuple[int, str]] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        response = await client.get(path)
        body = await response.text()
        seen[path] = (response.status, body + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
        queue += sorted(links(body, base) - set(seen))
    return seen


async def test_private_monitors_appear_in_no_public_response_anywhere_a_visitor_can_go(write_config):
    client, probe = await serve(await make_history(write_config, days=14, extra=extra_config()))
    try:
        await write_private_history(client)
        incidents = await probe.store.incidents(limit=1000)
        all_incidents = [i.id for i in incidents]
        private_only = [i.id for i in incidents if set(i.monitor_ids) <= {"secret", VAULT["id"]}]
        shared = [i.id for i in incidents if {"secret", VAULT["id"]} & set(i.monitor_ids)
                  and not set(i.monitor_ids) <= {"secret", VAULT["id"]}]
        assert len(private_only) >= 2 and shared  # the automatic one of "secret", the ones written above
        doc = await (await client.get("/api/openapi.json")).json()
        monitor_ids = [m.id for m in probe.config.monitors] + ["no-such-monitor"]
        pages = await crawl(client, seeds(doc, monitor_ids, all_incidents + [999999]))
        not_found = (await client.get("/monitors/no-such-monitor")).status, (await client.get("/incidents/999999")).status
    finally:
        await client.close()

    assert len(pages) > 60 and "/history.atom" in pages and "/api/v2/summary.json" in pages
    assert pages["/metrics"][0] == 200 and "probe_monitor_up{" in pages["/metrics"][1]
    for path, (status, text) in pages.items():
        assert status < 500, path
        leaked = [word for word in FORBIDDEN if word.lower() in text.lower()]
        assert not leaked, (path, leaked)
    for monitor_id in ("secret", VAULT["id"]):  # as unknown as a monitor that does not exist
        assert pages[f"/monitors/{monitor_id}"][0] == not_found[0] == 404
        assert pages[f"/api/v1/monitors/{monitor_id}"][0] == 404
        assert pages[f"/badge/{monitor_id}/status.svg"][0] == 404
    for incident_id in shared:  # public, for the sake of "db", naming only "db" (checked above)
        assert pages[f"/incidents/{incident_id}"][0] == 200
    for incident_id in private_only:
        assert pages[f"/incidents/{incident_id}"][0] == not_found[1] == 404


async def test_healthz_tells_no_private_monitor_count_and_no_path_and_the_admin_api_tells_all(write_config, tmp_path):
    client, probe = await serve(await make_history(write_config, days=2, extra=extra_config()))
    try:
        public = await (await client.get("/healthz")).json()
        probe.store.healthy, probe.store.last_error = False, f"read-only: {probe.store.path}: attempt to write"
        probe.store.write_state.problem = "read-only"
        failing = await client.get("/healthz")
        failing_text = await failing.text()
        full = await (await client.get("/api/v1/admin/health", headers=AUTH)).json()
        probe.store.healthy, probe.store.write_state.problem = True, None
    finally:
        await client.close()
    shown = [m for m in probe.config.monitors if m.public]
    assert len(shown) < len(probe.config.monitors)  # the history has private monitors
    assert public["monitors"] == len(shown) and public["status"] == "ok"
    assert failing.status == 503 and '"problems": ["read-only"]' in failing_text
    for text in (str(public), failing_text):
        assert str(tmp_path) not in text and "probe.db" not in text and "cfg.toml" not in text
    assert full["monitors"] == len(probe.config.monitors) and full["database"]["path"] == str(probe.store.path)
    assert full["problems"] == [f"read-only: {probe.store.path}: attempt to write"]
