"""Ingest behind the front door, authenticated by the alert service's hashed token store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas import default_catalogue, uscc_check_char
from stream.ingest import IngestSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _record(n: int, region: str) -> dict[str, Any]:
    first = f"91653001MA7D{n:05d}"[:17]
    return {
        "id": f"T-{n}",
        "sampled_at": NOW.isoformat(),
        "region": region,
        "industry": "textiles",
        "product": "felt",
        "enterprise_id": first + uscc_check_char(first),
        "passed": True,
        "inspector_id": "insp-1",
    }


def test_tokens_from_the_alert_service_store(tmp_path: Path) -> None:
    from alerts.auth.service import create_token, revoke_token
    from alerts.db import make_engine, make_session_factory, migrate
    from qualitywatch.server import alert_token_verifier, create_app

    engine = make_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    migrate(engine)
    tokens = make_session_factory(engine)
    with tokens() as s:
        cat = default_catalogue()
        _, akto = create_token(
            s, name="akto-inspector", role="inspector", county="653022", now=NOW, catalogue=cat
        )
        _, anywhere = create_token(s, name="inspector", role="inspector", county=None, now=NOW, catalogue=cat)
        duty_row, duty = create_token(
            s, name="duty", role="duty_officer", county=None, now=NOW, catalogue=cat
        )
        s.commit()
    app = create_app(
        settings=IngestSettings(database_url=f"sqlite:///{tmp_path / 'ingest.db'}"),
        verify=alert_token_verifier(tokens),
        relay=False,
    )
    with TestClient(app) as client:

        def post(token: str | None, n: int, region: str) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return client.post("/api/v1/sampling-results", json=_record(n, region), headers=headers)

        assert post(akto, 1, "653022").status_code == 201
        r = post(akto, 2, "653024")
        assert r.status_code == 403 and "653024 (乌恰县)" in r.json()["detail"]["message"]
        assert post(anywhere, 3, "653024").status_code == 201
        assert post(duty, 4, "653022").status_code == 403
        assert post(None, 5, "653022").status_code == 401
        assert post("not-a-token", 6, "653022").status_code == 401
        with tokens() as s:
            revoke_token(s, token_id=duty_row.id, now=NOW, actor="admin")
            s.commit()
        assert post(duty, 7, "653022").status_code == 401
        assert client.get("/docs").status_code == 200
