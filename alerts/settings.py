"""The alert service's one typed, frozen settings object (environment prefix ``QW_``).

Read once where the service starts (``load_settings()``) and passed down; nothing in ``alerts/`` reads
the environment anywhere else. Secrets are ``SecretStr`` and the default ones are refused outside
development, so a production deployment cannot run with a published secret.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import CatalogueError, Level, load_catalogue
from schemas.settings import KafkaSecurity, settings_error

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


class AlertSettings(KafkaSecurity, BaseSettings):
    """Everything the alert service can be told, with development defaults."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///qualitywatch-alerts.db"
    #: another prefecture's reference catalogue (YAML), the same QW_CATALOGUE_PATH as the stream worker's
    #: and ingest's; unset, the packaged Kizilsu catalogue. Loaded at start (a file that cannot be used
    #: is refused then) and kept on the runtime.
    catalogue_path: str | None = None

    # consumer (kafka-python); ``profile`` (``QW_PROFILE``, as the stream worker's) picks the timings
    # of PROFILE_DEFAULTS; unset, it is ``embedded`` in development and ``production`` otherwise
    profile: Literal["embedded", "production"] = "embedded"
    bootstrap_servers: str = "127.0.0.1:9092"
    # how to reach the cluster (QW_SECURITY_PROTOCOL, QW_SASL_*, QW_SSL_CAFILE) comes with KafkaSecurity:
    # the same variables and checks as the stream's
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

    @field_validator("catalogue_path")
    @classmethod
    def _catalogue_loads(cls, value: str | None) -> str | None:
        if not value:  # set to nothing: the packaged catalogue
            return None
        try:
            load_catalogue(value)
        except CatalogueError as exc:  # one line: a YAML error spans several
            raise ValueError(" ".join(str(exc).split())) from None
        return value

    @property
    def topic(self) -> str:
        return f"{self.topic_prefix}{self.warnings_topic}"

    @property
    def cell_weeks(self) -> str:
        return f"{self.topic_prefix}{self.cell_weeks_topic}"

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments of a kafka-python client: the servers and the SASL/TLS settings."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.kafka_python_security()}

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
        raise SettingsError(str(settings_error(exc))) from None
