"""DingTalk group robot: markdown with a title; signed with a millisecond timestamp in the URL.
DingTalk answers HTTP 200 to rejected messages too: only errcode 0 is delivered."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass, field

import yarl

from probe.notifiers.base import (
    HttpNotifier,
    Message,
    Request,
    answer_json,
    as_json,
    cut_bytes,
    cut_chars,
    robot_verdict,
)
from probe.notifiers.text import headline, render

THROTTLED = 130101  # more than 20 messages a minute: the robot is muted for about 10 minutes
BODY_LIMIT = 20_000  # bytes


@dataclass(frozen=True)
class DingTalkOptions:
    url: str  # https://oapi.dingtalk.com/robot/send?access_token=...
    secret: str | None = field(default=None, repr=False)  # "SEC..." when the robot signs
    at_mobiles: tuple[str, ...] = ()
    at_all: bool = False


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


class DingTalk(HttpNotifier):
    type = "dingtalk"
    Options = DingTalkOptions
    limits = ((20, 60.0),)

    def request(self, message: Message) -> Request:
        # DingTalk only notifies the people named in the text too: the message is cut, never them
        mentions = "\n\n" + " ".join(f"@{m}" for m in self.options.at_mobiles) if self.options.at_mobiles else ""
        text = cut_bytes(render(message, "markdown"), BODY_LIMIT - 1024 - len(mentions.encode())) + mentions
        doc = {"msgtype": "markdown",
               "markdown": {"title": cut_chars(headline(message), 64), "text": text},
               "at": {"atMobiles": list(self.options.at_mobiles), "isAtAll": self.options.at_all}}
        url = self.options.url
        if not self.options.secret:
            return Request(url, as_json(doc))
        timestamp = int(time.time() * 1000)
        url = str(yarl.URL(url))  # the configured part normalised once; the signature appended as computed
        url += ("&" if "?" in url else "?") + f"timestamp={timestamp}&sign={sign(self.options.secret, timestamp)}"
        return Request(url, as_json(doc), encoded=True)

    def accept(self, status: int, text: str) -> None:
        doc = answer_json(text)
        robot_verdict("DingTalk errcode", doc.get("errcode"), doc.get("errmsg", ""), (THROTTLED,), 600)
