"""The alert service: warnings in; alerts, notifications, escalations and incidents out.

Consumes ``qw.warnings`` (kafka-python), folds each warning into the alert of its fingerprint and
runs it through the pipeline (dedup → inhibit → silence → route → notify), stores everything in
SQL (SQLite or PostgreSQL, Alembic migrations) and serves duty officers and response teams over
HTTP. Imports only ``schemas`` of the project.
"""

from .api import create_app
from .clock import Clock, FakeClock, SystemClock
from .errors import AlertServiceError
from .pipeline import process_warning
from .runtime import Runtime, build_runtime
from .settings import AlertSettings, load_settings

__all__ = [
    "AlertServiceError",
    "AlertSettings",
    "Clock",
    "FakeClock",
    "Runtime",
    "SystemClock",
    "build_runtime",
    "create_app",
    "load_settings",
    "process_warning",
]
