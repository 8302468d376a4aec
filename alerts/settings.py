"""The alert service's one typed, frozen settings object (environment prefix ``QW_``).

Read once where the service starts (``load_settings()``) and passed down; nothing in ``alerts/`` reads
the environment anywhere else. Secrets are ``SecretStr`` and the default ones are refused outside
development, so a production deployment cannot run with a published secret.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import Level, field_errors

from .errors import SettingsError

__all__ = ["DEFAULT_SECRET", "PROFILE_DEFAULTS", "AlertSettings", "load_settings"]

#: the development default of every secret; refused when ``environment`` is not ``development``
DEFAULT_SECRET = "changethis"


#: consumer timings per broker profile, for the fields left unset (anything set explicitly wins). The
#: embedded broker (Tansu) completes a group join only after half the session timeout and holds a fetch
#: for about half of ``fetch_max_wait_ms``: short ones keep a warning's way to its alert short there.
PROFILE_DEFAULTS: dict[str, dict[str, int]] = {
    "embedded": {"session_timeout_ms": 6000, "fetch_max_wait_ms": 100},
    "production": {"session_timeout_ms": 10_000, "fetch_max_wait_ms": 500},
}


class AlertSettings(BaseSettings):
    """Everything the alert service can be told, with development defaults."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///qualitywatch-alerts.db"

    # consumer (kafka-python); ``profile`` (``QW_PROFILE``, as the stream worker's) picks the timings
    # of PROFILE_DEFAULTS; unset, it is ``embedded`` in development and ``production`` otherwise
    profile: Literal["embedded", "production"] = "embedded"
    bootstrap_servers: str = "127.0.0.1:9092"
    # how to reach the cluster: the same QW_* variables as the stream worker's. A SASL protocol needs a
    # mechanism and both credentials; the CA file (TLS) must be a readable PEM bundle. Unset, the
    # system's certificate authorities are trusted.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    #: topic names are ``topic_prefix + name``, as in the stream's settings (``qw.warnings``)
    topic_prefix: str = "qw."
    warnings_topic: str = "warnings"
    consumer_group: str = "qw-alerts"
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    fetch_max_wait_ms: int = Field(default=500, ge=0)
    consume: bool = True
    #: the stream's weekly (county, industry) figures, read into ``cell_stats`` when ``consume`` is on
    cell_weeks_topic: str = "cell-weeks"
    stats_consumer_group: str = "qw-alerts-stats"
    consume_cell_weeks: bool = True

    # escalation: seconds an alert may stay unacknowledged at each level before the next tier
    escalate_red_s: float = Field(default=15 * 60, gt=0)
    escalate_orange_s: float = Field(default=30 * 60, gt=0)
    escalate_yellow_s: float = Field(default=2 * 3600, gt=0)
    escalate_blue_s: float = Field(default=8 * 3600, gt=0)
    escalation_tiers: int = Field(default=2, ge=0, description="tiers above the first responders")

    # notifications
    notify_max_attempts: int = Field(default=5, ge=1)
    notify_backoff_s: float = Field(default=30.0, ge=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_secret: SecretStr = SecretStr(DEFAULT_SECRET)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr = SecretStr(DEFAULT_SECRET)
    smtp_sender: str = "qualitywatch@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    external_url: str = "http://127.0.0.1:8000"

    # server
    host: str = "127.0.0.1"
    port: int = 8000
    tick_interval_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _profile_timings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        development = out.get("environment", "development") == "development"
        profile = out.setdefault("profile", "embedded" if development else "production")
        for key, value in PROFILE_DEFAULTS.get(str(profile), {}).items():
            out.setdefault(key, value)
        return out

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # an environment variable set to "" (a compose ${VAR:-}) means "not set"
        return None if value == "" else value

    @model_validator(mode="after")
    def _broker_security(self) -> AlertSettings:
        protocol = self.security_protocol
        if protocol.startswith("SASL_"):
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"QW_SASL_MECHANISM: is required with QW_SECURITY_PROTOCOL={protocol} "
                    "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            mechanism = self.sasl_mechanism
            if not self.sasl_username:
                raise ValueError(f"QW_SASL_USERNAME: is required with QW_SASL_MECHANISM={mechanism}")
            if self.sasl_password is None or not self.sasl_password.get_secret_value():
                raise ValueError(f"QW_SASL_PASSWORD: is required with QW_SASL_MECHANISM={mechanism}")
        else:
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"QW_{name.upper()}: is only used with QW_SECURITY_PROTOCOL=SASL_PLAINTEXT or "
                        f"SASL_SSL, not {protocol}"
                    )
        if self.ssl_cafile is not None:
            if protocol not in ("SSL", "SASL_SSL"):
                raise ValueError(
                    f"QW_SSL_CAFILE: is only used with QW_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}"
                )
            path = Path(self.ssl_cafile)
            if not path.is_file():
                raise ValueError(f"QW_SSL_CAFILE: {path} does not exist or is not a file")
            try:
                ssl.create_default_context(cafile=str(path))
            except OSError as exc:  # ssl.SSLError is one
                raise ValueError(
                    f"QW_SSL_CAFILE: {path} is not a readable PEM file of certificate authorities ({exc})"
                ) from None
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> AlertSettings:
        if self.environment == "development":
            return self
        for name in ("webhook_secret", "smtp_password"):
            secret: SecretStr = getattr(self, name)
            if secret.get_secret_value() == DEFAULT_SECRET:
                raise ValueError(
                    f"QW_{name.upper()}: the default secret is refused in {self.environment!r}; set one"
                )
        return self

    @property
    def topic(self) -> str:
        return f"{self.topic_prefix}{self.warnings_topic}"

    @property
    def cell_weeks(self) -> str:
        return f"{self.topic_prefix}{self.cell_weeks_topic}"

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments of a kafka-python client: the servers and the SASL/TLS settings."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile is not None:
            kw["ssl_cafile"] = self.ssl_cafile
        return kw

    def escalation_timeout(self, level: Level) -> float:
        """Seconds an alert at ``level`` may wait for an acknowledgement."""
        return float(getattr(self, f"escalate_{level.value}_s"))


def load_settings(**overrides: object) -> AlertSettings:
    """Read the settings from the environment (``QW_*``), with explicit overrides on top.

    Settings that cannot be used raise :class:`~alerts.errors.SettingsError`, which names each
    variable and the reason and, unlike pydantic's error, never repeats the values (secrets among them).
    """
    try:
        return AlertSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    reasons = []
    for err in field_errors(exc):
        # a field's own error names the field; the checks across fields name their variables themselves
        reasons.append(f"QW_{err.field.upper()}: {err.reason}" if err.field else err.reason)
    return "invalid settings: " + "; ".join(reasons)
