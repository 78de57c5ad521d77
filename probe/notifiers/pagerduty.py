"""PagerDuty Events API v2: trigger while an incident is open, resolve when it resolves.
The dedup_key is the incident's, so every message about it lands on one PagerDuty alert."""
from __future__ import annotations

from dataclasses import dataclass, field

from probe.core.units import iso_utc
from probe.notifiers.base import HttpNotifier, Message, Request, as_json, cut_chars
from probe.notifiers.text import headline


@dataclass(frozen=True)
class PagerDutyOptions:
    routing_key: str = field(repr=False)
    url: str = "https://events.pagerduty.com/v2/enqueue"


def dedup_key(message: Message) -> str:
    return f"probe-incident-{message.incident_id}" if message.incident_id is not None else f"probe-{message.key}"


class PagerDuty(HttpNotifier):
    type = "pagerduty"
    Options = PagerDutyOptions
    limits = ((120, 60.0),)
    # Not maintenance, not cert_expiring, not connectivity: a page wakes a person for an outage of
    # a service now, and these notices never resolve (probe's own network comes back before a
    # "lost" can even be sent), so each would leave an alert open until someone closed it by hand.
    handles = frozenset({"open", "escalate", "update", "resolve", "remind"})

    def request(self, message: Message) -> Request:
        doc: dict = {"routing_key": self.options.routing_key,
                     "event_action": "resolve" if message.event == "resolve" else "trigger",
                     "dedup_key": dedup_key(message)}
        if message.event != "resolve":
            doc["payload"] = {"summary": cut_chars(headline(message), 1024),
                              "source": message.monitor_name or "probe",
                              "severity": message.severity, "timestamp": iso_utc(message.at_ms),
                              "custom_details": {"reason": message.reason, "body": message.body,
                                                 "impact": message.impact,
                                                 "also_affected": list(message.affected.values())}}
            if message.url:
                doc["links"] = [{"href": message.url, "text": "Status page"}]
        return Request(self.options.url, as_json(doc))
