"""An operator writes markdown; the page, the feeds and the mail show the same CommonMark, and
hostile text stays text, against a real `probe run` (issue 14, item 7)."""
from __future__ import annotations

import asyncio
import signal

import aiohttp
import feedparser
from aiosmtpd.controller import Controller

from tests.cli.test_main import free_port, probe_cli
from tests.notifiers.test_email import Inbox
from tests.test_crash import start_probe
from tests.test_operator_story import until

BODY = "We **rolled back** the deploy; see [the change](https://example.com/pr/42) and `config.toml`."
HOSTILE = "<script>alert(1)</script> [click](javascript:alert(2)) ![x](https://tracker.example/p.gif)"


async def test_markdown_reads_the_same_on_the_page_in_the_feed_and_in_the_mail(write_config, tmp_path):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    config = write_config(f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "md-token"
        [storage]
        path = "probe.db"
        [[notifiers]]
        id = "mail"
        type = "email"
        host = "127.0.0.1"
        port = {smtp.port}
        mode = "plain"
        from = "status@acme.test"
        to = ["ops@acme.test"]
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "1h"
        notify = ["mail"]
    """)
    postmortem = tmp_path / "pm.md"
    postmortem.write_text(f"# Summary\n\n- a bad deploy\n- **no data lost**\n\n{HOSTILE}\n")
    base = f"http://127.0.0.1:{port}"
    proc = await start_probe(config, port)
    try:
        cli = ("incident", "-c", str(config))
        code, out, err = await probe_cli(*cli, "open", "--title", "API errors", "--monitor", "api", "--body", BODY)
        assert code == 0, err
        incident_id = out.split()[0].lstrip("#")
        for step in (["update", incident_id, "--status", "identified", "--body", HOSTILE],
                     ["resolve", incident_id], ["postmortem", incident_id, "--file", str(postmortem)]):
            code, _, err = await probe_cli(*cli, *step)
            assert code == 0, err
        await until(lambda: len(inbox.messages) >= 3)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/incidents/{incident_id}") as response:
                page = await response.text()
            async with http.get(f"{base}/history.atom") as response:
                feed = feedparser.parse(await response.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        smtp.stop()

    rendered = ('We <strong>rolled back</strong> the deploy; see <a href="https://example.com/pr/42">the change</a>'
                " and <code>config.toml</code>.")
    assert rendered in page
    assert "<h3>Summary</h3>" in page and "<li><strong>no data lost</strong></li>" in page  # the postmortem
    entry = next(e for e in feed.entries if "API errors" in e.title)
    assert rendered in entry.content[0].value and "<li>a bad deploy</li>" in entry.content[0].value
    first = inbox.messages[0][2]
    assert rendered in first.get_body(("html",)).get_content()
    assert BODY in first.get_body(("plain",)).get_content()  # the text part keeps the markdown as written
    # Hostile text is text everywhere: no script, no javascript: link, no image fetched.
    for html in (page, entry.content[0].value, inbox.messages[1][2].get_body(("html",)).get_content()):
        assert "<script>" not in html and "javascript:alert(2)</a>" not in html and 'href="javascript' not in html
        assert "<img" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
