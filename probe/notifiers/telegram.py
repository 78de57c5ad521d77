"""Telegram bot sendMessage in HTML parse mode (everything from the outside escaped)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from probe.notifiers.base import (
    HttpNotifier,
    Message,
    NotifyError,
    Request,
    as_json,
    check_status,
)
from probe.notifiers.text import render

TEXT_LIMIT = 4096  # characters, after entities are parsed; we cut the source, a little under


@dataclass(frozen=True)
class TelegramOptions:
    token: str = field(repr=False)
    chat_id: str
    url: str = "https://api.telegram.org"


class Telegram(HttpNotifier):
    type = "telegram"
    Options = TelegramOptions
    limits = ((1, 1.0), (20, 60.0))

    def request(self, message: Message) -> Request:
        text = render(message, "html")
        if len(text) > TEXT_LIMIT:  # cutting HTML could break a tag: fall back to the headline and link
            text = render(message, "html").split("\n", 1)[0] + (f'\n<a href="{message.url}">…</a>' if message.url else "")
        doc = {"chat_id": self.options.chat_id, "text": text, "parse_mode": "HTML",
               "disable_web_page_preview": True}
        return Request(f"{self.options.url.rstrip('/')}/bot{self.options.token}/sendMessage", as_json(doc))

    def verdict(self, status: int, text: str, headers) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {}
        if status == 429:
            retry_after = (doc.get("parameters") or {}).get("retry_after") if isinstance(doc, dict) else None
            raise NotifyError(f"HTTP 429: {text.strip()[:200]}", retry_after=retry_after)
        check_status(status, text)
        if isinstance(doc, dict) and doc.get("ok") is False:
            raise NotifyError(f"Telegram: {doc.get('description', text[:200])}", permanent=True)
