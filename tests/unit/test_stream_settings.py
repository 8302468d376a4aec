"""The stream's settings (worker, ``push``, ``up``, the ingest relay): the SASL/TLS variables are read
and checked as the alert service's are, and a combination that cannot work is refused naming the
variable, never its value."""

from __future__ import annotations

import os
from pathlib import Path

import certifi
import pytest
from pydantic import ValidationError

from stream.settings import StreamSettings

PASSWORD = "kafka-pass-7c3a"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QW_"):
            monkeypatch.delenv(name)


def _environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"QW_{name.upper()}", value)


def test_sasl_and_tls_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(
        monkeypatch,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="qw-stream",
        sasl_password=PASSWORD,
        ssl_cafile=certifi.where(),
    )
    s = StreamSettings()
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username, s.ssl_cafile) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "qw-stream",
        certifi.where(),
    )
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(s)


def test_variables_set_to_nothing_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, sasl_mechanism="", sasl_username="", sasl_password="", ssl_cafile="")
    s = StreamSettings()
    assert (s.sasl_mechanism, s.sasl_username, s.sasl_password, s.ssl_cafile) == (None, None, None, None)


def _not_pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    return str(path)


#: settings that cannot work -> the start of the reason, which names the variable
UNUSABLE = [
    (
        {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": PASSWORD},
        "QW_SASL_MECHANISM: is required with QW_SECURITY_PROTOCOL=SASL_SSL",
    ),
    (
        {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": PASSWORD},
        "QW_SASL_MECHANISM: is required with QW_SECURITY_PROTOCOL=SASL_PLAINTEXT",
    ),
    (
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_password": PASSWORD},
        "QW_SASL_USERNAME: is required with QW_SASL_MECHANISM=PLAIN",
    ),
    (
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"},
        "QW_SASL_PASSWORD: is required with QW_SASL_MECHANISM=SCRAM-SHA-256",
    ),
    (
        {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": PASSWORD},
        "QW_SASL_MECHANISM: is only used with QW_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL, not PLAINTEXT",
    ),
    (
        {"security_protocol": "SSL", "sasl_password": PASSWORD},
        "QW_SASL_PASSWORD: is only used with QW_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL, not SSL",
    ),
    (
        {"ssl_cafile": certifi.where()},
        "QW_SSL_CAFILE: is only used with QW_SECURITY_PROTOCOL=SSL or SASL_SSL, not PLAINTEXT",
    ),
    (
        {"security_protocol": "SSL", "ssl_cafile": "{tmp}/missing.pem"},
        "QW_SSL_CAFILE: {tmp}/missing.pem does not exist or is not a file",
    ),
    (
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": PASSWORD,
            "ssl_cafile": "{tmp}",
        },
        "QW_SSL_CAFILE: {tmp} does not exist or is not a file",
    ),
    (
        {"security_protocol": "SSL", "ssl_cafile": "{not_pem}"},
        "QW_SSL_CAFILE: {not_pem} is not a readable PEM file of certificate authorities",
    ),
    (
        {"profile": "production", "checkpoint_url": "postgresql+psycopg://db/qw"},
        "QW_BOOTSTRAP_SERVERS: is required with QW_PROFILE=production",
    ),
    (
        {"profile": "production", "bootstrap_servers": "kafka-1:9092"},
        "QW_CHECKPOINT_URL: is required with QW_PROFILE=production",
    ),
]


@pytest.mark.parametrize(("values", "message"), UNUSABLE)
def test_unusable_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str], message: str
) -> None:
    where = {"tmp": str(tmp_path), "not_pem": _not_pem(tmp_path)}
    _environment(monkeypatch, **{k: v.format(**where) for k, v in values.items()})
    with pytest.raises(ValidationError) as caught:
        StreamSettings()
    assert message.format(**where) in str(caught.value)
