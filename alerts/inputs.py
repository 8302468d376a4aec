"""Input rules no single view can state: text holds no NUL characters; a warning fits the store.

PostgreSQL refuses U+0000 in text, so a NUL anywhere in a path, a query parameter or a JSON body would
otherwise surface as a database error. :class:`RefuseNulText` answers such a request 422 with the
parameter or body field that held it, in the service's error shape, before any view runs.

A warning comes from the HTTP API or straight off the topic; :func:`check_storable` refuses one whose
identifiers are longer than their columns, whose text holds a NUL or whose times fall outside the
years 1..9999 once in UTC, naming the field, so neither path meets a database error (on the topic,
one such record would otherwise fail its whole batch).

A county or an industry that a token, a silence or a route is given must be one the catalogue knows:
:func:`check_catalogue` refuses any other (422 naming ``county`` or ``industry``), since a typo would
store a token whose holder sees nothing, or a silence or route that never matches.

Times are stored in UTC, so ``9999-12-31T23:59:59-12:00`` (or ``0001-01-01T00:00:00+14:00``) is a
valid ISO 8601 time that no store can hold: :data:`UtcDatetime` is the aware datetime the views take
in bodies and query parameters, refusing such a value (422 naming the field) instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas import Catalogue, RiskWarning

from .alert.models import Alert, ReceivedWarning
from .errors import InvalidInput

__all__ = ["RefuseNulText", "UtcDatetime", "check_catalogue", "check_storable", "in_utc_range", "nul_field"]

NUL = "\x00"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def nul_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first key or string in a parsed JSON value that holds a NUL, if any."""
    if isinstance(value, str):
        return ".".join(path) if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                return ".".join((*path, key))
            found = nul_field(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_field(item, (*path, str(i)))
            if found is not None:
                return found
    return None


def in_utc_range(value: datetime) -> datetime:
    """``value`` unchanged if it has a UTC equivalent (years 1..9999), else :class:`ValueError` saying so."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years 1..9999 once converted to UTC") from None
    return value


#: a timezone-aware datetime that converts to UTC (what the store keeps); 422 naming the field otherwise
UtcDatetime = Annotated[AwareDatetime, AfterValidator(in_utc_range)]

#: a warning's times
_TIMES = ("raised_at", "window_start", "window_end")

#: a warning's text fields and the columns that hold them
_COLUMNS = {
    "id": ReceivedWarning.__table__.c.id,
    "fingerprint": Alert.__table__.c.fingerprint,
    "detector": Alert.__table__.c.detector,
    "scope.region": Alert.__table__.c.region,
    "scope.industry": Alert.__table__.c.industry,
    "scope.item": Alert.__table__.c.item,
    "scope.enterprise_id": Alert.__table__.c.enterprise_id,
}


def check_storable(warning: RiskWarning) -> None:
    """Refuse (:class:`InvalidInput`, naming the field) a warning the store cannot hold as it is."""
    data = warning.model_dump(mode="json")
    for name, column in _COLUMNS.items():
        value: Any = data
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        width = getattr(column.type, "length", None)
        if isinstance(value, str) and width is not None and len(value) > width:
            raise InvalidInput(f"at most {width} characters, got {len(value)}", field=name)
    for name in _TIMES:
        try:
            in_utc_range(getattr(warning, name))
        except ValueError as exc:
            raise InvalidInput(str(exc), field=name) from None
    field = nul_field(data)
    if field is not None:
        raise InvalidInput("must not contain NUL characters (U+0000)", field=field or "warning")


def check_catalogue(
    catalogue: Catalogue,
    *,
    county: str | None = None,
    industry: str | None = None,
    fields: tuple[str, str] = ("county", "industry"),
) -> None:
    """Refuse a county (GB/T 2260 code) or an industry slug ``catalogue`` does not know, naming the field
    (``fields``: the county's, the industry's) and the known ones; ``None`` (any county, any industry)
    is always taken."""
    if county is not None and catalogue.region(county) is None:
        raise InvalidInput(
            f"'{county}' is not a county code of the {catalogue.prefecture_code} catalogue "
            f"(known: {', '.join(catalogue.region_codes)})",
            field=fields[0],
        )
    if industry is not None and catalogue.industry(industry) is None:
        known = ", ".join(catalogue.industry_slugs)
        raise InvalidInput(
            f"'{industry}' is not an industry of the catalogue (known: {known})", field=fields[1]
        )


class RefuseNulText:
    """ASGI middleware: 422 for a NUL in the path, a query parameter or a JSON body (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = _in_path_or_query(scope)
        if field is None and scope["method"] in _BODY_METHODS and _is_json(scope):
            body, receive = await _buffer(receive)
            try:
                field = nul_field(json.loads(body)) if body else None
            except ValueError:  # not JSON: the view's validation answers it
                field = None
            if field == "":
                field = "body"
        if field is None:
            await self.app(scope, receive, send)
            return
        error = InvalidInput("must not contain NUL characters (U+0000)", field=field)
        await JSONResponse(status_code=422, content=error.body())(scope, receive, send)


def _in_path_or_query(scope: Scope) -> str | None:
    if NUL in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if NUL in key or NUL in value:
            return f"query.{key}" if key else "query"
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body; return it and a ``receive`` that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
