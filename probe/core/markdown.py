"""Operators' markdown (incident updates, postmortems) as HTML: CommonMark, through markdown-it-py.

One renderer for the page, the feeds and email, so a body reads the same everywhere. It is safe
for text anyone with the admin token wrote: raw HTML is not passed through (it shows as text),
links go only to http(s) and mailto (any other scheme, `javascript:` first, stays text), and
images are not loaded (a status page, a feed reader or a mail client fetching a URL chosen by
the writer would tell it who reads).
"""
from __future__ import annotations

import functools

from markdown_it import MarkdownIt

SCHEMES = ("http:", "https:", "mailto:")


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's name)
        return url.strip().lower().startswith(SCHEMES)


@functools.cache
def _parser() -> MarkdownIt:
    md = _Markdown("commonmark", {"html": False})
    md.disable("image")  # "![x](url)": "!" and a link, never a fetch
    md.core.ruler.push("shift_headings", _shift_headings)
    return md


def _shift_headings(state) -> None:
    """"# Summary" is a section of the incident, under the page's own h1 and h2: h3 and down."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + 2)}"


def to_html(text: str, inline: bool = False) -> str:
    """`text` as HTML. With `inline`, a single paragraph comes without its <p> (an update's body
    follows its status on one line); anything longer stays blocks."""
    html = _parser().render(text).strip()
    if inline and html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
        return html[3:-4]
    return html
