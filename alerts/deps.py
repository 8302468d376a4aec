"""FastAPI dependencies shared by the views: the runtime, a session, the caller, the clock, the catalogue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session

from schemas import Catalogue

from .auth.service import Principal, authenticate, require
from .runtime import Runtime

__all__ = [
    "MAX_ID",
    "Cat",
    "Id",
    "Now",
    "Offset",
    "Rt",
    "Sess",
    "caller",
    "get_catalogue",
    "get_runtime",
    "get_session",
    "now",
]

#: the largest id the store holds (ids are INTEGER columns: 32-bit on PostgreSQL)
MAX_ID = 2**31 - 1

#: a row id in a path: anything outside 1..MAX_ID is refused with 422 naming the parameter
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

#: a page offset: no table holds more rows than ids
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    with runtime.session() as session:
        yield session


def now(runtime: Annotated[Runtime, Depends(get_runtime)]) -> datetime:
    return runtime.clock.now()


def get_catalogue(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Catalogue:
    """The reference catalogue the service loaded at start (``QW_CATALOGUE_PATH``)."""
    return runtime.catalogue


Rt = Annotated[Runtime, Depends(get_runtime)]
Sess = Annotated[Session, Depends(get_session)]
Now = Annotated[datetime, Depends(now)]
Cat = Annotated[Catalogue, Depends(get_catalogue)]


def caller(permission: str) -> Callable[..., Principal]:
    """A dependency that authenticates the bearer token and requires ``permission``."""

    def dependency(
        session: Sess,
        authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
        access_token: Annotated[str | None, Query(description="token, for EventSource clients")] = None,
    ) -> Principal:
        header = authorization or (f"Bearer {access_token}" if access_token else None)
        principal = authenticate(session, authorization=header)
        require(principal, permission)
        return principal

    return dependency
