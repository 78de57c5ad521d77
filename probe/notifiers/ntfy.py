"""ntfy: a JSON publish to the server root, with title, priority, tags and a click link."""
from __future__ import annotations

from dataclasses import dataclass, field

from probe.notifiers.base import HttpNotifier, Message, Request, as_json, cut_bytes
from probe.notifiers.text import headline, render

PRIORITY = {"critical": 5, "error": 4, "warning": 3, "info": 2}
TAGS = {"critical": "rotating_light", "error": "red_circle", "warning": "warning", "info": "white_check_mark"}


@dataclass(frozen=True)
class NtfyOptions:
    topic: str
    url: str = "https://ntfy.sh"
    token: str | None = field(default=None, repr=False)  # an access token, sent as Bearer


class Ntfy(HttpNotifier):
    type = "ntfy"
    Options = NtfyOptions

    def request(self, message: Message) -> Request:
        doc = {"topic": self.options.topic, "title": headline(message),
               "message": cut_bytes(render(message, "text").split("\n", 2)[-1].strip(), 4096),
               "priority": PRIORITY[message.severity], "tags": [TAGS[message.severity]]}
        if message.url:
            doc["click"] = message.url
        headers = {"Authorization": f"Bearer {self.options.token}"} if self.options.token else {}
        return Request(self.options.url.rstrip("/") + "/", as_json(doc), headers)
