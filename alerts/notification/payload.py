"""The webhook body: Alertmanager's webhook (version 4) plus a ``qualitywatch`` object.

Existing Alertmanager tooling reads the standard fields unchanged; the ``qualitywatch`` object
carries the full warning, the alert's handling state and the notification event; an escalation's
also ``escalation``: ``step`` (tier reached) of ``tiers``, ``receiver``, ``reason`` and
``unacknowledged_since`` (UTC, when the alert started firing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..alert.models import Alert

__all__ = ["ZERO_TIME", "webhook_payload"]

#: Alertmanager's "not ended yet"
ZERO_TIME = "0001-01-01T00:00:00Z"


def _labels(alert: Alert) -> dict[str, str]:
    labels = {
        "alertname": f"qualitywatch_{alert.kind}",
        "kind": alert.kind,
        "level": alert.level,
        "detector": alert.detector,
    }
    for key in ("region", "industry", "item", "enterprise_id"):
        value = getattr(alert, key)
        if value is not None:
            labels[key] = value
    return labels


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def webhook_payload(
    *,
    alert: Alert,
    warning: dict[str, Any] | None,
    event: str,
    receiver: str,
    external_url: str,
    escalation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    labels = _labels(alert)
    status = "resolved" if event == "resolved" else "firing"
    url = f"{external_url.rstrip('/')}/alerts/{alert.id}"
    annotations = {"summary": alert.summary, "description": alert.summary, "event": event}
    group_labels = {"alertname": labels["alertname"], "kind": alert.kind}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}", fingerprint="{alert.fingerprint}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _iso(alert.started_at),
                "endsAt": _iso(alert.resolved_at)
                if status == "resolved" and alert.resolved_at
                else ZERO_TIME,
                "generatorURL": url,
                "fingerprint": alert.fingerprint,
            }
        ],
        "qualitywatch": {
            "event": event,
            "alert_id": alert.id,
            "state": alert.state,
            "level": alert.level,
            "max_level": alert.max_level,
            "count": alert.count,
            "tier": alert.tier,
            "team": alert.team,
            "url": url,
            "warning": warning,
            **({"escalation": {**escalation, "receiver": receiver}} if escalation is not None else {}),
        },
    }
