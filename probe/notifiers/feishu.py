"""Feishu (and Lark, the same robot on its own host): an interactive card coloured by
severity. Signed with a timestamp in seconds, both in the JSON body; only code 0 is delivered."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from probe.notifiers.base import (
    HttpNotifier,
    Message,
    Request,
    answer_json,
    as_json,
    cut_bytes,
    robot_verdict,
)
from probe.notifiers.text import headline, render

THROTTLED = (11232, 9499)  # "frequency limited" / "too many requests"
CONTENT_LIMIT = 18_000  # bytes of card text; the whole body must stay under ~20 KB
COLOURS = {"critical": "red", "error": "red", "warning": "orange", "info": "green"}


@dataclass(frozen=True)
class FeishuOptions:
    url: str  # https://open.feishu.cn/open-apis/bot/v2/hook/<id>
    secret: str | None = field(default=None, repr=False)


def sign(secret: str, timestamp_s: int) -> str:
    # The key is "timestamp\nsecret" and the message is empty: the reverse of DingTalk.
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Feishu(HttpNotifier):
    type = "feishu"
    Options = FeishuOptions
    limits = ((5, 1.0), (100, 60.0))

    def request(self, message: Message) -> Request:
        colour = "blue" if message.event in ("update", "test") else COLOURS[message.severity]
        doc: dict = {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": headline(message)}, "template": colour},
            "elements": [{"tag": "div", "text": {"tag": "lark_md",
                                                 "content": cut_bytes(render(message, "markdown"), CONTENT_LIMIT)}}]}}
        if self.options.secret:
            timestamp = int(time.time())
            doc = {"timestamp": str(timestamp), "sign": sign(self.options.secret, timestamp)} | doc
        return Request(self.options.url, as_json(doc))

    def accept(self, status: int, text: str) -> None:
        doc = answer_json(text)
        robot_verdict(f"{self.type} code", doc.get("code", doc.get("StatusCode")),
                      doc.get("msg", doc.get("StatusMessage", "")), THROTTLED, 60)


class Lark(Feishu):
    type = "lark"  # https://open.larksuite.com/open-apis/bot/v2/hook/<id>
