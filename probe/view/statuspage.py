"""Atlassian Statuspage's public API v2, so tools written for it read a probe page unchanged.

Field names and enum values follow Statuspage (see README): monitors are components,
groups are components with `group: true`, incidents and maintenance carry their updates.
Ids are 12 lowercase alphanumerics derived from our ids, stable across restarts.
"""
from __future__ import annotations

import hashlib

from probe.core.models import EventKind, Impact, MaintenanceWindow
from probe.core.texts import display_title, update_body
from probe.core.units import iso_utc
from probe.view import maintenance, public
from probe.view.overall import STATES, TO_COMPONENT, worst_component

# page status -> component status; "unknown" (no result yet) is None: such a component is left out
COMPONENT_STATUS = TO_COMPONENT
INDICATOR = STATES  # overall state -> (indicator, description), in Statuspage's words
WEBHOOK_DOCUMENTATION = "https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/"


def sp_id(kind: str, key: object) -> str:
    """A Statuspage-shaped id: 12 characters of [0-9a-z], the same for the same thing."""
    number = int.from_bytes(hashlib.sha1(f"{kind}:{key}".encode()).digest()[:10], "big")
    chars = []
    for _ in range(12):
        number, rest = divmod(number, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[rest])
    return "".join(chars)


class Shape:
    """Builds Statuspage objects from one PublicView."""

    def __init__(self, probe, view: public.PublicView, request=None) -> None:
        """`request`: where the page's URL comes from when [page] url is not set (None: no URL)."""
        self.probe, self.view, self.request = probe, view, request
        self.page_id = sp_id("page", probe.config.page.title)

    def page(self) -> dict:
        cfg = self.probe.config.page
        url = cfg.url or (f"{self.request.scheme}://{self.request.host}" if self.request else "")
        return {"id": self.page_id, "name": cfg.title, "url": url, "time_zone": cfg.timezone,
                "updated_at": iso_utc(self.view.now_ms)}

    def status(self) -> dict:
        indicator, description = INDICATOR[self.view.overall]
        return {"indicator": indicator, "description": description}

    def components(self) -> list[dict]:
        out, position = [], 0
        for group, monitors in self.view.groups:
            monitors = [m for m in monitors if COMPONENT_STATUS[m.status]]  # no status yet: left out
            group_id = sp_id("group", group) if group else None
            if group and monitors:
                position += 1
                out.append(self._component(group_id, group, _worst(monitors), position, None, True,
                                           [sp_id("monitor", m.id) for m in monitors]))
            for m in monitors:
                position += 1
                out.append(self._component(sp_id("monitor", m.id), m.name, COMPONENT_STATUS[m.status], position,
                                           group_id, False, None, m.description or None))
        return out

    def _component(self, cid, name, status, position, group_id, group, members, description=None) -> dict:
        created = iso_utc(self.probe.started_ms or self.view.now_ms)
        doc = {"id": cid, "name": name, "status": status, "created_at": created,
               "updated_at": iso_utc(self.view.now_ms), "position": position, "description": description,
               "showcase": not group, "start_date": None, "group_id": group_id, "page_id": self.page_id,
               "group": group, "only_show_if_degraded": False}
        if group:
            doc["components"] = members
        return doc

    def incident(self, item: public.IncidentView) -> dict:
        inc = item.incident
        components = [self._component(sp_id("monitor", m.id), m.name, COMPONENT_STATUS[m.status],
                                      0, None, False, None) for m in item.monitors if COMPONENT_STATUS.get(m.status)]
        updates = [self._update(inc.id, u) for u in reversed(item.updates)]  # newest first, as Statuspage
        monitoring = next((u.created_ms for u in item.updates if u.status == "monitoring"), None)
        last = max([u.created_ms for u in item.updates] + [inc.started_ms, inc.postmortem_ms or 0])
        return {"id": sp_id("incident", inc.id), "name": item.title,
                "status": "postmortem" if inc.postmortem else inc.status, "impact": inc.impact.value,
                "created_at": iso_utc(inc.started_ms), "updated_at": iso_utc(last),
                "monitoring_at": iso_utc(monitoring), "resolved_at": iso_utc(inc.resolved_ms),
                "started_at": iso_utc(inc.started_ms), "shortlink": self._link(f"/incidents/{inc.id}"),
                "page_id": self.page_id, "postmortem_body": inc.postmortem or None,
                "postmortem_published_at": iso_utc(inc.postmortem_ms),
                "incident_updates": updates, "components": components}

    def _update(self, incident_id: int, u) -> dict:
        language = self.probe.config.page.language
        at = iso_utc(u.created_ms)
        return {"id": sp_id("update", u.id), "status": u.status, "body": u.body or update_body(u.status, u.kind, language),
                "incident_id": sp_id("incident", incident_id), "created_at": at, "updated_at": at,
                "display_at": at, "affected_components": None, "deliver_notifications": True,
                "custom_tweet": None, "tweet_id": None}

    def maintenance_status(self, window: MaintenanceWindow) -> str:
        return maintenance.state(self.probe, window, self.view.now_ms)

    def maintenance(self, window: MaintenanceWindow) -> dict:
        status = self.maintenance_status(window)
        created = iso_utc(window.start_ms)
        monitors = [m for m in self.view.monitors if m.id in window.monitors]
        body = window.description or window.title
        return {"id": sp_id("maintenance", window.id), "name": window.title, "status": status,
                "impact": "maintenance", "created_at": created, "updated_at": created,
                "monitoring_at": None, "resolved_at": iso_utc(window.end_ms) if status == "completed" else None,
                "started_at": created, "shortlink": self._link("/history"), "page_id": self.page_id,
                "scheduled_for": iso_utc(window.start_ms), "scheduled_until": iso_utc(window.end_ms),
                "incident_updates": [{"id": sp_id("maintenance-update", f"{window.id}:{status}"), "status": status,
                                      "body": body, "incident_id": sp_id("maintenance", window.id),
                                      "created_at": created, "updated_at": created, "display_at": created,
                                      "affected_components": None}],
                "components": [self._component(sp_id("monitor", m.id), m.name, COMPONENT_STATUS[m.status], 0,
                                               None, False, None) for m in monitors if COMPONENT_STATUS[m.status]]}

    def component_change(self, event, monitor: public.MonitorView, old: str, new: str) -> dict:
        cid = sp_id("monitor", monitor.id)
        return {"component_update": {"created_at": iso_utc(event.at_ms), "new_status": new, "old_status": old,
                                     "id": sp_id("component-update", event.id), "component_id": cid},
                "component": {"created_at": iso_utc(self.probe.started_ms or self.view.now_ms), "id": cid,
                              "name": monitor.name, "status": new}}

    def _link(self, path: str) -> str:
        return self.page()["url"].rstrip("/") + path

    def incidents(self, only_open: bool = False) -> list[dict]:
        items = self.view.active_incidents if only_open else self.view.incidents[:50]
        return [self.incident(i) for i in items]

    def windows(self, statuses: tuple[str, ...] | None = None) -> list[dict]:
        docs = [self.maintenance(w) for w in self.view.maintenance]
        return [d for d in docs if statuses is None or d["status"] in statuses]


