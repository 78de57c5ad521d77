"""Issue 5's story, end to end against a real `probe run`: an operator runs an incident from the
command line, and every reader sees each step exactly once: the page, the Statuspage v2 API, the
Atom feed, a confirmed email subscriber (real SMTP on loopback) and a webhook channel."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import aiohttp
import feedparser
from aiosmtpd.controller import Controller

from tests.cli.test_admin import run_incident_from_the_cli
from tests.cli.test_main import free_port
from tests.notifiers.test_email import Inbox
from tests.notify.settled import settled_in_file
from tests.peers.receiver import Receiver
from tests.test_crash import start_probe

TOKEN = "story-admin-token"
CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/subscribe/confirm\?token=[\w.\-]+")
HIDDEN_TOKEN = re.compile(r'name="token" value="([^"]+)"')


def story_config(port: int, smtp_port: int, hook_url: str) -> str:
    return f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "${{PROBE_STORY_TOKEN}}"
        [storage]
        path = "probe.db"
        [page]
        title = "Acme Status"
        url = "http://127.0.0.1:{port}"
        [subscribers]
        email_via = "mail"
        [[notifiers]]
        id = "mail"
        type = "email"
        host = "127.0.0.1"
        port = {smtp_port}
        mode = "plain"
        from = "status@acme.test"
        to = ["ops@acme.test"]
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook_url}/in"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "2s"
        timeout = "1s"
        notify = ["hook"]
    """


async def until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def subscribe_and_confirm(http: aiohttp.ClientSession, base: str, inbox: Inbox, address: str) -> None:
    """The way a visitor does it: the form, the mail, the link in it, the button behind the link."""
    async with http.post(f"{base}/subscribe", data={"email": address}) as response:
        assert response.status == 200
    await until(lambda: mails_to(inbox, address))
    (mail,) = mails_to(inbox, address)
    link = CONFIRM_LINK.search(mail.get_body(("plain",)).get_content()).group(0)
    async with http.get(link) as page:
        token = HIDDEN_TOKEN.search(await page.text()).group(1)
    async with http.post(f"{base}/subscribe/confirm", data={"token": token}) as done:
        assert done.status == 200 and "Subscribed" in await done.text()


def mails_to(inbox: Inbox, address: str) -> list:
    return [mail for _, rcpts, mail, _ in inbox.messages if address in rcpts]


async def test_an_incident_run_from_the_cli_reaches_every_reader_once_per_step(write_config, tmp_path):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook = await Receiver().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(story_config(port, smtp.port, hook.url))
    os.environ["PROBE_STORY_TOKEN"] = TOKEN
    postmortem = tmp_path / "pm.md"
    postmortem.write_text("# Summary\nA bad deploy; no data was lost.\n")
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            await subscribe_and_confirm(http, base, inbox, "reader@example.com")
            incident_id = await run_incident_from_the_cli(config, postmortem)
            # open, identified, monitoring, resolved: one mail and one webhook each (plus the confirmation mail).
            await until(lambda: len(mails_to(inbox, "reader@example.com")) >= 5 and len(hook.requests) >= 4)
            await until(lambda: settled_in_file(tmp_path / "probe.db"))  # nothing more to send: no duplicate to come
            async with http.get(f"{base}/incidents/{incident_id}") as response:
                incident_page = await response.text()
            async with http.get(f"{base}/api/v2/incidents.json") as response:
                v2 = await response.json()
            async with http.get(f"{base}/history.atom") as response:
                feed = feedparser.parse(await response.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        del os.environ["PROBE_STORY_TOKEN"]
        await hook.close()
        smtp.stop()

    assert "API errors" in incident_page and "Bad deploy found." in incident_page
    assert "A bad deploy; no data was lost." in incident_page  # the postmortem, rendered

    (incident,) = [i for i in v2["incidents"] if i["name"] == "API errors"]
    assert incident["status"] == "postmortem"
    assert [u["status"] for u in incident["incident_updates"]] == [
        "resolved", "monitoring", "identified", "investigating"]  # newest first, as Statuspage
    assert "no data was lost" in incident["postmortem_body"]
    assert incident["components"][0]["name"] == "API"

    assert not feed.bozo
    entry = next(e for e in feed.entries if "API errors" in e.title)
    assert "Bad deploy found." in entry.summary

    mails = mails_to(inbox, "reader@example.com")
    assert len(mails) == 5  # the confirmation, then exactly one per step
    assert all("API errors" in m["Subject"] for m in mails[1:])
    assert all(m["List-Unsubscribe"] for m in mails[1:])
    hooks = [r.json for r in hook.requests]
    assert len(hooks) == 4 and len({doc["id"] for doc in hooks}) == 4
    assert hooks[0]["event"] == "open" and hooks[-1]["event"] == "resolve"
