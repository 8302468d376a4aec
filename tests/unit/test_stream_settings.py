"""The stream's settings (worker, ``push``, ``up``, the ingest relay) and the ingest's: the SASL/TLS
variables are read and checked by the same code as the alert service's (each case below runs against
both), and settings that cannot work are refused with one line naming the variable, never its value,
by every command that reads them."""

from __future__ import annotations

import os
from pathlib import Path

import certifi
import pytest
from click.testing import CliRunner

from alerts.settings import load_settings as load_alert_settings
from qualitywatch.cli import main
from schemas.settings import SettingsError
from stream.broker import free_port
from stream.ingest.settings import load_ingest_settings
from stream.settings import StreamSettings, load_stream_settings

PASSWORD = "kafka-pass-7c3a"
#: the two settings classes that read the SASL/TLS variables (``schemas.settings.KafkaSecurity``)
LOADERS = {"stream": load_stream_settings, "alert service": load_alert_settings}


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


@pytest.mark.parametrize("reader", LOADERS)
def test_variables_set_to_nothing_are_unset(monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    _environment(
        monkeypatch,
        security_protocol="",
        sasl_mechanism="",
        sasl_username="",
        sasl_password="",
        ssl_cafile="",
    )
    s = LOADERS[reader]()
    assert s.security_protocol == "PLAINTEXT"  # the default, as when it is not set at all
    assert (s.sasl_mechanism, s.sasl_username, s.sasl_password, s.ssl_cafile) == (None, None, None, None)


def _not_pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    return str(path)


#: SASL/TLS settings that cannot work -> the start of the reason, which names the variable
UNUSABLE_SECURITY = [
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
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"},
        "QW_SASL_PASSWORD: is required with QW_SASL_MECHANISM=SCRAM-SHA-512",
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
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_password": PASSWORD},
        "QW_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'",
    ),
    ({"security_protocol": "TLS"}, "QW_SECURITY_PROTOCOL: Input should be 'PLAINTEXT'"),
    (
        {"ssl_cafile": certifi.where()},
        "QW_SSL_CAFILE: is only used with QW_SECURITY_PROTOCOL=SSL or SASL_SSL, not PLAINTEXT",
    ),
    (
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": PASSWORD,
            "ssl_cafile": certifi.where(),
        },
        "QW_SSL_CAFILE: is only used with QW_SECURITY_PROTOCOL=SSL or SASL_SSL, not SASL_PLAINTEXT",
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
]
#: stream settings that cannot work in production
UNUSABLE_STREAM = [
    (
        {"profile": "production", "checkpoint_url": "postgresql+psycopg://db/qw"},
        "QW_BOOTSTRAP_SERVERS: is required with QW_PROFILE=production",
    ),
    (
        {"profile": "production", "bootstrap_servers": "kafka-1:9092"},
        "QW_CHECKPOINT_URL: is required with QW_PROFILE=production",
    ),
]


@pytest.mark.parametrize(
    ("reader", "values", "message"),
    [(reader, *case) for reader in LOADERS for case in UNUSABLE_SECURITY]
    + [("stream", *case) for case in UNUSABLE_STREAM],
)
def test_unusable_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reader: str, values: dict[str, str], message: str
) -> None:
    where = {"tmp": str(tmp_path), "not_pem": _not_pem(tmp_path)}
    _environment(monkeypatch, **{k: v.format(**where) for k, v in values.items()})
    with pytest.raises(SettingsError) as caught:
        LOADERS[reader]()
    assert str(caught.value).startswith("invalid settings: ")
    assert message.format(**where) in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_field_error_names_the_variable_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, partitions="0", epoch="2026-03-04T00:00:00+08:00")
    with pytest.raises(SettingsError) as caught:
        load_stream_settings()
    assert str(caught.value) == (
        "invalid settings: QW_PARTITIONS: Input should be greater than or equal to 1; "
        "QW_EPOCH: must be a Monday at 00:00 local time (got 2026-03-04T00:00:00+08:00)"
    )
    _environment(monkeypatch, relay_batch_size="0", relay_poll_interval_s="never")
    with pytest.raises(SettingsError) as caught:
        load_ingest_settings()
    assert str(caught.value) == (
        "invalid settings: QW_RELAY_BATCH_SIZE: Input should be greater than or equal to 1; "
        "QW_RELAY_POLL_INTERVAL_S: Input should be a valid number, unable to parse string as a number"
    )


def test_overrides_are_checked_like_the_environment() -> None:
    with pytest.raises(SettingsError, match="QW_SASL_MECHANISM: is required"):
        load_stream_settings(security_protocol="SASL_SSL")
    assert load_stream_settings(bootstrap_servers="kafka-1:9092").bootstrap_servers == "kafka-1:9092"


# --------------------------------------------------------------------------------------------------
# every command that reads them: one line naming the variable, exit status 1, nothing started


def _secured(tmp_path: Path, **values: str) -> dict[str, str]:
    """SASL over TLS with a password, the alert database under ``tmp_path``, and ``values`` on top."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "qw-stream",
        "sasl_password": PASSWORD,
        "ssl_cafile": certifi.where(),
        "database_url": f"sqlite:///{tmp_path / 'alerts.db'}",
        **values,
    }


def _commands(tmp_path: Path, *names: str) -> list[list[str]]:
    records = tmp_path / "records.jsonl"
    records.write_text("")
    ports = [str(free_port()) for _ in range(3)]
    every = {
        "worker": ["worker"],
        "push": ["push", str(records)],
        "serve": ["serve", "--port", ports[0]],
        "up": ["up", "--no-demo", "--port", ports[0], "--web-port", ports[1], "--http-port", ports[2]],
        "import": ["import", str(records), "--database-url", f"sqlite:///{tmp_path / 'ingest.db'}"],
        "simulate": ["simulate", "--out", str(tmp_path / "sim")],
        "migrate": ["migrate", "--checkpoint-url", f"sqlite:///{tmp_path / 'checkpoints.db'}"],
    }
    return [every[name] for name in names]


@pytest.mark.parametrize(
    ("values", "commands", "message"),
    [
        (
            {"ssl_cafile": "{tmp}/ca.pem"},
            ("worker", "push", "serve", "up", "simulate", "migrate"),
            "QW_SSL_CAFILE: {tmp}/ca.pem does not exist or is not a file",
        ),
        (
            {"sasl_mechanism": ""},
            ("worker", "push", "serve", "up", "simulate", "migrate"),
            "QW_SASL_MECHANISM: is required with QW_SECURITY_PROTOCOL=SASL_SSL "
            "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
        ),
        (
            {"partitions": "0"},
            ("worker", "push", "serve", "up", "migrate"),
            "QW_PARTITIONS: Input should be greater than or equal to 1",
        ),
        (
            {"relay_batch_size": "0"},
            ("serve", "up", "import", "migrate"),
            "QW_RELAY_BATCH_SIZE: Input should be greater than or equal to 1",
        ),
    ],
)
def test_commands_refuse_unusable_settings_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    values: dict[str, str],
    commands: tuple[str, ...],
    message: str,
) -> None:
    _environment(monkeypatch, **{k: v.format(tmp=tmp_path) for k, v in _secured(tmp_path, **values).items()})
    for command in _commands(tmp_path, *commands):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, (command, result.output)
        assert result.output == f"Error: invalid settings: {message.format(tmp=tmp_path)}\n", command
        assert PASSWORD not in result.output
    assert not (tmp_path / "alerts.db").exists()  # refused before anything was touched
    assert not (tmp_path / "ingest.db").exists()
    assert not (tmp_path / "checkpoints.db").exists()
