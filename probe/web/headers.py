"""Security headers on every response: what a browser may load, frame and send along.

- HTML: a Content-Security-Policy that allows the page's own scripts and styles only (no
  inline script or style anywhere: page.js and style.css are files under /static), images
  from the page and the [page] logo's origin, forms posted to the page itself, and framing
  by nobody (`frame-ancestors 'none'`, and X-Frame-Options for old browsers) unless the
  operator lists origins in `[page] embed_from`: the confirm and unsubscribe buttons must
  not be clickjacked from another site.
- Everything else: `default-src 'none'` (a JSON or SVG body opened directly runs nothing).
- Badges are meant for other sites (README files, intranets): no frame restriction.
- The public read API (v1 less admin, v2, the OpenAPI document), badges and feeds answer
  any origin (`Access-Control-Allow-Origin: *`, as Statuspage's API does); nothing that
  takes a token or changes anything does.
- Every response: `nosniff`, `Referrer-Policy: same-origin` (the page's links to monitored
  sites do not carry its URL).

Set in the application's on_response_prepare signal rather than a middleware: it sees every
response whatever produced it (a handler, the error middleware, a static file, a redirect
raised as an exception), so no route can be missed.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp import web

from probe.web.keys import PROBE

CROSS_ORIGIN_READS = re.compile(r"^/(api/v1/(?!admin(/|$))|api/v2/|api/openapi\.json$|badge/|history\.(atom|rss)$)")
EMBEDDABLE = ("/badge/",)


def install(app: web.Application) -> None:
    app.on_response_prepare.append(_secure)


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    page = request.app[PROBE].config.page
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    path = request.path
    if response.content_type == "text/html":
        headers["Content-Security-Policy"] = _page_policy(page)
        if not page.embed_from:
            headers["X-Frame-Options"] = "DENY"
    elif path.startswith(EMBEDDABLE):
        headers["Content-Security-Policy"] = "default-src 'none'"
    else:
        headers["Content-Security-Policy"] = f"default-src 'none'; frame-ancestors {_ancestors(page)}"
    if request.method in ("GET", "HEAD") and CROSS_ORIGIN_READS.match(path):
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"


def _page_policy(page) -> str:
    images = " ".join(["'self'", "data:", *_origin_of(page.logo)])
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {images}; connect-src 'self'; form-action 'self'; base-uri 'none'; "
            f"frame-ancestors {_ancestors(page)}")


def _ancestors(page) -> str:
    return " ".join(page.embed_from) or "'none'"


def _origin_of(url: str) -> list[str]:
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme in ("http", "https") and parts.netloc else []
