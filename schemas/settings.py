"""What the settings of every deployable share: how to reach the Kafka cluster, and how a setting that
cannot be used is told.

* :class:`KafkaSecurity` holds ``QW_SECURITY_PROTOCOL``, ``QW_SASL_MECHANISM``, ``QW_SASL_USERNAME``,
  ``QW_SASL_PASSWORD`` and ``QW_SSL_CAFILE`` with the checks that refuse a combination that cannot work,
  and turns them into a kafka-python client's arguments (:meth:`KafkaSecurity.kafka_python_security`)
  or the TLS context of an asyncio client (:meth:`KafkaSecurity.ssl_context`). The alert service's
  settings and the stream's both inherit it, so every client of every service connects the same way.
* :func:`settings_error` turns pydantic's error into a :class:`SettingsError` of one line that names
  each ``QW_*`` variable and the reason and, unlike pydantic's own, never repeats the values (secrets
  among them).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, SecretStr, ValidationError, field_validator, model_validator

from .errors import QualityWatchError, field_errors

__all__ = ["KafkaSecurity", "SaslMechanism", "SecurityProtocol", "SettingsError", "settings_error"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: the protocols that speak TLS to the brokers
TLS_PROTOCOLS = ("SSL", "SASL_SSL")


class SettingsError(QualityWatchError):
    """Settings that cannot be used: one line naming each ``QW_*`` variable and the reason, no value."""


def settings_error(exc: ValidationError, prefix: str = "QW_") -> SettingsError:
    """``exc`` told as a :class:`SettingsError` (``invalid settings: QW_X: reason; QW_Y: reason``)."""
    reasons = []
    for err in field_errors(exc):
        # a field's own error names the field; the checks across fields name their variables themselves
        reasons.append(f"{prefix}{err.field.upper()}: {err.reason}" if err.field else err.reason)
    return SettingsError("invalid settings: " + "; ".join(reasons))


class KafkaSecurity(BaseModel):
    """How a client reaches the cluster. A SASL protocol needs a mechanism and both credentials; the CA
    file (TLS) must be a readable PEM bundle of certificate authorities. Unset, the system's are trusted."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # an environment variable set to "" (a compose ${VAR:-}) means "not set"
        return None if value == "" else value

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _empty_is_the_default(cls, value: Any) -> Any:
        # the same for the protocol, which is never unset: "" is its default, PLAINTEXT
        return cls.model_fields["security_protocol"].default if value == "" else value

    @model_validator(mode="after")
    def _broker_security(self) -> Self:
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
            if protocol not in TLS_PROTOCOLS:
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

    def kafka_python_security(self) -> dict[str, Any]:
        """The SASL/TLS arguments of a kafka-python client (producer, consumer, admin client)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile is not None:
            kw["ssl_cafile"] = self.ssl_cafile
        return kw

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of an asyncio client (aiokafka, faust), which takes no CA file: it trusts the
        CA file's authorities, else the system's, and checks the brokers' host names, as kafka-python
        does; ``None`` when the protocol is not TLS."""
        if self.security_protocol not in TLS_PROTOCOLS:
            return None
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
