"""Email end to end through a real SMTP server (aiosmtpd) on loopback."""
from __future__ import annotations

import email
import email.policy
import socket
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from probe.notifiers import NotifyError
from tests.notifiers.conftest import down_message, make_notifier


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content, policy=email.policy.default),
                              session.auth_data))
        return "250 queued as 42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_login(server, session, envelope, mechanism, auth_data):
    good = auth_data.login == b"probe" and auth_data.password == b"hunter2"
    return AuthResult(success=good, handled=False, auth_data=auth_data)


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def smtp_starttls(ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=check_login, auth_require_tls=True)
    controller.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield inbox, controller.port, str(ca_file)
    controller.stop()


@pytest.fixture
def smtp_plain():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


async def test_starttls_login_and_a_readable_two_part_message(smtp_starttls):
    inbox, port, ca_file = smtp_starttls
    notifier = make_notifier(type="email", host="127.0.0.1", port=port, mode="starttls", ca_file=ca_file,
                             username="probe", password="hunter2", to=["ops@example.com", "cto@example.com"],
                             **{"from": "probe@example.com"})
    answer = await notifier.send(down_message(reason="HTTP 503 <b>"))
    assert "queued as 42" in answer
    ((sender, recipients, mail, auth),) = inbox.messages
    assert sender == "probe@example.com" and recipients == ["ops@example.com", "cto@example.com"]
    assert auth.login == b"probe"
    assert mail["Subject"] == "[DOWN] Website — HTTP 503 <b>"
    assert mail["X-Probe-Event"] == "event:41"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Reason: HTTP 503 <b>" in text and "https://status.example.com/incidents/7" in text
    assert "HTTP 503 &lt;b&gt;" in html and "<b>[DOWN] Website" in html


async def test_a_wrong_password_is_permanent(smtp_starttls):
    inbox, port, ca_file = smtp_starttls
    notifier = make_notifier(type="email", host="127.0.0.1", port=port, ca_file=ca_file, username="probe",
                             password="wrong", to=["ops@example.com"], **{"from": "probe@example.com"})
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message())
    assert caught.value.permanent and "535" in caught.value.message
    assert inbox.messages == []


async def test_an_untrusted_certificate_is_refused(smtp_starttls):
    _, port, _ = smtp_starttls
    notifier = make_notifier(type="email", host="127.0.0.1", port=port, to=["ops@example.com"],
                             **{"from": "probe@example.com"})
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message())
    assert not caught.value.permanent and "CERTIFICATE_VERIFY_FAILED" in caught.value.message.upper().replace(" ", "_")


async def test_plain_mode_to_a_local_relay_in_chinese(smtp_plain):
    inbox, port = smtp_plain
    notifier = make_notifier(type="email", host="127.0.0.1", port=port, mode="plain", to=["ops@example.com"],
                             **{"from": "probe@example.com"})
    await notifier.send(down_message(language="zh-CN", timezone="Asia/Shanghai"))
    ((_, _, mail, _),) = inbox.messages
    assert mail["Subject"].startswith("[故障] Website")
    assert "开始时间: 2026-" in mail.get_body(("plain",)).get_content()


async def test_nothing_listening_is_transient(tmp_path):
    notifier = make_notifier(type="email", host="127.0.0.1", port=free_port(), mode="plain", to=["a@example.com"],
                             **{"from": "probe@example.com"}, timeout="2s")
    with pytest.raises(NotifyError) as caught:
        await notifier.send(down_message())
    assert not caught.value.permanent
