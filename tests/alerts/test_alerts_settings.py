"""The alert service's settings: the consumer timings of the broker profiles (short ones for the
embedded broker only), and the SASL/TLS settings the consumers pass to kafka-python, refused at
start-up with the variable named when they cannot work."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer

from alerts.consumer import consumer_config
from alerts.settings import PROFILE_DEFAULTS, AlertSettings, load_settings
from qualitywatch.cli import main

SECURITY = (
    "QW_SECURITY_PROTOCOL",
    "QW_SASL_MECHANISM",
    "QW_SASL_USERNAME",
    "QW_SASL_PASSWORD",
    "QW_SSL_CAFILE",
)
PASSWORD = "kafka-pass-5d1e"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QW_PROFILE", "QW_ENVIRONMENT", "QW_SESSION_TIMEOUT_MS", "QW_FETCH_MAX_WAIT_MS", *SECURITY):
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


def _environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"QW_{name.upper()}", value)


def test_the_consumer_connects_in_plain_text_by_default() -> None:
    config = consumer_config(AlertSettings(), group="qw-alerts")
    assert config["security_protocol"] == "PLAINTEXT"
    assert not [k for k in config if k.startswith(("sasl_", "ssl_"))]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_and_tls_settings_reach_the_consumers_kafka_python_config(
    monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    _environment(
        monkeypatch,
        bootstrap_servers="kafka-1:9093,kafka-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="qw-alerts",
        sasl_password=PASSWORD,
        ssl_cafile=certifi.where(),
    )
    settings = load_settings()
    assert PASSWORD not in repr(settings)
    for group in (settings.consumer_group, settings.stats_consumer_group):
        config = consumer_config(settings, group=group)
        assert config["group_id"] == group
        connection = ("bootstrap", "security", "sasl_", "ssl_")
        assert {k: v for k, v in config.items() if k.startswith(connection)} == {
            "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": "qw-alerts",
            "sasl_plain_password": PASSWORD,
            "ssl_cafile": certifi.where(),
        }
        assert set(config) <= set(KafkaConsumer.DEFAULT_CONFIG)  # every key is one kafka-python knows


def test_tls_without_a_ca_file_trusts_the_system_authorities(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, security_protocol="SSL")
    config = consumer_config(load_settings(), group="g")
    assert config["security_protocol"] == "SSL" and "ssl_cafile" not in config


# the SASL/TLS variables are checked by code shared with the stream's settings: each case of
# tests/unit/test_stream_settings.py runs against both


def test_the_alert_service_refuses_to_start_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _environment(
        monkeypatch,
        database_url=f"sqlite:///{tmp_path / 'alerts.db'}",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="qw-alerts",
        sasl_password=PASSWORD,
        ssl_cafile=str(tmp_path / "ca.pem"),
    )
    for command in (["alerts", "migrate"], ["alerts", "serve"], ["serve"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert result.output == (
            f"Error: invalid settings: QW_SSL_CAFILE: {tmp_path / 'ca.pem'} does not exist or is not a file\n"
        )
    assert not (tmp_path / "alerts.db").exists()  # refused before anything was touched
