"""Operators' markdown is CommonMark, and safe: no raw HTML, links only to http(s) and mailto, no images."""
import pytest

from probe.core.markdown import to_html


def test_commonmark_emphasis_links_code_and_lists_render():
    html = to_html("**Bold**, *soft*, `code` and [the fix](https://example.com/fix?a=1&b=2).\n\n- one\n- two")
    assert "<strong>Bold</strong>" in html and "<em>soft</em>" in html and "<code>code</code>" in html
    assert '<a href="https://example.com/fix?a=1&amp;b=2">the fix</a>' in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html


def test_headings_sit_below_the_pages_own():
    assert to_html("# Summary\n\n## Timeline") == "<h3>Summary</h3>\n<h4>Timeline</h4>"


def test_a_single_paragraph_can_be_inline_and_longer_text_stays_blocks():
    assert to_html("We **rolled back**.", inline=True) == "We <strong>rolled back</strong>."
    assert to_html("One.\n\nTwo.", inline=True) == "<p>One.</p>\n<p>Two.</p>"


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "<a href='javascript:alert(1)'>x</a>",
    "<iframe src=https://evil.example></iframe>"])
def test_raw_html_shows_as_text(text):
    html = to_html(text)
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<iframe" not in html
    assert "&lt;" in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x</b>",
                                 "vbscript:msgbox(1)", "/relative/path", "file:///etc/passwd"])
def test_links_go_only_to_http_https_and_mailto(url):
    assert "href" not in to_html(f"[click]({url})") and "href" not in to_html(f"<{url}>")


def test_mail_links_and_autolinks_work():
    assert '<a href="mailto:ops@example.com">write</a>' in to_html("[write](mailto:ops@example.com)")
    assert '<a href="https://example.com">https://example.com</a>' in to_html("<https://example.com>")


def test_images_are_never_fetched():
    html = to_html("![tracking pixel](https://tracker.example/p.gif)")
    assert "<img" not in html and '<a href="https://tracker.example/p.gif">tracking pixel</a>' in html
