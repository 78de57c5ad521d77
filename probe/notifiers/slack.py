"""Slack incoming webhook: blocks, with the headline as the text fallback for notifications."""
from __future__ import annotations

from dataclasses import dataclass

from probe.notifiers.base import HttpNotifier, Message, Request, as_json, cut_chars
from probe.notifiers.text import headline, render


@dataclass(frozen=True)
class SlackOptions:
    url: str  # https://hooks.slack.com/services/...


def slack_escape(text: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions; & < > must be entities.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack(HttpNotifier):
    type = "slack"
    Options = SlackOptions
    limits = ((1, 1.0),)

    def request(self, message: Message) -> Request:
        body = slack_escape(render(message, "text").split("\n", 2)[-1])  # the headline is the header block
        blocks: list[dict] = [
            {"type": "header", "text": {"type": "plain_text", "text": cut_chars(headline(message), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": cut_chars(body, 3000)}},
        ]
        if message.url:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{message.url}>"}]})
        return Request(self.options.url, as_json({"text": headline(message), "blocks": blocks}))
