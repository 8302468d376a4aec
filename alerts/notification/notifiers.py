"""Receivers' transports: a webhook (httpx) and e-mail (SMTP). Each says whether a failure is retryable.

A notifier's ``send`` returns on success and raises :class:`DeliveryError` otherwise; the delivery
loop retries only when ``retryable`` is true (Alertmanager's rule: network errors, 5xx and 429 are
worth another try, other 4xx are not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from schemas import Catalogue

__all__ = ["DeliveryError", "EmailNotifier", "Notifier", "WebhookNotifier", "render_email"]

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    def send(self, *, target: str, payload: dict[str, Any]) -> None: ...


class WebhookNotifier:
    """POSTs the payload as JSON, signed with HMAC-SHA256 in ``X-QualityWatch-Signature``."""

    def __init__(self, client: httpx.Client, *, secret: str) -> None:
        self._client = client
        self._secret = secret.encode("utf-8")

    def send(self, *, target: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-QualityWatch-Signature": f"sha256={signature}"}
        try:
            response = self._client.post(target, content=body, headers=headers)
        except httpx.InvalidURL as exc:
            raise DeliveryError(f"webhook {target}: invalid URL: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"webhook {target}: timed out ({exc.__class__.__name__})", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"webhook {target}: {exc.__class__.__name__}: {exc}", retryable=True) from exc
        if response.is_success:
            return
        code = response.status_code
        retryable = code >= 500 or code == 429
        raise DeliveryError(f"webhook {target}: HTTP {code} {response.text[:200]}", retryable=retryable)


def _local(stamp: str, zone: tzinfo) -> str:
    """A payload's UTC time as a person on duty reads it: ``2026-03-02 08:00 (Asia/Shanghai, UTC+08:00)``."""
    at = datetime.fromisoformat(stamp).astimezone(zone)
    offset = at.isoformat()[-6:] if at.utcoffset() else "+00:00"
    return f"{at:%Y-%m-%d %H:%M} ({zone}, UTC{offset})"


def _named(labels: dict[str, str], catalogue: Catalogue | None) -> dict[str, str]:
    """Counties and industries by the catalogue's names, the code in brackets.

    ``region: Akto County 阿克陶县 (653022)``; a code the catalogue does not know stays as it is."""
    if catalogue is None:
        return labels
    names = {
        "region": {r.code: f"{r.name_en} {r.name_zh}" for r in catalogue.regions},
        "industry": {i.slug: f"{i.name_en} {i.name_zh}" for i in catalogue.industries},
    }
    out = dict(labels)
    for key, known in names.items():
        code = labels.get(key)
        if code is not None and code in known:
            out[key] = f"{known[code]} ({code})"
    return out


def render_email(
    payload: dict[str, Any],
    *,
    sender: str,
    to: list[str],
    zone: tzinfo = UTC,
    catalogue: Catalogue | None = None,
) -> EmailMessage:
    """The plain-text message of a notification; its times in ``zone`` (the catalogue's time zone), its
    counties and industries by ``catalogue``'s names. An escalation says its step, to whom, why and
    since when the alert fires unacknowledged."""
    qw = payload["qualitywatch"]
    labels = _named(payload["commonLabels"], catalogue)
    times = []
    for alert in payload.get("alerts") or []:
        times.append(f"started: {_local(alert['startsAt'], zone)}")
        if alert["status"] == "resolved":
            times.append(f"resolved: {_local(alert['endsAt'], zone)}")
    escalation = qw.get("escalation")
    if escalation:
        times += [
            f"escalated: step {escalation['step']} of {escalation['tiers']}, to {escalation['receiver']}: "
            f"{escalation['reason']}",
            f"unacknowledged since: {_local(escalation['unacknowledged_since'], zone)}",
        ]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = f"[{qw['level'].upper()}] [{qw['event']}] {payload['commonAnnotations']['summary']}"
    lines = [
        payload["commonAnnotations"]["summary"],
        "",
        f"event: {qw['event']}    state: {qw['state']}    level: {qw['level']} (max {qw['max_level']})",
        *(f"{k}: {v}" for k, v in sorted(labels.items())),
        f"emissions: {qw['count']}    escalation tier: {qw['tier']}    team: {qw['team']}",
        *times,
        "",
        f"open: {qw['url']}",
    ]
    warning = qw.get("warning") or {}
    if warning.get("evidence"):
        lines += ["", "evidence:", json.dumps(warning["evidence"], ensure_ascii=False, indent=2)]
    msg.set_content("\n".join(lines))
    return msg


class EmailNotifier:
    """Sends a plain-text message over SMTP (STARTTLS when the server offers it and ``starttls``)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        starttls: bool = False,
        zone: tzinfo = UTC,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.timeout, self.starttls = user, password, timeout, starttls
        self.zone, self.catalogue = zone, catalogue

    def send(self, *, target: str, payload: dict[str, Any]) -> None:
        to = [a.strip() for a in target.split(",") if a.strip()]
        msg = render_email(payload, sender=self.sender, to=to, zone=self.zone, catalogue=self.catalogue)
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(msg)
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"smtp: all recipients refused {codes}", retryable=all(c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"smtp: {exc.smtp_code} {exc.smtp_error!r}", retryable=exc.smtp_code < 500
            ) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"smtp {self.host}:{self.port}: {exc.__class__.__name__}: {exc}", retryable=True
            ) from exc
        # The server accepted the DATA: the message is delivered, whatever QUIT answers (smtplib's
        # ``with`` raises on an answer other than 221, and a retry would send it twice).
        try:
            code, answer = smtp.quit()
            if code != 221:
                log.warning(
                    "smtp %s:%s: message accepted; QUIT answered %s %r", self.host, self.port, code, answer
                )
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            log.warning("smtp %s:%s: message accepted; QUIT failed: %s", self.host, self.port, exc)
        finally:
            smtp.close()
        if refused:
            raise DeliveryError(f"smtp: some recipients refused: {sorted(refused)}", retryable=False)
