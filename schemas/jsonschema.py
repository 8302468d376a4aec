"""JSON Schema export of the wire contract (``qualitywatch schemas export DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from .records import PatrolReport, SamplingResult
from .risk import RiskWarning

__all__ = ["EXPORTED", "export_json_schemas"]

EXPORTED: dict[str, type[BaseModel]] = {
    "sampling-result": SamplingResult,
    "patrol-report": PatrolReport,
    "risk-warning": RiskWarning,
}


def export_json_schemas(directory: str | Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per record type into ``directory``; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:qualitywatch:{name}"
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
