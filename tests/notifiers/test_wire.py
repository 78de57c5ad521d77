"""Each channel against a real loopback receiver: the exact URL, headers and JSON body, and
signatures checked here with hmac, independently of the sender's code."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

import pytest

from probe.notifiers import REGISTRY, NotifyError
from probe.notifiers.base import HttpNotifier
from tests.notifiers.conftest import down_message, make_notifier, required_keys
from tests.peers.receiver import Answer


async def test_webhook_posts_the_documented_event_signed_per_standard_webhooks(receiver, session):
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    notifier = make_notifier(type="webhook", url=receiver.url + "/hook?x=1", secret=secret,
                             headers={"X-Team": "ops"})
    await notifier.send(down_message(), session)
    (req,) = receiver.requests
    assert req.method == "POST" and req.path_qs == "/hook?x=1"
    assert req.headers["Content-Type"].startswith("application/json") and req.headers["X-Team"] == "ops"
    doc = req.json
    assert doc["type"] == "incident.open" and doc["id"] == "event:41" and doc["status"] == "down"
    assert doc["monitor"] == {"id": "web", "name": "Website"}
    assert doc["incident"]["id"] == 7 and doc["incident"]["url"].endswith("/incidents/7")
    assert doc["reason"] == "HTTP 503 (expected 200)" and doc["started_at"].endswith("+00:00")
    assert doc["summary"] == "[DOWN] Website — HTTP 503 (expected 200)"
    stamp = req.headers["webhook-timestamp"]
    assert abs(int(stamp) - time.time()) < 60 and req.headers["webhook-id"] == "event:41"
    expected = base64.b64encode(hmac.new(key, f"event:41.{stamp}.".encode() + req.body, hashlib.sha256).digest())
    assert req.headers["webhook-signature"] == "v1," + expected.decode()


async def test_unsigned_webhook_has_no_signature_headers(receiver, session):
    await make_notifier(type="webhook", url=receiver.url).send(down_message(), session)
    assert "webhook-signature" not in receiver.requests[0].headers


async def test_dingtalk_markdown_signed_in_the_url_with_milliseconds(receiver, session):
    receiver.json_default({"errcode": 0, "errmsg": "ok"})
    notifier = make_notifier(type="dingtalk", url=receiver.url + "/robot/send?access_token=T0K", secret="SECabc",
                             at_mobiles=["13800000000"])
    await notifier.send(down_message(), session)
    (req,) = receiver.requests
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path_qs).query)
    assert query["access_token"] == ["T0K"]
    ts = query["timestamp"][0]
    assert len(ts) == 13 and abs(int(ts) / 1000 - time.time()) < 60
    expected = base64.b64encode(hmac.new(b"SECabc", f"{ts}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]  # parse_qs undid the urlencoding the robot requires
    assert "sign=" + urllib.parse.quote_plus(expected) in req.path_qs
    doc = req.json
    assert doc["msgtype"] == "markdown" and doc["markdown"]["title"] == "[DOWN] Website — HTTP 503 (expected 200)"
    assert "HTTP 503" in doc["markdown"]["text"] and "@13800000000" in doc["markdown"]["text"]
    assert doc["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


@pytest.mark.parametrize("kind", ["dingtalk", "wecom"])
async def test_robots_answering_200_with_an_error_code_are_failures(receiver, session, kind):
    receiver.json_default({"errcode": 310000, "errmsg": "sign not match"})
    with pytest.raises(NotifyError) as caught:
        await make_notifier(type=kind, url=receiver.url).send(down_message(), session)
    assert caught.value.permanent and "310000" in caught.value.message and "sign not match" in caught.value.message


@pytest.mark.parametrize("kind,doc", [("dingtalk", {"errcode": 130101, "errmsg": "send too fast"}),
                                      ("wecom", {"errcode": 45009, "errmsg": "api freq out of limit"}),
                                      ("feishu", {"code": 11232, "msg": "frequency limited"})])
async def test_robot_throttling_is_retried_later_not_dropped(receiver, session, kind, doc):
    receiver.json_default(doc)
    with pytest.raises(NotifyError) as caught:
        await make_notifier(type=kind, url=receiver.url).send(down_message(), session)
    assert not caught.value.permanent and caught.value.retry_after >= 60


async def test_feishu_card_signed_in_the_body_with_seconds(receiver, session):
    receiver.json_default({"code": 0, "msg": "success", "data": {}})
    await make_notifier(type="feishu", url=receiver.url + "/open-apis/bot/v2/hook/abc", secret="s3cret").send(
        down_message(), session)
    (req,) = receiver.requests
    assert req.path_qs == "/open-apis/bot/v2/hook/abc"
    doc = req.json
    ts = doc["timestamp"]
    assert isinstance(ts, str) and len(ts) == 10 and abs(int(ts) - time.time()) < 60
    expected = base64.b64encode(hmac.new(f"{ts}\ns3cret".encode(), b"", hashlib.sha256).digest()).decode()
    assert doc["sign"] == expected
    assert doc["msg_type"] == "interactive"
    header = doc["card"]["header"]
    assert header["template"] == "red" and header["title"]["content"].startswith("[DOWN] Website")
    assert "HTTP 503" in doc["card"]["elements"][0]["text"]["content"]


async def test_feishu_and_lark_reject_a_nonzero_code(receiver, session):
    receiver.json_default({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
    for kind in ("feishu", "lark"):
        with pytest.raises(NotifyError) as caught:
            await make_notifier(type=kind, url=receiver.url).send(down_message(), session)
        assert caught.value.permanent and "19021" in caught.value.message


async def test_wecom_markdown_is_cut_to_4096_bytes_of_utf8(receiver, session):
    receiver.json_default({"errcode": 0, "errmsg": "ok"})
    long = down_message(language="zh-CN", body="数据库连接失败。" * 600)  # 3 bytes a character
    await make_notifier(type="wecom", url=receiver.url + "/cgi-bin/webhook/send?key=K").send(long, session)
    doc = receiver.requests[0].json
    content = doc["markdown"]["content"]
    assert doc["msgtype"] == "markdown" and receiver.requests[0].path_qs == "/cgi-bin/webhook/send?key=K"
    assert 4000 < len(content.encode()) <= 4096 and content.endswith("…")
    assert "故障" in content  # the Chinese template


async def test_dingtalk_markdown_is_cut_so_the_message_stays_within_20000_bytes(receiver, session):
    receiver.json_default({"errcode": 0, "errmsg": "ok"})
    long = down_message(language="zh-CN", body="数据库连接失败。" * 2000)  # 48,000 bytes of body
    await make_notifier(type="dingtalk", url=receiver.url + "/robot/send?access_token=T").send(long, session)
    (req,) = receiver.requests
    text = req.json["markdown"]["text"]
    assert len(req.body) <= 20_000  # the whole message, title and JSON included
    assert 18_000 < len(text.encode()) and text.endswith("…")  # cut near the limit, visibly
    assert "故障" in text and "数据库连接失败。" in text


async def test_dingtalk_cuts_a_long_message_but_never_the_people_it_mentions(receiver, session):
    receiver.json_default({"errcode": 0, "errmsg": "ok"})
    long = down_message(language="zh-CN", body="数据库连接失败。" * 2000)
    await make_notifier(type="dingtalk", url=receiver.url + "/robot/send?access_token=T",
                        at_mobiles=["13800000000", "13900000000"]).send(long, session)
    (req,) = receiver.requests
    text = req.json["markdown"]["text"]
    assert len(req.body) <= 20_000
    assert text.endswith("…\n\n@13800000000 @13900000000")  # the body cut, the mentions whole after it
    assert req.json["at"]["atMobiles"] == ["13800000000", "13900000000"]


async def test_telegram_text_over_4096_characters_falls_back_to_the_headline_and_link(receiver, session):
    receiver.json_default({"ok": True, "result": {"message_id": 1}})
    notifier = make_notifier(type="telegram", url=receiver.url, token="t", chat_id="1")
    for body in ("Disk full. " * 300, "Disk full. " * 400):  # 3,300 and 4,400 characters
        await notifier.send(down_message(body=body), session)
    whole, cut = (r.json["text"] for r in receiver.requests)
    assert len(whole) <= 4096 and "Disk full. " * 300 in whole
    assert len(cut) <= 4096 and "Disk full." not in cut
    assert cut.startswith("<b>[DOWN] Website — HTTP 503 (expected 200)</b>")
    assert cut.endswith('<a href="https://status.example.com/incidents/7">…</a>')


async def test_slack_blocks_with_a_text_fallback(receiver, session):
    await make_notifier(type="slack", url=receiver.url + "/services/T/B/X").send(
        down_message(reason="<script> & co"), session)
    doc = receiver.requests[0].json
    assert doc["text"] == "[DOWN] Website — <script> & co"
    assert doc["blocks"][0]["type"] == "header"
    assert "&lt;script&gt; &amp; co" in doc["blocks"][1]["text"]["text"]  # no accidental mentions or links
    assert doc["blocks"][2]["elements"][0]["text"] == "<https://status.example.com/incidents/7>"


async def test_slack_plain_text_4xx_is_permanent_with_its_words(receiver, session):
    receiver.default = Answer(404, "no_service")
    with pytest.raises(NotifyError) as caught:
        await make_notifier(type="slack", url=receiver.url).send(down_message(), session)
    assert caught.value.permanent and caught.value.message == "HTTP 404: no_service"


async def test_discord_embed_and_429_retry_after_from_the_body(receiver, session):
    notifier = make_notifier(type="discord", url=receiver.url + "/api/webhooks/1/tok")
    await notifier.send(down_message(), session)
    doc = receiver.requests[0].json
    embed = doc["embeds"][0]
    assert embed["title"].startswith("[DOWN] Website") and embed["color"] == 0xD93025
    assert embed["url"].endswith("/incidents/7") and "HTTP 503" in embed["description"]
    receiver.script.append(Answer(429, '{"message": "You are being rate limited.", "retry_after": 2.5}'))
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message(), session)
    assert not caught.value.permanent and caught.value.retry_after == 2.5


async def test_teams_adaptive_card_and_202_is_success(receiver, session):
    receiver.default = Answer(202, "")
    await make_notifier(type="teams", url=receiver.url + "/workflows/x").send(down_message(), session)
    doc = receiver.requests[0].json
    attachment = doc["attachments"][0]
    assert doc["type"] == "message" and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"].startswith("[DOWN] Website")
    assert card["actions"][0]["url"].endswith("/incidents/7")


async def test_telegram_html_escapes_what_comes_from_outside(receiver, session):
    receiver.json_default({"ok": True, "result": {"message_id": 1}})
    notifier = make_notifier(type="telegram", url=receiver.url, token="123:ABC", chat_id="-100")
    await notifier.send(down_message(reason="<b>evil</b> & co"), session)
    (req,) = receiver.requests
    assert req.path_qs == "/bot123:ABC/sendMessage"
    doc = req.json
    assert doc["chat_id"] == "-100" and doc["parse_mode"] == "HTML"
    assert "&lt;b&gt;evil&lt;/b&gt; &amp; co" in doc["text"] and "<b>evil</b>" not in doc["text"]
    assert doc["text"].startswith("<b>[DOWN] Website")


async def test_telegram_429_retry_after_and_400_description(receiver, session):
    notifier = make_notifier(type="telegram", url=receiver.url, token="t", chat_id="1")
    receiver.script.append(Answer(429, '{"ok":false,"error_code":429,"parameters":{"retry_after":7}}'))
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message(), session)
    assert caught.value.retry_after == 7 and not caught.value.permanent
    receiver.script.append(Answer(400, '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}'))
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message(), session)
    assert caught.value.permanent and "chat not found" in caught.value.message


async def test_ntfy_json_publish_with_priority_tags_click_and_token(receiver, session):
    await make_notifier(type="ntfy", url=receiver.url, topic="ops", token="tk_abc").send(down_message(), session)
    (req,) = receiver.requests
    assert req.path_qs == "/" and req.headers["Authorization"] == "Bearer tk_abc"
    doc = req.json
    assert doc["topic"] == "ops" and doc["priority"] == 4 and doc["tags"] == ["red_circle"]
    assert doc["click"].endswith("/incidents/7") and doc["title"].startswith("[DOWN] Website")


async def test_gotify_message_with_key_header_and_markdown_extras(receiver, session):
    await make_notifier(type="gotify", url=receiver.url + "/", token="AppTok").send(down_message(), session)
    (req,) = receiver.requests
    assert req.path_qs == "/message" and req.headers["X-Gotify-Key"] == "AppTok"
    doc = req.json
    assert doc["priority"] == 8 and doc["extras"]["client::display"] == {"contentType": "text/markdown"}


async def test_pagerduty_triggers_then_resolves_one_alert(receiver, session):
    receiver.default = Answer(202, '{"status":"success","message":"Event processed"}')
    notifier = make_notifier(type="pagerduty", url=receiver.url + "/v2/enqueue", routing_key="R0UT1NG")
    await notifier.send(down_message(), session)
    await notifier.send(down_message(key="event:42", event="resolve", status="up",
                                     resolved_ms=1_795_000_600_000), session)
    trigger, resolve = (r.json for r in receiver.requests)
    assert trigger["routing_key"] == "R0UT1NG" and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "probe-incident-7"
    assert trigger["payload"]["severity"] == "error" and trigger["payload"]["source"] == "Website"
    assert len(trigger["payload"]["summary"]) <= 1024
    assert resolve["event_action"] == "resolve" and "payload" not in resolve


async def test_a_resolve_message_says_how_long_it_lasted(receiver, session):
    await make_notifier(type="webhook", url=receiver.url).send(
        down_message(event="resolve", status="up", resolved_ms=1_795_000_000_000 + 754_000), session)
    doc = receiver.requests[0].json
    assert doc["duration_s"] == 754 and doc["summary"] == "[RESOLVED] Website"
    from probe.notifiers.text import render
    text = render(down_message(event="resolve", status="up", resolved_ms=1_795_000_000_000 + 754_000), "text")
    assert "Duration: 13 min" in text and "Started: 2026-" in text and "CET" in text  # the page's time zone


async def test_a_hung_receiver_costs_one_timeout(receiver, session):
    receiver.default = Answer(hang=True)
    notifier = make_notifier(type="webhook", url=receiver.url, timeout="1s")
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message(), session)
    assert time.monotonic() - started < 5 and not caught.value.permanent
    assert "no answer within 1 s" in caught.value.message


@pytest.mark.parametrize("kind", sorted(k for k, c in REGISTRY.items()
                                        if "cert_expiring" in c.handles and issubclass(c, HttpNotifier)))
async def test_every_channel_that_takes_certificate_notices_says_how_long_is_left(receiver, session, kind):
    receiver.json_default({"errcode": 0, "code": 0, "ok": True})
    cert = down_message(key="cert:web:1796803200:7", event="cert_expiring", status="up", reason="", impact="none",
                        title="TLS certificate expires in 6 days", incident_id=None,
                        url="https://status.example.com/monitors/web", cert_expires_ms=1_796_803_200_000)
    await make_notifier(type=kind, url=receiver.url + "/", **required_keys(kind)).send(cert, session)
    body = receiver.requests[0].body.decode()
    assert "Website — TLS certificate expires in 6 days" in body
    # The expiry in the page's time zone; the webhook's machine readers get it in UTC.
    expiry = '"cert_expires_at":"2026-12-09T08:00:00.000+00:00"' if kind == "webhook" else "2026-12-09 09:00:00 CET"
    assert expiry in body
    assert "https://status.example.com/monitors/web" in body
