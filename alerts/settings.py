"""The alert service's one typed, frozen settings object (environment prefix ``QW_``).

Read once where the service starts (``load_settings()``) and passed down; nothing in ``alerts/`` reads
the environment anywhere else. Secrets are ``SecretStr`` and the default ones are refused outside
development, so a production deployment cannot run with a published secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import Level

__all__ = ["DEFAULT_SECRET", "AlertSettings", "load_settings"]

#: the development default of every secret; refused when ``environment`` is not ``development``
DEFAULT_SECRET = "changethis"


class AlertSettings(BaseSettings):
    """Everything the alert service can be told, with development defaults."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///qualitywatch-alerts.db"

    # consumer (kafka-python)
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    warnings_topic: str = "qw.warnings"
    consumer_group: str = "qw-alerts"
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    fetch_max_wait_ms: int = Field(default=500, ge=0)
    consume: bool = True

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

    def escalation_timeout(self, level: Level) -> float:
        """Seconds an alert at ``level`` may wait for an acknowledgement."""
        return float(getattr(self, f"escalate_{level.value}_s"))


def load_settings(**overrides: object) -> AlertSettings:
    """Read the settings from the environment (``QW_*``), with explicit overrides on top."""
    return AlertSettings(**overrides)  # type: ignore[arg-type]
