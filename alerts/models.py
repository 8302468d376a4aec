"""Every table of the alert service in one import (what Alembic compares against)."""

from __future__ import annotations

from .alert.models import Alert, AlertComment, AlertDecision, AlertState, Disposition, ReceivedWarning
from .audit.models import AuditEntry
from .auth.models import Role, Token
from .db import Base
from .incident.models import (
    Incident,
    IncidentAlert,
    IncidentLink,
    IncidentMember,
    IncidentState,
    IncidentTask,
    TimelineEntry,
)
from .notification.models import Notification, NotificationAttempt, NotificationStatus
from .route.models import Receiver, Route
from .silence.models import Silence
from .stats.models import CellStat

__all__ = [
    "Alert",
    "AlertComment",
    "AlertDecision",
    "AlertState",
    "AuditEntry",
    "Base",
    "CellStat",
    "Disposition",
    "Incident",
    "IncidentAlert",
    "IncidentLink",
    "IncidentMember",
    "IncidentState",
    "IncidentTask",
    "Notification",
    "NotificationAttempt",
    "NotificationStatus",
    "ReceivedWarning",
    "Receiver",
    "Role",
    "Route",
    "Silence",
    "TimelineEntry",
    "Token",
]
