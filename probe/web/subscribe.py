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
    form = await request.post()
    try:
        await subscriptions.request(str(form.get("email", "")), [str(g) for g in form.getall("group", [])],
                                    client_address(request))
    except SubscribeError as exc:
        return _page(request, "form", exc.status, error=exc.message, email=str(form.get("email", ""))[:254])
    return _page(request, "check_inbox")


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
    form = await request.post()
    try:
        await subscriptions.confirm(str(form.get("token", "")))
    except TokenError as exc:
        return _page(request, "refused", 400, error=str(exc))
    return _page(request, "confirmed")


async def unsubscribe_form(request: web.Request) -> web.Response:
    return await _token_page(request, request.query.get("token", ""), "u", "unsubscribe")


async def unsubscribe(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token") or request.query.get("token", ""))
    try:
        await _subscriptions(request).unsubscribe(token)
    except TokenError as exc:
        return _page(request, "refused", 400, error=str(exc))
    return _page(request, "unsubscribed")
