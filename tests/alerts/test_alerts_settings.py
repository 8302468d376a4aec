"""The consumer timings of the settings' broker profiles: short ones for the embedded broker only."""

from __future__ import annotations

import pytest

from alerts.settings import PROFILE_DEFAULTS, AlertSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QW_PROFILE", "QW_ENVIRONMENT", "QW_SESSION_TIMEOUT_MS", "QW_FETCH_MAX_WAIT_MS"):
        monkeypatch.delenv(name, raising=False)


def test_development_uses_the_embedded_broker_timings() -> None:
    s = AlertSettings()
    assert s.profile == "embedded"
    assert (s.session_timeout_ms, s.fetch_max_wait_ms) == (6000, 100)


@pytest.mark.parametrize("environment", ["test", "production"])
def test_other_environments_use_the_production_timings(environment: str) -> None:
    s = AlertSettings(environment=environment, webhook_secret="w-secret", smtp_password="s-secret")
    assert s.profile == "production"
    assert s.fetch_max_wait_ms == PROFILE_DEFAULTS["production"]["fetch_max_wait_ms"] == 500


def test_an_explicit_profile_or_timing_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_PROFILE", "embedded")
    monkeypatch.setenv("QW_SESSION_TIMEOUT_MS", "45000")
    s = AlertSettings(environment="production", webhook_secret="w-secret", smtp_password="s-secret")
    assert (s.profile, s.session_timeout_ms, s.fetch_max_wait_ms) == ("embedded", 45000, 100)
    assert AlertSettings(fetch_max_wait_ms=250).fetch_max_wait_ms == 250


def test_an_unknown_profile_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="profile"):
        AlertSettings(profile="cluster")
