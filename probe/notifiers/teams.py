"""Microsoft Teams through a Workflows webhook (Office 365 connectors are retired): an
Adaptive Card. Workflows answer 202 Accepted."""
from __future__ import annotations

from dataclasses import dataclass

from probe.notifiers.base import HttpNotifier, Message, Request, as_json, cut_chars
from probe.notifiers.text import headline, render

COLOURS = {"critical": "attention", "error": "attention", "warning": "warning", "info": "good"}


@dataclass(frozen=True)
class TeamsOptions:
    url: str  # the Workflows "When a Teams webhook request is received" URL


class Teams(HttpNotifier):
    type = "teams"
    Options = TeamsOptions

    def request(self, message: Message) -> Request:
        body: list[dict] = [
            {"type": "TextBlock", "text": headline(message), "weight": "bolder", "size": "medium", "wrap": True,
             "color": COLOURS[message.severity]},
            {"type": "TextBlock", "text": cut_chars(render(message, "text").split("\n", 2)[-1], 20_000), "wrap": True},
        ]
        card: dict = {"type": "AdaptiveCard", "version": "1.4",
                      "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "body": body}
        if message.url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Status page", "url": message.url}]
        doc = {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}
        return Request(self.options.url, as_json(doc))
