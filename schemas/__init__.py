"""The vocabulary of QualityWatch: records, warnings, the reference catalogue and JSON Schema export.

Imports nothing else of the project; every other package imports from here.
"""

from .catalogue import Catalogue, CatalogueError, default_catalogue, load_catalogue, normalise_text
from .errors import FieldError, QualityWatchError, RecordError, field_errors
from .jsonschema import export_json_schemas
from .records import (
    PatrolAction,
    PatrolReport,
    SamplingResult,
    SamplingSource,
    Severity,
    TestItem,
    validation_context,
)
from .risk import Evidence, Level, RiskWarning, Scope, WarningKind, WarningStatus, fingerprint_of, warning_id
from .uscc import uscc_check_char, uscc_problem
from .weeks import WEEK, week_end, week_start

__all__ = [
    "WEEK",
    "Catalogue",
    "CatalogueError",
    "Evidence",
    "FieldError",
    "Level",
    "PatrolAction",
    "PatrolReport",
    "QualityWatchError",
    "RecordError",
    "RiskWarning",
    "SamplingResult",
    "SamplingSource",
    "Scope",
    "Severity",
    "TestItem",
    "WarningKind",
    "WarningStatus",
    "default_catalogue",
    "export_json_schemas",
    "field_errors",
    "fingerprint_of",
    "load_catalogue",
    "normalise_text",
    "uscc_check_char",
    "uscc_problem",
    "validation_context",
    "warning_id",
    "week_end",
    "week_start",
]
