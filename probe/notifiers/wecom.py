"""WeCom (企业微信) group robot: markdown of at most 4096 bytes; only errcode 0 is delivered."""
from __future__ import annotations

from dataclasses import dataclass

from probe.notifiers.base import (
    HttpNotifier,
    Message,
    Request,
    answer_json,
    as_json,
    cut_bytes,
    robot_verdict,
)
from probe.notifiers.text import render

THROTTLED = 45009  # more than 20 messages a minute
CONTENT_LIMIT = 4096  # bytes, not characters


@dataclass(frozen=True)
class WeComOptions:
    url: str  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...


class WeCom(HttpNotifier):
    type = "wecom"
    Options = WeComOptions
    limits = ((20, 60.0),)

    def request(self, message: Message) -> Request:
        doc = {"msgtype": "markdown", "markdown": {"content": cut_bytes(render(message, "markdown"), CONTENT_LIMIT)}}
        return Request(self.options.url, as_json(doc))

    def accept(self, status: int, text: str) -> None:
        doc = answer_json(text)
        robot_verdict("WeCom errcode", doc.get("errcode"), doc.get("errmsg", ""), (THROTTLED,), 60)
