"""Notification channels, registered by their TOML `type`.

Adding a channel: its module here, one line in REGISTRY below, its section in the README.
`parse_notifiers` reads the [[notifiers]] array of the config.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from probe.notifiers.base import Message, Notifier, NotifierSettings, NotifyError
from probe.notifiers.dingtalk import DingTalk
from probe.notifiers.discord import Discord
from probe.notifiers.email import Email
from probe.notifiers.feishu import Feishu, Lark
from probe.notifiers.gotify import Gotify
from probe.notifiers.ntfy import Ntfy
from probe.notifiers.pagerduty import PagerDuty
from probe.notifiers.slack import Slack
from probe.notifiers.teams import Teams
from probe.notifiers.telegram import Telegram
from probe.notifiers.webhook import Webhook
from probe.notifiers.wecom import WeCom

REGISTRY: dict[str, type[Notifier]] = {c.type: c for c in (
    Email, Webhook, DingTalk, Feishu, Lark, WeCom, Slack, Discord, Teams, Telegram, Ntfy, Gotify, PagerDuty)}

NOTIFIER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KEY_ALIASES = {"from": "from_"}  # TOML keys that are Python keywords


@dataclass(frozen=True)
class NotifierConfig:
    settings: NotifierSettings
    options: Any  # the channel's Options dataclass

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def type(self) -> str:
        return self.settings.type

    def make(self) -> Notifier:
        return REGISTRY[self.settings.type](self.settings, self.options)


def parse_notifiers(items: Any, problems) -> tuple[NotifierConfig, ...]:
    """[[notifiers]] -> configs, one problem line per mistake, naming the notifier and key."""
    from probe.config.schema import load_entries

    return load_entries(items, "notifiers", problems, lambda table, place: _notifier(table, problems, place))


def _notifier(table: dict, problems, place: str) -> NotifierConfig | None:
    from probe.config.schema import field_types, load, show, unknown_key_message

    kind = table.get("type")
    channel = REGISTRY.get(kind) if isinstance(kind, str) else None
    if channel is None:
        problems.add(place, "type", "is required" if kind is None else
                     f"must be one of {' | '.join(REGISTRY)} (got {show(kind)})")
        return None
    table = {KEY_ALIASES.get(k, k): v for k, v in table.items()}
    common, own = set(field_types(NotifierSettings)), set(field_types(channel.Options))
    before = len(problems.lines)
    for key in table:
        if key not in common and key not in own:
            problems.add(place, None, unknown_key_message(key, common | own) + f" for type {show(kind)}")
    settings = load(NotifierSettings, {k: v for k, v in table.items() if k in common}, problems, place)
    options = load(channel.Options, {k: v for k, v in table.items() if k in own}, problems, place)
    if settings is not None and not NOTIFIER_ID.match(settings.id):
        problems.add(place, "id", f"must match [a-z0-9][a-z0-9_-]* (got {show(settings.id)})")
    for key in ("url",):
        value = getattr(options, key, None)
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            problems.add(place, key, f"must be an http:// or https:// URL (got {show(value)})")
    if len(problems.lines) > before or settings is None or options is None:
        return None
    return NotifierConfig(settings, options)


__all__ = ["REGISTRY", "Message", "Notifier", "NotifierConfig", "NotifyError", "parse_notifiers"]
