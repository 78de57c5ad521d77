"""[subscribers]: who may subscribe to the status page (email, through an email channel) and
the operator's webhook subscribers. What subscribers do and hear is probe/notify/subscribers/."""
from __future__ import annotations

import re
from dataclasses import dataclass

from probe.config.schema import Duration, load, load_entries, show

ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class WebhookSubscriber:
    """One [[subscribers.webhooks]] entry: a URL that receives Statuspage-shaped payloads."""

    id: str
    url: str
    groups: tuple[str, ...] = ()  # only these monitor groups; empty: everything public

    def problems(self):
        if not ID.match(self.id):
            yield "id", f"must match [a-z0-9][a-z0-9_-]* (got {show(self.id)})"
        if not self.url.startswith(("http://", "https://")):
            yield "url", f"must be an http:// or https:// URL (got {show(self.url)})"


@dataclass(frozen=True)
class SubscribersConfig:
    email_via: str = ""  # id of an email [[notifiers]] entry; empty: visitors cannot subscribe
    confirm_within: Duration = 172_800.0  # a confirmation link expires after this (48h)
    webhooks: tuple[WebhookSubscriber, ...] = ()

    @property
    def email(self) -> bool:
        return bool(self.email_via)

    def problems(self):
        if not 300 <= self.confirm_within <= 30 * 86400:
            yield "confirm_within", "must be between 5m and 30d"


def parse_subscribers(table, channels, page, groups: set[str], problems) -> SubscribersConfig:
    """[subscribers] -> config; email_via must name an email notifier, links need [page] url."""
    if not isinstance(table, dict):
        problems.add("", "subscribers", "must be a table ([subscribers])")
        return SubscribersConfig()
    hooks = load_entries(table.get("webhooks", []), "subscribers.webhooks", problems,
                         lambda t, place: _webhook(t, groups, problems, place))
    config = load(SubscribersConfig, {k: v for k, v in table.items() if k != "webhooks"}, problems, "subscribers")
    via_id = table.get("email_via")
    if isinstance(via_id, str) and via_id:
        via = next((c for c in channels if c.id == via_id), None)
        if via is None or via.type != "email":
            problems.add("subscribers", "email_via", f"must name an [[notifiers]] entry of type \"email\" "
                         f"(got {show(via_id)})")
        if not page.url:
            problems.add("subscribers", "email_via", "needs [page] url: the links in subscriber mail point there")
    if config is None:
        return SubscribersConfig()
    return SubscribersConfig(config.email_via, config.confirm_within, hooks)


def _webhook(table: dict, groups: set[str], problems, place: str) -> WebhookSubscriber | None:
    hook = load(WebhookSubscriber, table, problems, place)
    for group in hook.groups if hook else ():
        if group not in groups:
            problems.add(place, "groups", f"names no monitor group (got {show(group)})")
    return hook
