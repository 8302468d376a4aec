"""Property-based run of the ingest API against its own OpenAPI schema: no input gives a 5xx.

Schemathesis generates bodies, query strings and uploads from the schema (with and without a valid
token) and calls the ASGI app in process; a bounded number of examples keeps it under a minute.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from sqlalchemy.pool import StaticPool

from stream.ingest import Principal, create_ingest_router, open_store, static_verifier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_sessions = open_store("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
_app = FastAPI(title="ingest")
_app.include_router(
    create_ingest_router(
        session_factory=_sessions,
        verify=static_verifier(
            {"t-admin": Principal("root", "admin"), "t-akto": Principal("a", "inspector", "653022")}
        ),
        max_batch_rows=200,
        max_upload_bytes=64 * 1024,
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: object, value: object) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("token", ["t-akto", None])
def test_no_server_errors(case: schemathesis.Case, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
    )
    if token is None:
        assert response.status_code >= 400, response.text[:300]  # nothing is accepted without a token
