"""What each Kafka client of the stream and the ingest receives from the settings: one function builds
the SASL/TLS arguments of every kafka-python client (the alert service's consumers too), CA file
included, and the asyncio clients get the same as a TLS context."""

from __future__ import annotations

import inspect
import os
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from kafka import KafkaConsumer, KafkaProducer

from alerts.consumer import consumer_config
from alerts.settings import AlertSettings
from qualitywatch.server import build_ingest
from stream.ingest import IngestSettings, Principal, static_verifier
from stream.settings import StreamSettings

PASSWORD = "kafka-pass-90b2"
SECURED: dict[str, Any] = {
    "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "qw-stream",
    "sasl_password": PASSWORD,
    "ssl_cafile": certifi.where(),
}
#: what every kafka-python client of a SASL_SSL cluster must be given
KAFKA_PYTHON_SECURITY = {
    "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "qw-stream",
    "sasl_plain_password": PASSWORD,
    "ssl_cafile": certifi.where(),
}
CONNECTION = ("bootstrap_servers", "security_protocol", "sasl_", "ssl_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QW_"):
            monkeypatch.delenv(name)


def _connection(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k.startswith(CONNECTION)}


def test_kafka_python_clients_get_the_ca_file_with_the_credentials() -> None:
    kw = StreamSettings(**SECURED).client_kwargs()  # readback, benchmarks, and the two below
    assert _connection(kw) == KAFKA_PYTHON_SECURITY
    assert set(kw) <= set(KafkaConsumer.DEFAULT_CONFIG) & set(KafkaProducer.DEFAULT_CONFIG)


def test_the_outbox_relay_gets_the_ca_file_with_the_credentials(tmp_path: Path) -> None:
    parts = build_ingest(
        settings=IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"),
        stream_settings=StreamSettings(**SECURED),
        verify=static_verifier({"t": Principal(name="lab", role="inspector", region=None)}),
        relay=True,
    )
    assert parts.relay is not None
    config = dict(parts.relay.producer_config)  # what its KafkaProducer is built with
    assert _connection(config) == KAFKA_PYTHON_SECURITY
    assert config["acks"] == "all"
    assert set(config) <= set(KafkaProducer.DEFAULT_CONFIG)


def test_push_gets_the_ca_file_with_the_credentials() -> None:
    from stream.producer import pusher_config

    config = pusher_config(StreamSettings(**SECURED, enable_idempotence=True))
    assert _connection(config) == KAFKA_PYTHON_SECURITY
    assert (config["acks"], config["enable_idempotence"]) == ("all", True)
    assert set(config) <= set(KafkaProducer.DEFAULT_CONFIG)


def test_the_alert_service_and_the_stream_build_the_same_connection() -> None:
    stream = StreamSettings(**SECURED).client_kwargs()
    alerts = consumer_config(AlertSettings(**SECURED), group="qw-alerts")
    assert _connection(alerts) == _connection(stream) == KAFKA_PYTHON_SECURITY


@pytest.mark.parametrize(
    ("values", "kafka_python"),
    [
        ({}, {"security_protocol": "PLAINTEXT"}),
        ({"security_protocol": "SSL"}, {"security_protocol": "SSL"}),
        (
            {"security_protocol": "SSL", "ssl_cafile": certifi.where()},
            {"security_protocol": "SSL", "ssl_cafile": certifi.where()},
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": PASSWORD,
            },
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "u",
                "sasl_plain_password": PASSWORD,
            },
        ),
    ],
)
def test_each_protocol_gives_only_its_own_arguments(
    values: dict[str, str], kafka_python: dict[str, str]
) -> None:
    kw = StreamSettings(bootstrap_servers="k:9092", **values).client_kwargs()
    assert _connection(kw) == {"bootstrap_servers": "k:9092", **kafka_python}


def _accepted_by(cls: type) -> set[str]:
    return set(inspect.signature(cls).parameters)


def test_the_detection_consumer_gets_a_tls_context_instead_of_the_file() -> None:
    kw = StreamSettings(**SECURED).aiokafka_kwargs()
    assert "ssl_cafile" not in kw  # aiokafka takes a context, not a file
    for cls in (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient):
        assert set(kw) <= _accepted_by(cls), cls
    assert {k: v for k, v in kw.items() if k != "ssl_context"} == {
        **{k: v for k, v in KAFKA_PYTHON_SECURITY.items() if k != "ssl_cafile"},
        "request_timeout_ms": StreamSettings(**SECURED).request_timeout_ms,
    }
    context = kw["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == _ca_count(certifi.where())  # the CA file's, and only those


def test_no_tls_context_without_tls() -> None:
    kw = StreamSettings(
        bootstrap_servers="k:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=PASSWORD,
    ).aiokafka_kwargs()
    assert kw["ssl_context"] is None and kw["security_protocol"] == "SASL_PLAINTEXT"


def _ca_count(path: str) -> int:
    return Path(path).read_text().count("-----BEGIN CERTIFICATE-----")


# --------------------------------------------------------------------------------------------------
# the faust app: its credentials carry the protocol (faust reads it off their class and TLS context)

EPOCH = "2021-01-04T00:00:00+08:00"


def _faust_app(tmp_path: Path, **values: Any) -> Any:
    from stream.app import create_app

    store = f"sqlite:///{tmp_path / 'checkpoints.db'}"  # not the working directory's default
    return create_app(StreamSettings(epoch=EPOCH, web_enabled=False, checkpoint_url=store, **values))


def test_faust_sasl_over_tls_gets_sasl_credentials_with_a_tls_context(tmp_path: Path) -> None:
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol, SASLMechanism

    credentials = _faust_app(tmp_path, **SECURED).conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("qw-stream", PASSWORD)
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == _ca_count(certifi.where())
    auth = credentials_to_aiokafka_auth(credentials)  # what faust hands its aiokafka clients
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert auth["ssl_context"] is context


def test_faust_sasl_in_plain_text_gets_sasl_credentials_without_tls(tmp_path: Path) -> None:
    from faust.auth import SASLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol, SASLMechanism

    credentials = _faust_app(
        tmp_path,
        bootstrap_servers="kafka-1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="qw-stream",
        sasl_password=PASSWORD,
    ).conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism.PLAIN
    assert credentials.ssl_context is None
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize("cafile", [certifi.where(), None])
def test_faust_tls_gets_ssl_credentials_with_the_ca_files_context(cafile: str | None, tmp_path: Path) -> None:
    from faust.auth import SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    from faust.types.auth import AuthProtocol

    credentials = _faust_app(
        tmp_path, bootstrap_servers="kafka-1:9093", security_protocol="SSL", ssl_cafile=cafile
    ).conf.broker_credentials
    assert isinstance(credentials, SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    context = credentials.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    if cafile is not None:
        assert len(context.get_ca_certs()) == _ca_count(cafile)
    assert credentials_to_aiokafka_auth(credentials) == {"security_protocol": "SSL", "ssl_context": context}


def test_faust_in_plain_text_gets_no_credentials(tmp_path: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    app = _faust_app(tmp_path, bootstrap_servers="kafka-1:9092")
    assert app.conf.broker_credentials is None
    assert credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context) == {
        "security_protocol": "PLAINTEXT"
    }
