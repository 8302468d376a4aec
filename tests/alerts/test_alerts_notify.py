"""Receivers: the webhook (httpx MockTransport) and e-mail (a real local SMTP server), with retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from alerts.notification.models import Notification, NotificationAttempt
from alerts.notification.notifiers import DeliveryError, EmailNotifier
from alerts.route.service import create_route, put_receiver


def _notifications(runtime):  # type: ignore[no-untyped-def]
    with runtime.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def _attempts(runtime, nid):  # type: ignore[no-untyped-def]
    with runtime.session() as s:
        return list(
            s.scalars(
                select(NotificationAttempt)
                .where(NotificationAttempt.notification_id == nid)
                .order_by(NotificationAttempt.id)
            )
        )


def test_webhook_payload_is_alertmanager_v4_plus_the_warning(routed, ingest, make_warning, sink, settings):
    w = make_warning(region="653024", level="red")
    ingest(w)
    report = routed.deliver()
    assert report.sent == 1
    [req] = sink.requests
    assert str(req.url) == "http://hooks.test/duty"
    body = json.loads(req.content)
    for key in (
        "version",
        "groupKey",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ):
        assert key in body, key
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "duty-hook"
    [a] = body["alerts"]
    assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert (
        a["fingerprint"] == w.fingerprint
        and a["labels"]["region"] == "653024"
        and a["labels"]["level"] == "red"
    )
    assert a["endsAt"] == "0001-01-01T00:00:00Z"
    assert body["qualitywatch"]["warning"]["id"] == w.id
    assert body["qualitywatch"]["warning"]["evidence"]["failed"] == 9
    expected = hmac.new(b"test-webhook-secret", req.content, hashlib.sha256).hexdigest()
    assert req.headers["X-QualityWatch-Signature"] == f"sha256={expected}"


def test_resolved_payload_carries_endsat(routed, ingest, make_warning, sink):
    ingest(make_warning(region="653024"), make_warning(region="653024", status="resolved", week=1))
    routed.deliver()
    body = json.loads(sink.requests[-1].content)
    assert body["status"] == "resolved" and body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


def test_webhook_5xx_and_network_errors_are_retried_with_backoff(routed, ingest, make_warning, sink, clock):
    sink.answers = [503, 0]  # 503, then connection refused, then 200
    ingest(make_warning(region="653024"))
    assert routed.deliver().retrying == 1
    [n] = _notifications(routed)
    assert n.status == "pending" and n.attempts == 1 and "HTTP 503" in n.last_error
    assert routed.deliver().sent == 0  # not due yet: backoff 10 s
    clock.advance(timedelta(seconds=10))
    assert routed.deliver().retrying == 1
    clock.advance(timedelta(seconds=19))
    assert routed.deliver().sent == 0  # second backoff is 20 s
    clock.advance(timedelta(seconds=1))
    assert routed.deliver().sent == 1
    [n] = _notifications(routed)
    assert n.status == "sent" and n.attempts == 3
    assert [(a.ok, a.retryable) for a in _attempts(routed, n.id)] == [
        (False, True),
        (False, True),
        (True, False),
    ]


def test_webhook_4xx_is_not_retried_and_stays_visible(routed, ingest, make_warning, sink):
    sink.answers = [400]
    ingest(make_warning(region="653024"))
    assert routed.deliver().failed == 1
    [n] = _notifications(routed)
    assert n.status == "failed" and "HTTP 400" in n.last_error
    [a] = _attempts(routed, n.id)
    assert not a.ok and not a.retryable


def test_retries_stop_after_max_attempts(routed, ingest, make_warning, sink, clock):
    sink.answers = [500, 500, 500, 500]
    ingest(make_warning(region="653024"))
    for _ in range(3):
        routed.deliver()
        clock.advance(timedelta(hours=1))
    [n] = _notifications(routed)
    assert n.status == "failed" and n.attempts == 3  # settings.notify_max_attempts
    assert routed.deliver().sent == 0 and len(sink.requests) == 3


def test_unknown_receiver_fails_with_its_name(runtime, ingest, make_warning):
    from alerts.route.models import Route

    with runtime.session() as s:
        s.add(Route(name="r", position=1, team="t", receivers=["ghost"], escalation_receivers=[]))
        s.commit()
    ingest(make_warning())
    assert runtime.deliver().failed == 1
    assert "'ghost' is not configured" in _notifications(runtime)[0].last_error


# ---------------------------------------------------------------------------------------- e-mail


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: str | None = None
        self.quit_answer: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.refuse and address.startswith(self.refuse):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return self.quit_answer or "221 Bye"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Handler, int]]:
    handler = _Handler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_email_reaches_a_real_smtp_server(runtime, ingest, make_warning, smtp, clock):
    handler, port = smtp
    runtime.notifiers = {
        **runtime.notifiers,
        "email": EmailNotifier(host="127.0.0.1", port=port, sender="qw@bureau.test"),
    }
    with runtime.session() as s:
        put_receiver(
            s,
            name="duty-mail",
            kind="email",
            target="duty@bureau.test,chief@bureau.test",
            actor="a",
            now=clock.now(),
        )
        create_route(
            s,
            name="all",
            team="duty",
            receivers=["duty-mail"],
            actor="a",
            now=clock.now(),
            catalogue=runtime.catalogue,
        )
        s.commit()
    ingest(make_warning(level="red"))
    assert runtime.deliver().sent == 1
    [env] = handler.messages
    assert sorted(env.rcpt_tos) == ["chief@bureau.test", "duty@bureau.test"]
    text = env.content.decode()
    assert (
        "Subject: [RED] [firing]" in text
        and "9 of 40 failed" in text
        and "http://alerts.test/alerts/" in text
    )


def test_email_accepted_by_the_server_is_sent_once_even_if_its_quit_answer_is_an_error(
    runtime, ingest, make_warning, smtp, clock
):
    handler, port = smtp
    handler.quit_answer = "451 4.3.0 local error in processing"
    runtime.notifiers = {
        **runtime.notifiers,
        "email": EmailNotifier(host="127.0.0.1", port=port, sender="qw@bureau.test"),
    }
    with runtime.session() as s:
        put_receiver(s, name="duty-mail", kind="email", target="duty@bureau.test", actor="a", now=clock.now())
        create_route(
            s,
            name="all",
            team="duty",
            receivers=["duty-mail"],
            actor="a",
            now=clock.now(),
            catalogue=runtime.catalogue,
        )
        s.commit()
    ingest(make_warning(level="red"))
    assert runtime.deliver().sent == 1
    clock.advance(timedelta(hours=1))  # past any retry backoff
    runtime.deliver()
    assert len(handler.messages) == 1
    [n] = _notifications(runtime)
    assert n.status == "sent" and [a.ok for a in _attempts(runtime, n.id)] == [True]


def test_email_refused_recipient_is_not_retryable(smtp):
    handler, port = smtp
    handler.refuse = "nobody"
    notifier = EmailNotifier(host="127.0.0.1", port=port, sender="qw@bureau.test")
    payload = {
        "qualitywatch": {
            "level": "red",
            "event": "firing",
            "state": "firing",
            "max_level": "red",
            "count": 1,
            "tier": 0,
            "team": "duty",
            "url": "u",
            "warning": None,
        },
        "commonLabels": {},
        "commonAnnotations": {"summary": "s"},
    }
    with pytest.raises(DeliveryError) as info:
        notifier.send(target="nobody@bureau.test", payload=payload)
    assert not info.value.retryable and "550" in str(info.value)


def test_email_server_down_is_retryable():
    notifier = EmailNotifier(host="127.0.0.1", port=_free_port(), sender="qw@bureau.test", timeout=2)
    payload = {
        "qualitywatch": {
            "level": "red",
            "event": "firing",
            "state": "firing",
            "max_level": "red",
            "count": 1,
            "tier": 0,
            "team": "duty",
            "url": "u",
            "warning": None,
        },
        "commonLabels": {},
        "commonAnnotations": {"summary": "s"},
    }
    with pytest.raises(DeliveryError) as info:
        notifier.send(target="duty@bureau.test", payload=payload)
    assert info.value.retryable


@pytest.mark.parametrize("target", ["http://[::1", "http://", "https:///path", "ftp://hooks.test/x"])
def test_a_webhook_target_that_is_no_usable_url_is_refused(client, token, target):
    r = client.put("/api/receivers/bad", headers=token("admin"), json={"kind": "webhook", "target": target})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "target"


def test_a_stored_malformed_webhook_url_fails_its_notification_and_not_the_others(
    runtime, ingest, make_warning, sink
):
    from alerts.route.models import Receiver, Route

    with runtime.session() as s:  # stored before targets were checked
        s.add(Receiver(name="bad", kind="webhook", target="http://[::1"))
        s.add(Receiver(name="good", kind="webhook", target="http://hooks.test/good"))
        s.add(Route(name="r", position=1, team="t", receivers=["bad", "good"], escalation_receivers=[]))
        s.commit()
    ingest(make_warning(level="red"))
    report = runtime.deliver()
    assert (report.sent, report.failed) == (1, 1)
    bad, good = _notifications(runtime)
    assert bad.status == "failed" and "invalid URL" in (bad.last_error or "")
    assert good.status == "sent" and [str(r.url) for r in sink.requests] == ["http://hooks.test/good"]


def test_overlapping_delivery_rounds_send_each_notification_once(routed, ingest, make_warning, settings):
    """The tick loop, the consumer and the API each deliver; a round may start while another sends."""
    import httpx

    from alerts.runtime import default_notifiers

    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        if len(urls) == 1:
            routed.deliver()  # another round starts while this message is on the wire
        return httpx.Response(200)

    routed.notifiers = default_notifiers(settings, transport=httpx.MockTransport(handler))
    ingest(make_warning(region="653024", level="red"))
    routed.deliver()
    assert urls == ["http://hooks.test/duty"]
    [n] = _notifications(routed)
    assert n.status == "sent" and n.attempts == 1
    assert [a.ok for a in _attempts(routed, n.id)] == [True]


def test_the_link_in_a_notification_opens_the_alert_on_the_dashboard(
    routed, ingest, make_warning, sink, client
):
    ingest(make_warning(region="653024", level="red"))
    routed.deliver()
    [req] = sink.requests
    qw = json.loads(req.content)["qualitywatch"]
    assert qw["url"].startswith("http://alerts.test/")
    r = client.get(qw["url"].removeprefix("http://alerts.test"), follow_redirects=False)
    assert r.status_code in (302, 307)
    assert r.headers["location"] == f"/dashboard/#/feed?alert={qw['alert_id']}"
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_email_says_when_the_alert_fired_and_resolved_in_the_bureaus_time(
    runtime, ingest, make_warning, smtp, clock, settings
):
    from alerts.runtime import default_notifiers

    handler, port = smtp
    runtime.notifiers = default_notifiers(settings.model_copy(update={"smtp_port": port}))
    with runtime.session() as s:
        put_receiver(s, name="duty-mail", kind="email", target="duty@bureau.test", actor="a", now=clock.now())
        create_route(
            s, name="all", team="duty", receivers=["duty-mail"], actor="a", now=clock.now(),
            catalogue=runtime.catalogue,
        )  # fmt: skip
        s.commit()
    # fired 2026-03-02 00:00 UTC and resolved a week later: 08:00 in Kizilsu (Asia/Shanghai)
    ingest(make_warning(level="red"), make_warning(level="red", status="resolved", week=1))
    assert runtime.deliver().sent == 2
    fired, resolved = (env.content.decode() for env in handler.messages)
    assert "started: 2026-03-02 08:00 (Asia/Shanghai, UTC+08:00)" in fired
    assert "resolved:" not in fired
    assert "started: 2026-03-02 08:00 (Asia/Shanghai, UTC+08:00)" in resolved
    assert "resolved: 2026-03-09 08:00 (Asia/Shanghai, UTC+08:00)" in resolved


def _mail_text(env) -> str:  # type: ignore[no-untyped-def]
    """A received message as its reader sees it: the subject and the decoded body."""
    import email
    from email import policy

    msg = email.message_from_bytes(env.content, policy=policy.default)
    return f"Subject: {str(msg['Subject']).strip()}\n{msg.get_content()}"


def test_an_escalation_email_carries_the_evidence_why_and_since_when_and_names_the_county(
    runtime, ingest, make_warning, smtp, clock, settings
):
    from alerts.runtime import default_notifiers

    handler, port = smtp
    runtime.notifiers = default_notifiers(settings.model_copy(update={"smtp_port": port}))
    with runtime.session() as s:
        put_receiver(s, name="duty-mail", kind="email", target="duty@bureau.test", actor="a", now=clock.now())
        put_receiver(
            s, name="chief-mail", kind="email", target="chief@bureau.test", actor="a", now=clock.now()
        )
        create_route(
            s, name="all", team="duty", receivers=["duty-mail"], escalation_receivers=["chief-mail"],
            actor="a", now=clock.now(), catalogue=runtime.catalogue,
        )  # fmt: skip
        s.commit()
    ingest(make_warning(region="653024", industry="food_processing", level="red"))
    assert runtime.deliver().sent == 1
    clock.advance(timedelta(minutes=15))  # not acknowledged within the red timeout
    escalated, report = runtime.tick()
    assert len(escalated) == 1 and report.sent == 1
    fired, escalation = (_mail_text(env) for env in handler.messages)
    assert handler.messages[1].rcpt_tos == ["chief@bureau.test"]
    for text in (fired, escalation):
        assert "region: Wuqia County 乌恰县 (653024)" in text
        assert "industry: Food processing 食品加工 (food_processing)" in text
        assert "region: 653024" not in text
    assert "Subject: [RED] [escalated] regional 653024: 9 of 40 failed" in escalation
    assert "evidence:" in escalation and '"failed": 9' in escalation
    assert "escalated: step 1 of 2, to chief-mail: not acknowledged within 15 min at level red" in escalation
    assert "unacknowledged since: 2026-03-02 08:00 (Asia/Shanghai, UTC+08:00)" in escalation
    assert "escalated:" not in fired
