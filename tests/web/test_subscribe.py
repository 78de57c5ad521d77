"""Subscribers end to end: a real app over HTTP, a real SMTP server (aiosmtpd) and a real
webhook receiver on loopback, a real SQLite file. Links are read from the mails received."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller

from probe.config.loader import load_config
from probe.core.models import ResultRecord, Status
from probe.notify.subscribers import rules
from probe.service import Probe
from probe.web.app import create_app
from tests.notifiers.test_email import Inbox, free_port
from tests.notify.settled import notifications_settled
from tests.peers.receiver import Receiver

TOKEN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/subscribe/confirm\?token=[\w.\-]+")
UNSUBSCRIBE_LINK = re.compile(r"http://127\.0\.0\.1:\d+/unsubscribe\?token=[\w.\-]+")
HIDDEN_TOKEN = re.compile(r'name="token" value="([^"]+)"')


def config_text(port: int, smtp_port: int, hook_url: str, language: str = "en", subscribers: bool = True) -> str:
    section = f"""
        [subscribers]
        email_via = "mail"
        confirm_within = "1h"
        [[subscribers.webhooks]]
        id = "partner"
        url = "{hook_url}"
        [[subscribers.webhooks]]
        id = "api-only"
        url = "{hook_url}/api-only"
        groups = ["API"]
    """ if subscribers else ""
    return f"""
        [server]
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [page]
        title = "Acme Status"
        url = "http://127.0.0.1:{port}"
        language = "{language}"
        [[notifiers]]
        id = "mail"
        type = "email"
        host = "127.0.0.1"
        port = {smtp_port}
        mode = "plain"
        from = "status@acme.test"
        to = ["ops@acme.test"]
        timeout = "5s"
        [defaults]
        host = "127.0.0.1"
        port = 9
        interval = "1h"
        timeout = "1s"
        failure_threshold = 1
        [[monitors]]
        id = "web"
        type = "tcp"
        name = "Website"
        group = "Public"
        [[monitors]]
        id = "api"
        type = "tcp"
        name = "API"
        group = "API"
        [[monitors]]
        id = "hidden"
        type = "tcp"
        name = "Hidden"
        group = "Internal"
        public = false
    """ + section


class Site:
    def __init__(self, client: TestClient, probe: Probe, inbox: Inbox, hook: Receiver) -> None:
        self.client, self.probe, self.inbox, self.hook = client, probe, inbox, hook

    def mails_to(self, address: str) -> list:
        return [mail for _, rcpts, mail, _ in self.inbox.messages if address in rcpts]

    async def mails(self, address: str, count: int, timeout: float = 15.0) -> list:
        await until(lambda: len(self.mails_to(address)) >= count, timeout)
        return self.mails_to(address)

    async def subscribe(self, address: str, groups=(), **headers):
        data = [("email", address)] + [("group", g) for g in groups]
        return await self.client.post("/subscribe", data=data, headers=headers)


async def until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def text_of(mail) -> str:
    return mail.get_body(("plain",)).get_content()


async def open_site(write_config, **options):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook = await Receiver().start()
    port = free_port()
    probe = Probe(load_config(write_config(config_text(port, smtp.port, hook.url, **options))), flush_interval=0.02)
    client = TestClient(TestServer(create_app(probe), host="127.0.0.1", port=port))
    await client.start_server()
    for monitor_id in probe.scheduler.monitor_ids():
        probe.scheduler.unschedule(monitor_id)  # the tests feed results themselves
    return Site(client, probe, inbox, hook), smtp


@pytest.fixture
async def site(write_config):
    made, smtp = await open_site(write_config)
    yield made
    await made.client.close()
    await made.hook.close()
    smtp.stop()


async def confirmed(site: Site, address: str, groups=()) -> None:
    """Subscribe and confirm the way a person does: the form, the mail, the link, the button."""
    assert (await site.subscribe(address, groups)).status == 200
    (mail,) = await site.mails(address, 1)
    link = CONFIRM_LINK.search(text_of(mail)).group(0)
    page = await site.client.session.get(link)
    token = HIDDEN_TOKEN.search(await page.text()).group(1)
    done = await site.client.post("/subscribe/confirm", data={"token": token})
    assert done.status == 200 and "Subscribed" in await done.text()


async def open_incident(site: Site, title: str, monitors=("web",)) -> int:
    response = await site.client.post("/api/v1/admin/incidents", headers=AUTH,
                                      json={"title": title, "impact": "major", "monitors": list(monitors)})
    assert response.status == 201
    return (await response.json())["id"]


async def test_double_opt_in_confirm_notify_once_unsubscribe_then_silence(site):
    response = await site.subscribe("Alice@Example.com")
    assert response.status == 200 and "check your inbox" in await response.text()
    (confirmation,) = await site.mails("alice@example.com", 1)
    assert confirmation["Subject"] == "Confirm your subscription to Acme Status"
    assert confirmation["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    link = CONFIRM_LINK.search(text_of(confirmation)).group(0)

    # Following the link (as a mail scanner would) shows a button and changes nothing.
    page = await site.client.session.get(link)
    assert page.status == 200 and "Confirm my subscription" in await page.text()
    assert await site.probe.notify.subscribers.confirmed() == []
    token = HIDDEN_TOKEN.search(await page.text()).group(1)
    done = await site.client.post("/subscribe/confirm", data={"token": token})
    assert done.status == 200 and "Subscribed" in await done.text()
    assert [s.email for s in await site.probe.notify.subscribers.confirmed()] == ["alice@example.com"]

    await open_incident(site, "Checkout errors")
    mails = await site.mails("alice@example.com", 2)
    await notifications_settled(site.probe)  # nothing more to send: no duplicate to come
    assert len(site.mails_to("alice@example.com")) == 2
    notice = mails[1]
    assert notice["Subject"] == "[DOWN] Checkout errors"
    assert "We are currently investigating this issue." in text_of(notice)
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = UNSUBSCRIBE_LINK.search(text_of(notice)).group(0)
    assert notice["List-Unsubscribe"] == f"<{unsubscribe}>"

    page = await site.client.session.get(unsubscribe)
    assert page.status == 200 and "Stop receiving updates" in await page.text()
    token = HIDDEN_TOKEN.search(await page.text()).group(1)
    gone = await site.client.post("/unsubscribe", data={"token": token})
    assert gone.status == 200 and "Unsubscribed" in await gone.text()

    await open_incident(site, "Second outage")
    await site.hook.wait_for(2)  # the webhook subscriber heard of both incidents: the event was processed
    await notifications_settled(site.probe)
    assert len(site.mails_to("alice@example.com")) == 2


async def test_an_unconfirmed_address_gets_only_the_confirmation(site):
    await site.subscribe("bob@example.com")
    await site.mails("bob@example.com", 1)
    await confirmed(site, "carol@example.com")
    await open_incident(site, "Outage")
    await site.mails("carol@example.com", 2)
    await notifications_settled(site.probe)
    assert len(site.mails_to("bob@example.com")) == 1
    rows = await site.probe.store.fetchall("SELECT key FROM deliveries WHERE notifier='subscribers:email'")
    assert sorted(k.split(":")[2] for (k,) in rows) == ["confirm", "confirm", "event"]


async def test_expired_and_tampered_links_are_refused(site):
    await site.subscribe("dave@example.com")
    (mail,) = await site.mails("dave@example.com", 1)
    link = CONFIRM_LINK.search(text_of(mail)).group(0)
    token = link.split("token=")[1]
    purpose, sid, expires, mac = token.split(".")
    subscriptions = site.probe.notify.subscribers
    expired = rules.sign(subscriptions.secret, "c", int(sid), "dave@example.com", int(time.time()) - 1)
    forged = [f"{purpose}.{sid}.{int(expires) + 3600}.{mac}",  # a later expiry, the old signature
              f"{purpose}.{sid}.{expires}.{mac[:-2]}AA",
              rules.sign("not-the-secret", "c", int(sid), "dave@example.com", int(expires)),
              f"u.{sid}.{expires}.{mac}"]  # a confirmation token is no unsubscribe token
    response = await site.client.get("/subscribe/confirm", params={"token": expired})
    assert response.status == 400 and "expired" in await response.text()
    for bad in forged:
        for path in ("/subscribe/confirm", "/unsubscribe"):
            response = await site.client.post(path, data={"token": bad})
            assert response.status == 400 and "not valid" in await response.text(), (bad, path)
    assert await subscriptions.confirmed() == []
    assert (await site.client.post("/subscribe/confirm", data={"token": token})).status == 200


async def test_subscribe_requests_are_rate_limited_per_address_and_per_client(site):
    for _ in range(3):
        assert (await site.subscribe("eve@example.com")).status == 200
    refused = await site.subscribe("eve@example.com")
    assert refused.status == 429 and "Too many subscribe requests" in await refused.text()
    for n in range(6):  # the client has made 4 requests; 6 more reach its limit of 10
        assert (await site.subscribe(f"user{n}@example.com")).status == 200
    assert (await site.subscribe("fresh@example.com")).status == 429
    await site.mails("eve@example.com", 3)
    assert len(site.mails_to("fresh@example.com")) == 0


async def test_a_post_from_another_site_or_a_bad_address_is_refused(site):
    response = await site.subscribe("mallory@example.com", Origin="https://evil.example")
    assert response.status == 403
    response = await site.subscribe("mallory@example.com", **{"Sec-Fetch-Site": "cross-site"})
    assert response.status == 403
    response = await site.subscribe("not-an-address\r\nBcc: x@example.com")
    assert response.status == 400 and "valid email address" in await response.text()
    response = await site.subscribe("ok@example.com", ["Internal"])  # a private group is no choice
    assert response.status == 400
    same = await site.subscribe("ok@example.com", ["API"], Origin=str(site.client.make_url("")).rstrip("/"))
    assert same.status == 200
    rows = await site.probe.store.fetchall("SELECT email, groups FROM subscribers")
    assert rows == [("ok@example.com", '["API"]')]


async def test_groups_filter_subscribers_and_private_monitors_reach_nobody(site):
    await confirmed(site, "api-fan@example.com", ["API"])
    await confirmed(site, "all@example.com")
    await open_incident(site, "Website slow")  # group Public
    await open_incident(site, "Internal only", ["hidden"])  # names only a private monitor: private too
    await open_incident(site, "Whole site", [])  # names no monitor: page-wide, so every subscriber hears
    monitor = site.probe.config.monitor("hidden")
    site.probe.record(monitor, ResultRecord("hidden", int(time.time() * 1000), 0, Status.DOWN, "refused"))
    await open_incident(site, "API errors", ["api"])
    await site.mails("all@example.com", 4)
    await site.mails("api-fan@example.com", 3)
    await notifications_settled(site.probe)
    subjects = [m["Subject"] for m in site.mails_to("api-fan@example.com")[1:]]
    assert subjects == ["[DOWN] Whole site", "[DOWN] API errors"]
    everything = [m["Subject"] for m in site.mails_to("all@example.com")[1:]]
    assert everything == ["[DOWN] Website slow", "[DOWN] Whole site", "[DOWN] API errors"]  # nothing private


async def test_the_operator_story_reaches_a_subscriber_once_per_step_in_chinese(write_config):
    site, smtp = await open_site(write_config, language="zh-CN")
    try:
        await confirmed_zh(site, "li@example.com")
        incident = await open_incident(site, "支付故障")
        for status in ("identified", "monitoring", "resolved"):
            response = await site.client.post(f"/api/v1/admin/incidents/{incident}/updates", headers=AUTH,
                                              json={"status": status})
            assert response.status == 201
        mails = await site.mails("li@example.com", 5)
        await notifications_settled(site.probe)
        assert len(site.mails_to("li@example.com")) == 5
        subjects = [m["Subject"] for m in mails[1:]]
        assert subjects == ["[故障] 支付故障", "[更新] 支付故障", "[更新] 支付故障", "[已恢复] 支付故障"]
        assert "修复已经实施，我们正在观察结果。" in text_of(mails[3])
        assert "退订" in text_of(mails[4])
    finally:
        await site.client.close()
        await site.hook.close()
        smtp.stop()


async def confirmed_zh(site: Site, address: str) -> None:
    await site.subscribe(address)
    (mail,) = await site.mails(address, 1)
    assert mail["Subject"] == "请确认订阅 Acme Status"
    link = CONFIRM_LINK.search(text_of(mail)).group(0)
    token = HIDDEN_TOKEN.search(await (await site.client.session.get(link)).text()).group(1)
    assert (await site.client.post("/subscribe/confirm", data={"token": token})).status == 200


async def test_a_webhook_subscriber_gets_statuspage_payloads_field_by_field(site):
    monitor = site.probe.config.monitor("web")
    now = int(time.time() * 1000)
    site.probe.record(monitor, ResultRecord("web", now, now, Status.DOWN, "connection refused by 127.0.0.1:9"))
    received = await site.hook.wait_for(2)
    by_kind = {("component" if "component" in r.json else "incident"): r for r in received[:2]}
    assert {r.path_qs for r in received[:2]} == {"/"}  # the API-only webhook does not hear of the website
    incident = by_kind["incident"].json
    assert set(incident) == {"meta", "page", "incident"}
    assert incident["meta"]["documentation"].startswith("https://")
    assert incident["page"]["status_indicator"] in ("major", "critical", "minor")
    assert incident["page"]["status_description"] in ("Partial System Outage", "Major System Outage")
    assert re.fullmatch(r"[0-9a-z]{12}", incident["page"]["id"])
    doc = incident["incident"]
    assert doc["name"] == "Website is down" and doc["status"] == "investigating" and doc["impact"] == "major"
    for key in ("id", "created_at", "updated_at", "monitoring_at", "resolved_at", "shortlink", "started_at",
                "page_id", "postmortem_body", "postmortem_published_at", "impact_override", "backfilled",
                "components", "incident_updates"):
        assert key in doc, key
    (update,) = doc["incident_updates"]
    assert update["status"] == "investigating" and update["incident_id"] == doc["id"]
    assert update["body"] == "We are currently investigating this issue."
    assert doc["components"][0]["name"] == "Website"
    component = by_kind["component"].json
    assert component["component_update"]["old_status"] == "operational"
    assert component["component_update"]["new_status"] == "major_outage"
    assert component["component_update"]["component_id"] == component["component"]["id"]
    assert component["component"]["name"] == "Website" and component["component"]["status"] == "major_outage"
    assert component["page"] == incident["page"]
    site.probe.record(monitor, ResultRecord("web", now + 1000, now + 1000, Status.UP, "connected"))
    received = await site.hook.wait_for(4)
    resolved = [r.json for r in received[2:] if "incident" in r.json][0]["incident"]
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert [u["status"] for u in resolved["incident_updates"]] == ["resolved", "investigating"]


async def test_maintenance_is_announced_started_and_ended_to_subscribers(site):
    await confirmed(site, "ops-fan@example.com")
    now = int(time.time() * 1000)
    response = await site.client.post("/api/v1/admin/maintenance", headers=AUTH, json={
        "title": "Database upgrade", "monitors": ["web"], "duration": "1h",
        "start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now / 1000 + 3600))})
    assert response.status == 201
    start = (await response.json())["starts_at"]
    notify = site.probe.notify
    start_ms = int(datetime.fromisoformat(start).timestamp() * 1000)
    for at in (now, now + 1000, start_ms + 1000, start_ms + 3_600_000 + 1000):  # twice "scheduled": once sent
        await notify.queue_maintenance(at)
    mails = await site.mails("ops-fan@example.com", 4)
    await notifications_settled(site.probe)
    subjects = [m["Subject"] for m in site.mails_to("ops-fan@example.com")[1:]]
    assert subjects == ["[MAINTENANCE SCHEDULED] Database upgrade", "[MAINTENANCE] Database upgrade",
                        "[MAINTENANCE OVER] Database upgrade"]
    assert "List-Unsubscribe" in mails[1]
    hooks = [r.json["incident"] for r in await site.hook.wait_for(3) if r.path_qs == "/"]
    assert [h["status"] for h in hooks] == ["scheduled", "in_progress", "verifying"]
    assert all(h["impact"] == "maintenance" and h["scheduled_for"] for h in hooks)


async def test_without_a_subscribers_section_nobody_can_subscribe(write_config):
    site, smtp = await open_site(write_config, subscribers=False)
    try:
        assert (await site.client.get("/subscribe")).status == 404
        assert (await site.subscribe("x@example.com")).status == 404
        assert 'action="/subscribe"' not in await (await site.client.get("/")).text()
    finally:
        await site.client.close()
        await site.hook.close()
        smtp.stop()


async def test_the_page_shows_the_form_with_the_public_groups(site):
    html = await (await site.client.get("/")).text()
    assert 'action="/subscribe"' in html and 'value="API"' in html and 'value="Public"' in html
    assert 'value="Internal"' not in html


async def test_one_click_unsubscribe_from_the_mail_header_works_once_and_the_link_dies_with_it(site):
    await confirmed(site, "frank@example.com")
    await open_incident(site, "Outage")
    notice = (await site.mails("frank@example.com", 2))[1]
    url = notice["List-Unsubscribe"].strip("<>")
    session = site.client.session
    gone = await session.post(url, data={"List-Unsubscribe": "One-Click"})  # RFC 8058: what mail clients send
    assert gone.status == 200
    assert await site.probe.notify.subscribers.confirmed() == []
    assert (await session.post(url, data={"List-Unsubscribe": "One-Click"})).status == 400  # the link died with it
    rows = await site.probe.store.fetchall("SELECT count(*) FROM subscribers")
    assert rows == [(0,)]


async def test_the_operator_lists_subscribers_and_removes_one(site):
    await site.subscribe("pending@example.com")
    await confirmed(site, "gina@example.com", ["API"])
    listing = await (await site.client.get("/api/v1/admin/subscribers", headers=AUTH)).json()
    assert [(s["email"], s["confirmed"], s["groups"]) for s in listing["subscribers"]] == [
        ("pending@example.com", False, []), ("gina@example.com", True, ["API"])]
    assert listing["webhooks"] == ["partner", "api-only"]
    gina = listing["subscribers"][1]["id"]
    assert (await site.client.delete(f"/api/v1/admin/subscribers/{gina}", headers=AUTH)).status == 200
    assert (await site.client.delete(f"/api/v1/admin/subscribers/{gina}", headers=AUTH)).status == 404
    assert (await site.client.get("/api/v1/admin/subscribers")).status == 401
    await open_incident(site, "API errors", ["api"])
    await site.hook.wait_for(2)  # both webhooks heard it: the event went through the intake
    await notifications_settled(site.probe)
    assert len(site.mails_to("gina@example.com")) == 1


async def test_an_automatic_incident_reaches_subscribers_without_the_check_reason(site):
    await confirmed(site, "hal@example.com")
    monitor = site.probe.config.monitor("web")  # show_target = false: its reasons name the host
    now = int(time.time() * 1000)
    site.probe.record(monitor, ResultRecord("web", now, now, Status.DOWN, "connection refused by 127.0.0.1:9"))
    notice = (await site.mails("hal@example.com", 2))[1]
    assert notice["Subject"] == "[DOWN] Website"
    assert "127.0.0.1:9" not in text_of(notice) and "refused" not in text_of(notice)
    assert "/incidents/" in text_of(notice)


async def test_an_address_with_a_trailing_dot_is_refused_and_its_spellings_share_one_rate_limit(site):
    """`victim@example.test.` was accepted and then jammed every subscriber mail behind it."""
    for text in ("victim@example.test.", "a..b@example.com", "\"quoted\"@example.com", "a@[127.0.0.1]"):
        response = await site.subscribe(text)
        assert response.status == 400 and "valid email address" in await response.text(), text
    for spelling in ("eve@example.com", "Eve@Example.com", " EVE@example.COM "):
        assert (await site.subscribe(spelling)).status == 200
    assert (await site.subscribe("eve@EXAMPLE.com")).status == 429
    rows = await site.probe.store.fetchall("SELECT email FROM subscribers")
    assert rows == [("eve@example.com",)]
    wrong = await site.client.delete("/api/v1/admin/subscribers/eve@example.com.", headers=AUTH)
    assert wrong.status == 400 and "period" in (await wrong.json())["error"]
    removed = await site.client.delete("/api/v1/admin/subscribers/EVE@Example.com", headers=AUTH)
    assert removed.status == 200 and await site.probe.store.fetchall("SELECT email FROM subscribers") == []


async def test_a_stored_address_mail_cannot_be_sent_to_is_set_aside_and_the_mail_behind_it_goes_out(site):
    """A row written before addresses were validated (or by hand) fails once, visibly, and
    holds up nothing: the next confirmation arrives after at most that one attempt."""
    store = site.probe.store
    bad = await store.subscriber_request("victim@example.test.", (), int(time.time() * 1000))
    from probe.notify.outbox import delivery
    from probe.notify.subscribers.actions import EMAIL_TARGET
    from probe.notify.subscribers.senders import Parcel
    await site.probe.notify.outbox.enqueue([delivery(EMAIL_TARGET, Parcel(f"sub:{bad.id}:confirm:1", "confirm", bad.id,
                                                                         expires_s=int(time.time()) + 3600))])
    assert (await site.subscribe("next@example.com")).status == 200
    await site.mails("next@example.com", 1, timeout=10)
    listing = await (await site.client.get("/api/v1/admin/deliveries?state=failed", headers=AUTH)).json()
    (failed,) = listing["deliveries"]
    assert failed["key"] == f"sub:{bad.id}:confirm:1" and failed["attempts"] == 1
    assert "not a valid email address" in failed["error"] and "period" in failed["error"]
    metrics = await (await site.client.get("/metrics")).text()
    assert 'probe_notification_deliveries{notifier="subscribers:email",state="failed"} 1.0' in metrics
    assert 'probe_notification_deliveries{notifier="subscribers:email",state="sent"} 1.0' in metrics


@pytest.mark.parametrize("path", ["/subscribe", "/subscribe/confirm", "/unsubscribe"])
@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=xyz",
                                          "application/x-www-form-urlencoded; charset=nonsense"])
async def test_a_form_body_that_cannot_be_read_is_a_400_not_a_500(site, caplog, path, content_type):
    response = await site.client.post(path, data=b"garbage--xyz", headers={"Content-Type": content_type})
    assert response.status == 400 and "could not be read" in await response.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_file_in_place_of_a_form_field_is_an_invalid_value_not_a_crash(site):
    form = aiohttp.FormData()
    form.add_field("email", b"someone@example.com", filename="email.txt")
    response = await site.client.post("/subscribe", data=form)
    assert response.status == 400 and "valid email address" in await response.text()
