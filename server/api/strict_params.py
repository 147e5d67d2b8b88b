"""Query and path parameters are checked once for the whole app, before any route runs.

- A query parameter the route does not know is refused (422), not ignored: `?gaurd=G001` or
  `?sinse=2026-11-28` used to return every sign-in as if no filter had been asked for, and a control
  room reading that list would believe it filtered.
- A NUL character in any query or path value is refused (422): PostgreSQL cannot hold one in text,
  so `?site=%00` reached the database and came back as a 500.

Installed as an app dependency (`FastAPI(dependencies=[STRICT_PARAMS])`); it reads each route's own
declared parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection


def _query_names(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        yield param.alias
    for dep in dependant.dependencies:
        yield from _query_names(dep)


_KNOWN: dict[int, frozenset[str]] = {}  # id(route) → its query parameters; routes live as long as the app


def _known(route: APIRoute) -> frozenset[str]:
    """A route's query parameters, walked once per route rather than on every request."""
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = frozenset(_query_names(route.dependant))
    return known


def _error(kind: str, where: str, name: str, msg: str, value: str) -> dict[str, Any]:
    return {"type": kind, "loc": (where, name), "msg": msg, "input": value}


def check_params(request: HTTPConnection) -> None:
    """HTTPConnection, not Request: app dependencies also run for the WebSocket route (left alone)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    errors = [
        _error("string_pattern_mismatch", where, name, f"{name!r} contains a NUL character (\\x00)", value)
        for where, items in (("path", request.path_params.items()), ("query", request.query_params.multi_items()))
        for name, value in items
        if "\x00" in str(value) or "\x00" in name
    ]
    if request.query_params:
        known = _known(route)
        accepted = ", ".join(sorted(known)) or "none"
        errors += [
            _error(
                "extra_forbidden",
                "query",
                name,
                f"unknown query parameter {name!r}: this endpoint accepts {accepted}",
                value,
            )
            for name, value in request.query_params.multi_items()
            if name not in known
        ]
    if errors:
        raise RequestValidationError(errors)


STRICT_PARAMS = Depends(check_params)
