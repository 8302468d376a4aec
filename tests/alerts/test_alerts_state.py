"""The alert and incident state machines, the settings object and the migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError

from alerts.alert.models import AlertState
from alerts.alert.state import TRANSITIONS as ALERT_MOVES
from alerts.alert.state import next_state
from alerts.errors import IllegalTransition
from alerts.incident.models import IncidentState
from alerts.incident.state import check_transition
from alerts.models import Base
from alerts.settings import AlertSettings

ACTIONS = ("acknowledge", "resolve", "raise_level", "refire")


@pytest.mark.parametrize("state", list(AlertState))
@pytest.mark.parametrize("action", ACTIONS)
def test_alert_state_machine(state: AlertState, action: str) -> None:
    if (state, action) in ALERT_MOVES:
        assert next_state(state.value, action) is ALERT_MOVES[(state, action)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_state(state.value, action)
        assert info.value.field == "state" and state.value in info.value.message


LEGAL = {
    ("reported", "investigating"),
    ("investigating", "controlled"),
    ("controlled", "resolved"),
    ("controlled", "investigating"),
    ("resolved", "closed"),
}


@pytest.mark.parametrize("frm", list(IncidentState))
@pytest.mark.parametrize("to", list(IncidentState))
def test_incident_state_machine(frm: IncidentState, to: IncidentState) -> None:
    if (frm.value, to.value) in LEGAL:
        assert check_transition(frm.value, to.value) is to
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(frm.value, to.value)
        assert f"from {frm.value} to {to.value}" in info.value.message


def test_default_secrets_are_refused_outside_development() -> None:
    assert AlertSettings(environment="development").webhook_secret.get_secret_value() == "changethis"
    with pytest.raises(ValidationError) as info:
        AlertSettings(environment="production", smtp_password="s3cret")
    assert "QW_WEBHOOK_SECRET" in str(info.value)
    ok = AlertSettings(environment="production", webhook_secret="a", smtp_password="b")
    with pytest.raises(ValidationError):
        ok.port = 1  # type: ignore[misc]
    assert "a" not in repr(ok.webhook_secret)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_ESCALATE_RED_S", "60")
    monkeypatch.setenv("QW_TOPIC_PREFIX", "dev.")
    s = AlertSettings()
    assert s.escalate_red_s == 60 and s.topic == "dev.warnings"


def test_migrations_build_exactly_the_models(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        conn = session.connection()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_datetimes_come_back_timezone_aware(runtime, ingest, make_warning, session) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from alerts.alert.models import Alert

    w = make_warning()
    ingest(w)
    a = session.scalar(select(Alert))
    assert a.first_seen == w.raised_at and a.first_seen.tzinfo is not None
