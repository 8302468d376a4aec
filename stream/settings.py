"""Settings of a stream worker: one frozen object, read from ``QW_*`` environment variables.

Two profiles:

* ``embedded`` (default): the Tansu broker on loopback, short session timeout and fetch wait (it
  completes a group join only after half the session timeout and holds a fetch for about half of
  ``fetch_max_wait_ms``), a SQLite checkpoint store. These timings are for that broker alone.
* ``production``: any Kafka-protocol cluster (bootstrap servers, SASL/TLS), production timeouts,
  ``acks=all`` with an idempotent producer, a PostgreSQL checkpoint store.

A field left unset takes its profile's default; anything set explicitly wins. The SASL/TLS variables
and their checks are the alert service's (:class:`schemas.settings.KafkaSecurity`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import KafkaSecurity, settings_error

__all__ = ["PROFILE_DEFAULTS", "StreamSettings", "load_stream_settings"]

#: profile -> defaults for the fields it leaves unset
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "embedded": {
        "bootstrap_servers": "127.0.0.1:9092",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "fetch_max_wait_ms": 100,
        "request_timeout_ms": 30000,
        "enable_idempotence": False,
        "checkpoint_url": "sqlite:///qw-checkpoints.db",
        "replication_factor": 1,
    },
    "production": {
        "session_timeout_ms": 45000,
        "heartbeat_interval_ms": 3000,
        "fetch_max_wait_ms": 500,
        "request_timeout_ms": 60000,  # faust refuses a session timeout above the request timeout
        "enable_idempotence": True,
        "replication_factor": 3,
    },
}


class StreamSettings(KafkaSecurity, BaseSettings):
    """Everything a stream worker, ``push`` and ``up`` need to know (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    profile: Literal["embedded", "production"] = "embedded"

    # where the broker is; how to reach it (QW_SECURITY_PROTOCOL, QW_SASL_*, QW_SSL_CAFILE) comes with
    # KafkaSecurity
    bootstrap_servers: str = ""

    # topics and the consumer group
    topic_prefix: str = "qw."
    group_id: str = "qw-detectors"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=0, ge=0)

    # client timings (0: the profile's default)
    session_timeout_ms: int = Field(default=0, ge=0)
    heartbeat_interval_ms: int = Field(default=0, ge=0)
    fetch_max_wait_ms: int = Field(default=0, ge=0)
    request_timeout_ms: int = Field(default=0, ge=0)
    max_poll_records: int = Field(default=500, ge=1)
    acks: Literal["all"] = "all"
    enable_idempotence: bool | None = None

    # exactly-once bookkeeping: stage state + source offsets, written in one transaction
    checkpoint_url: str = ""
    checkpoint_interval_s: float = Field(default=1.0, gt=0)

    # detection
    epoch: AwareDatetime | None = None
    catalogue_path: str | None = None
    seed: int = 0
    #: the industry and systemic stages release a week without a county that has sent nothing once a
    #: later week has waited this many hours (worker clock); 0: wait for every county, however long
    idle_county_release_hours: float = Field(default=72.0, ge=0)

    # faust app: web server (serves /metrics) and its identity
    app_id: str = "qualitywatch"
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile", "embedded")
        out = dict(data)
        for key, value in PROFILE_DEFAULTS.get(str(profile), {}).items():
            if out.get(key) in (None, "", 0, "0"):
                out[key] = value
        return out

    @field_validator("epoch")
    @classmethod
    def _epoch_is_monday(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.weekday() != 0 or value.time() != datetime.min.time()):
            raise ValueError(f"must be a Monday at 00:00 local time (got {value.isoformat()})")
        return value

    @model_validator(mode="after")
    def _production_is_complete(self) -> StreamSettings:
        if self.profile == "production":
            if not self.bootstrap_servers:
                raise ValueError("QW_BOOTSTRAP_SERVERS: is required with QW_PROFILE=production")
            if not self.checkpoint_url:
                raise ValueError("QW_CHECKPOINT_URL: is required with QW_PROFILE=production (PostgreSQL)")
        return self

    def topic_name(self, base: str) -> str:
        """``base`` with the configured prefix (``sampling-results`` -> ``qw.sampling-results``)."""
        return f"{self.topic_prefix}{base}"

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments of every kafka-python client (``push``, the ingest outbox relay, reading a
        topic back): the servers, the request timeout and the SASL/TLS settings, CA file included."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": self.request_timeout_ms,
            **self.kafka_python_security(),
        }

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection arguments of every aiokafka client (the detection consumer, its producer and admin
        client): those of :meth:`client_kwargs`, with the CA file as a TLS context (aiokafka takes no
        file; ``None`` without TLS)."""
        kw = self.client_kwargs()
        kw.pop("ssl_cafile", None)
        kw["ssl_context"] = self.ssl_context()
        return kw


def load_stream_settings(**overrides: Any) -> StreamSettings:
    """Read the settings from the environment (``QW_*``), with explicit overrides on top.

    Settings that cannot be used raise :class:`schemas.settings.SettingsError`, one line that names each
    variable and the reason and, unlike pydantic's error, never repeats the values (secrets among them).
    """
    try:
        return StreamSettings(**overrides)
    except ValidationError as exc:
        raise settings_error(exc) from None
