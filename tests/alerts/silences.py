"""A silence as the escalation and silence-end tests set one: an officer silences Wuqia from now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from alerts.auth.models import Role
from alerts.auth.service import Principal
from alerts.silence.service import create_silence
from schemas import default_catalogue

OFFICER = Principal(name="officer", role=Role.duty_officer)


def silence_wuqia(session: Session, clock: Any, lasting: timedelta) -> Any:
    """An officer silences Wuqia (653024) from now for ``lasting``; the silence, committed."""
    silence = create_silence(
        session,
        principal=OFFICER,
        region="653024",
        starts_at=clock.now(),
        ends_at=clock.now() + lasting,
        reason="known: the lab re-tests the batch",
        now=clock.now(),
        catalogue=default_catalogue(),
    )
    session.commit()
    return silence
