"""Subscribing on the status page: /subscribe, /subscribe/confirm, /unsubscribe.

Plain HTML forms (they work without JavaScript). The subscribe POST must come from this
page: a browser's Origin (or Sec-Fetch-Site) that names another site is refused, so
another site cannot make its visitors' browsers sign up addresses. Following a link from
a mail only shows a button: the POST behind it confirms or unsubscribes, so a mail scanner
that prefetches every link changes nothing. `List-Unsubscribe-Post` one-click POSTs to
/unsubscribe?token=... directly (RFC 8058).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from probe.notify.subscribers.actions import SubscribeError
from probe.notify.subscribers.rules import TokenError
from probe.web import page
from probe.web.clients import client_address


def add_routes(app: web.Application) -> None:
    app.router.add_get("/subscribe", subscribe_form)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_get("/subscribe/confirm", confirm_form)
    app.router.add_post("/subscribe/confirm", confirm)
    app.router.add_get("/unsubscribe", unsubscribe_form)
    app.router.add_post("/unsubscribe", unsubscribe)


def _subscriptions(request: web.Request):
    return page._probe(request).notify.subscribers


def _enabled(request: web.Request):
    subscriptions = _subscriptions(request)
    if not subscriptions.config.email:
        raise web.HTTPNotFound(text="not found")
    return subscriptions


def _page(request: web.Request, state: str, status: int = 200, **context) -> web.Response:
    subscriptions = _subscriptions(request)
    body = page.render(request, "subscribe.html", state=state, groups=subscriptions.groups(), **context)
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


async def subscribe_form(request: web.Request) -> web.Response:
    _enabled(request)
    return _page(request, "form")


async def subscribe(request: web.Request) -> web.Response:
    subscriptions = _enabled(request)
    if not _from_this_site(request, subscriptions.probe.config.page.url):
        raise web.HTTPForbidden(text="this form must be sent from the status page")
    form = await _form(request)
    try:
        await subscriptions.request(_field(form, "email"), [g for g in form.getall("group", []) if isinstance(g, str)],
                                    client_address(request))
    except SubscribeError as exc:
        return _page(request, "form", exc.status, error=exc.message, email=_field(form, "email")[:254])
    return _page(request, "check_inbox")


async def _form(request: web.Request):
    """The posted form, or 400: a multipart body without its boundary, an unknown charset and
    the like are the client's mistake, not a server error."""
    try:
        return await request.post()
    except (ValueError, LookupError, AssertionError, HttpProcessingError) as exc:  # aiohttp's readers on bad input
        reason = exc.message if isinstance(exc, HttpProcessingError) else exc
        raise web.HTTPBadRequest(text=" ".join(f"the form could not be read: {reason}".split())[:200]) from None


def _field(form, name: str) -> str:
    """A text field; a file sent in its place counts as empty."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _from_this_site(request: web.Request, page_url: str) -> bool:
    """No Origin (a non-browser client) passes; a browser must name this host or [page] url's."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host in (request.host, urlsplit(page_url).netloc)


async def _token_page(request: web.Request, token: str, purpose: str, state: str) -> web.Response:
    try:
        await _subscriptions(request).check(token, purpose)
    except TokenError as exc:
        return _page(request, "refused", 400, error=str(exc))
    return _page(request, state, token=token)


async def confirm_form(request: web.Request) -> web.Response:
    _enabled(request)
    return await _token_page(request, request.query.get("token", ""), "c", "confirm")


async def confirm(request: web.Request) -> web.Response:
    subscriptions = _enabled(request)
    form = await _form(request)
    try:
        await subscriptions.confirm(_field(form, "token"))
    except TokenError as exc:
        return _page(request, "refused", 400, error=str(exc))
    return _page(request, "confirmed")


async def unsubscribe_form(request: web.Request) -> web.Response:
    return await _token_page(request, request.query.get("token", ""), "u", "unsubscribe")


async def unsubscribe(request: web.Request) -> web.Response:
    form = await _form(request)
    token = _field(form, "token") or request.query.get("token", "")
    try:
        await _subscriptions(request).unsubscribe(token)
    except TokenError as exc:
        return _page(request, "refused", 400, error=str(exc))
    return _page(request, "unsubscribed")
