"""The one builder of every notification `Message`: incidents, reminders, maintenance,
certificate expiry and test messages. Each takes the page's language (or the channel's own)
and time zone, and the page's links, from one place."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probe.core.models import ConnectivityChange, EventKind, Impact, IncidentEvent, MaintenanceWindow
from probe.core.texts import display_title, update_body
from probe.core.units import now_ms
from probe.notifiers import Message, NotifierConfig
from probe.notifiers.text import expiry_text, words

EVENT_NAMES = {EventKind.OPENED: "open", EventKind.REOPENED: "open", EventKind.ESCALATED: "escalate",
               EventKind.UPDATED: "update", EventKind.RESOLVED: "resolve"}  # the others notify nobody


class Messages:
    def __init__(self, config: Callable[[], Any]) -> None:
        self._config = config  # the running Config (a reload replaces it)

    @property
    def config(self):
        return self._config()

    def _language(self, channel: NotifierConfig) -> str:
        return channel.settings.language or self.config.page.language

    def _link(self, path: str) -> str:
        url = self.config.page.url
        return f"{url.rstrip('/')}{path}" if url else ""

    def incident(self, channel: NotifierConfig, event: IncidentEvent, key: str | None = None,
                 name: str | None = None) -> Message:
        """An incident event, or a reminder of an open incident (`name` "remind")."""
        language = self._language(channel)
        incident = event.incident
        monitor = self.config.monitor(incident.monitor_id) if incident.monitor_id else None
        monitor_name = monitor.display_name if monitor else ""
        name = name or EVENT_NAMES[event.kind]
        status = "up" if name == "resolve" else ("down" if incident.impact.rank >= Impact.MAJOR.rank else "degraded")
        return Message(
            key=key or f"event:{event.id}", event="reopen" if event.kind is EventKind.REOPENED else name,
            status=status, title=display_title(incident, monitor_name, language), monitor_id=incident.monitor_id,
            monitor_name=monitor_name, reason=event.reason or incident.reason, impact=incident.impact.value,
            body=event.body or update_body(incident.status, event.kind.value, language), incident_id=incident.id,
            started_ms=incident.started_ms, at_ms=event.at_ms, resolved_ms=incident.resolved_ms,
            url=self._link(f"/incidents/{incident.id}"), language=language, timezone=self.config.page.timezone,
            affected=self._names(incident.affected) if incident.monitor_id else {})

    def _names(self, monitor_ids) -> dict[str, str]:
        monitors = (self.config.monitor(m) for m in monitor_ids)
        return {m.id: m.display_name for m in monitors if m is not None}

    def maintenance(self, channel: NotifierConfig, window: MaintenanceWindow, edge: str, at: int) -> Message:
        """A window's start or end (`edge`); "scheduled" announces it ahead. The planned end is
        `scheduled_until_ms`; `resolved_ms` is set only once the window has ended."""
        covered = tuple((m, monitor.display_name) for m in window.monitors
                        if (monitor := self.config.monitor(m)) is not None)
        return Message(
            key=f"maintenance-{edge}:{window.id}", event=f"maintenance_{edge}",
            status="up" if edge == "end" else "maintenance", title=window.title, monitor_id=None,
            monitor_name="", reason="", impact="none", body=window.description, incident_id=None,
            started_ms=window.start_ms, at_ms=at, resolved_ms=window.end_ms if edge == "end" else None,
            url=self.config.page.url, language=self._language(channel), timezone=self.config.page.timezone,
            scheduled_until_ms=window.end_ms, covered=covered)

    def certificate(self, channel: NotifierConfig, monitor, expires_ts: int, threshold: int, status: str,
                    now_s: float) -> Message:
        language = self._language(channel)
        at_ms = int(now_s * 1000)
        # The monitor's page: private monitors have none, so no link rather than a 404.
        url = self._link(f"/monitors/{monitor.id}") if monitor.public else ""
        return Message(
            key=f"cert:{monitor.id}:{expires_ts}:{threshold}", event="cert_expiring",
            status=status, title=expiry_text(expires_ts - now_s, language), monitor_id=monitor.id,
            monitor_name=monitor.display_name, reason="", impact="none", body=words(language)["cert_body"],
            incident_id=None, started_ms=at_ms, at_ms=at_ms, url=url, language=language,
            timezone=self.config.page.timezone, cert_expires_ms=expires_ts * 1000)

    def connectivity(self, channel: NotifierConfig, change: ConnectivityChange) -> Message:
        """probe's own network went down (every connectivity target failed) or came back."""
        language = self._language(channel)
        edge = "lost" if change.lost else "restored"
        w = words(language)
        reason = "; ".join(f"{target}: {why}" for target, why in change.failures.items()) if change.lost else ""
        return Message(
            key=f"connectivity_{edge}:{change.since_ms}", event=f"connectivity_{edge}",
            status="down" if change.lost else "up", title=w[f"connectivity_{edge}_title"], monitor_id=None,
            monitor_name="", reason=reason, impact="none", body=w[f"connectivity_{edge}_body"], incident_id=None,
            started_ms=change.since_ms, at_ms=change.at_ms, resolved_ms=None if change.lost else change.at_ms,
            url="", language=language, timezone=self.config.page.timezone)

    def test(self, channel: NotifierConfig) -> Message:
        """What `probe notify-test` sends."""
        now = now_ms()
        return Message(key=f"test:{now}", event="test", status="up", title="probe test", monitor_id=None,
                       monitor_name="", reason="", impact="none", body="", incident_id=None, started_ms=now,
                       at_ms=now, url=self.config.page.url, language=self._language(channel),
                       timezone=self.config.page.timezone)