# ---- webhook subscribers (the payloads Statuspage POSTs to them) -------------------------

async def _webhook_shape(probe, now: int | None = None) -> Shape:
    view = await public.build_view(probe, now, probe.config.page.language, figures=False)
    return Shape(probe, view, None)


def _envelope(shape: Shape) -> dict:
    # Webhook subscribers are the operator's, in the config: they leave by an edit, not a link.
    indicator, description = INDICATOR[shape.view.overall]
    return {"meta": {"unsubscribe": None, "documentation": WEBHOOK_DOCUMENTATION},
            "page": {"id": shape.page_id, "status_indicator": indicator, "status_description": description}}


async def incident_payloads(probe, event) -> list[tuple[str, dict]]:
    """(key, document) for one incident event: the incident with its updates so far and, when
    a monitor's own incident opens, escalates or resolves, that component's change."""
    shape = await _webhook_shape(probe)
    incident = event.incident
    monitors = [m for m in (shape.view.monitor(i) for i in incident.monitor_ids) if m is not None]
    updates = (await probe.store.incident_updates([incident.id]))[incident.id]
    language = probe.config.page.language
    item = public.IncidentView(incident, display_title(incident, monitors[0].name if monitors else "", language),
                               monitors, [u for u in updates if u.created_ms <= event.at_ms])
    doc = shape.incident(item) | {"impact_override": None, "backfilled": False}
    out = [(f"event:{event.id}", _envelope(shape) | {"incident": doc})]
    change = _component_change(event)
    if incident.monitor_id and monitors and change:
        out.append((f"event:{event.id}:component", _envelope(shape) | shape.component_change(event, monitors[0], *change)))
    return out


def _component_change(event) -> tuple[str, str] | None:
    bad = "major_outage" if event.incident.impact.rank >= Impact.MAJOR.rank else "degraded_performance"
    return {EventKind.OPENED: ("operational", bad), EventKind.REOPENED: ("operational", bad),
            EventKind.ESCALATED: ("degraded_performance", "major_outage"),
            EventKind.RESOLVED: (bad, "operational")}.get(event.kind)


async def maintenance_payload(probe, window: MaintenanceWindow, now: int) -> dict:
    shape = await _webhook_shape(probe, now)
    doc = shape.maintenance(window) | {"postmortem_body": None, "postmortem_published_at": None,
                                       "impact_override": None, "backfilled": False}
    return _envelope(shape) | {"incident": doc}


def _worst(monitors: list[public.MonitorView]) -> str:
    """A group's status: major outage when all its members are, partial when some are, else the worst."""
    statuses = [COMPONENT_STATUS[m.status] for m in monitors]
    if statuses and all(s == "major_outage" for s in statuses):
        return "major_outage"
    if "major_outage" in statuses:
        return "partial_outage"
    return worst_component(statuses) or "operational"


ROUTES = {
    "summary.json": lambda s: {"page": s.page(), "status": s.status(), "components": s.components(),
                               "incidents": s.incidents(only_open=True),
                               "scheduled_maintenances": s.windows(("scheduled", "in_progress", "verifying"))},
    "status.json": lambda s: {"page": s.page(), "status": s.status()},
    "components.json": lambda s: {"page": s.page(), "components": s.components()},
    "incidents.json": lambda s: {"page": s.page(), "incidents": s.incidents()},
    "incidents/unresolved.json": lambda s: {"page": s.page(), "incidents": s.incidents(only_open=True)},
    "scheduled-maintenances.json": lambda s: {"page": s.page(), "scheduled_maintenances": s.windows()},
    "scheduled-maintenances/upcoming.json": lambda s: {"page": s.page(),
                                                       "scheduled_maintenances": s.windows(("scheduled",))},
    "scheduled-maintenances/active.json": lambda s: {"page": s.page(), "scheduled_maintenances":
                                                     s.windows(("in_progress", "verifying"))},
}
