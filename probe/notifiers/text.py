"""Message text from jinja2 templates, in the notifier's language.

`headline` is the one-line summary (email subject, card title, push title):
"[DOWN] Website — HTTP 503". `render(message, "markdown" | "text" | "html")` is the body.
Words live in notifiers/i18n/<language>.toml; a new language is a file.
"""
from __future__ import annotations

import functools
import secrets
import tomllib
from pathlib import Path

import jinja2
from markupsafe import Markup

from probe.core.markdown import to_html
from probe.notifiers.base import Message

HERE = Path(__file__).parent


@functools.cache
def words(language: str) -> dict[str, str]:
    english = tomllib.loads((HERE / "i18n" / "en.toml").read_text("utf-8"))
    path = HERE / "i18n" / f"{language}.toml"
    if language == "en" or not path.exists():
        return english
    return english | tomllib.loads(path.read_text("utf-8"))


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=autoescape,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def tag(message: Message) -> str:
    """DOWN | DEGRADED | RESOLVED | UPDATE | STILL DOWN | TEST, in the message's language."""
    w = words(message.language)
    if message.event in ("open", "escalate", "reopen"):
        return w["tag_down"] if message.status == "down" else w["tag_degraded"]
    return w.get(f"tag_{message.event}", w["tag_update"])


def headline(message: Message) -> str:
    subject = message.monitor_name or message.title
    if message.event == "cert_expiring":  # the title says how long is left
        return f"[{tag(message)}] {subject} — {message.title}"
    if message.event in ("open", "escalate", "reopen", "remind") and message.reason:
        return f"[{tag(message)}] {subject} — {message.reason}"
    if message.event == "update" or not message.monitor_name:
        return f"[{tag(message)}] {message.title}"
    return f"[{tag(message)}] {subject}"


def duration_text(seconds: float, language: str) -> str:
    w = words(language)
    minutes = round(seconds / 60)
    if seconds < 60:
        return w["seconds"].format(n=round(seconds))
    if minutes < 60:
        return w["minutes"].format(n=minutes)
    return w["hours_minutes"].format(h=minutes // 60, m=minutes % 60)


def expiry_text(seconds_left: float, language: str) -> str:
    """"TLS certificate expires in 6 days" (1 day, 7 hours): whole days, hours on the last one."""
    w = words(language)
    days = int(seconds_left // 86400)
    if days >= 2:
        return w["cert_expires_in_days"].format(n=days)
    if days == 1:
        return w["cert_expires_in_day"]
    hours = round(seconds_left / 3600)
    return w["cert_expires_in_hours"].format(n=hours) if hours >= 2 else w["cert_expires_in_hour"]


def render(message: Message, fmt: str, body: str | None = None) -> str:
    """The body: fmt is markdown (robots, Slack, Discord), text (email, ntfy) or html. `body`
    stands in for the message's own body (already escaped, for html)."""
    env = _environment(fmt == "html")
    template = env.get_template(f"message.{ {'markdown': 'md', 'text': 'txt', 'html': 'html'}[fmt] }.j2")
    duration = duration_text(message.duration_s, message.language) if message.duration_s is not None else ""
    expires = message.local_time(message.cert_expires_ms) if message.cert_expires_ms is not None else ""
    until = message.local_time(message.scheduled_until_ms) if message.scheduled_until_ms is not None else ""
    return template.render(m=message, w=words(message.language), headline=headline(message),
                           started=message.local_time(message.started_ms), duration=duration,
                           expires=expires, until=until, covered=", ".join(name for _, name in message.covered),
                           body=Markup(body) if body is not None else message.body).strip()


def email_html(message: Message) -> str:
    """The HTML part of a mail: the message's lines, and its body (an operator's markdown) through
    the page's renderer (core/markdown.py), so a mail reads as the page does."""
    mark = f"body-{secrets.token_hex(16)}"  # stands in for the body while the lines get their <br>
    html = render(message, "html", body=mark).replace("\n", "<br>\n")
    return html.replace(mark, to_html(message.body) if message.body else "", 1)
