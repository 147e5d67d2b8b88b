"""The error answers of every route, written into the OpenAPI document from what the route does.

A route is read, not annotated by hand, so a new route is documented the day it is added:
- it depends on `current_user` (needs a token)          → 401
- a dependency built on `current_user` (a role check)   → 403
- it has a path parameter (`/sites/{site}/…`)           → 404
- it takes a request body: not JSON text (not UTF-8)   → 400; over the limit (server/api/middleware.py) → 413
- any route: a bad parameter or body, an unknown query parameter or a NUL (server/api/strict_params.py) → 422
What cannot be read from the dependencies (a login's 401 and 429) a route declares itself with
`responses=`; every declared error without a body schema gets `ErrorPublic` (`{"detail": "…"}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from server.api.deps import current_user
from server.api.schemas import ErrorPublic

ERROR_SCHEMA = ErrorPublic.__name__
DESCRIPTIONS = {
    400: "The body is not JSON text (send UTF-8 JSON with Content-Type: application/json)",
    401: "No token, or the token is unknown, expired or revoked: log in at POST /api/v1/auth/token",
    403: "The caller's role may not use this endpoint (each summary names the roles)",
    404: "No such resource (the detail says where to find the valid ones)",
    413: "The request body is larger than the API accepts",
    422: "A parameter or the body is not valid (the detail names it and the accepted forms)",
}


def _calls(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _calls(dep)


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call for d in _calls(dependant))


def route_errors(route: APIRoute) -> set[int]:
    """The error statuses `route` can answer, read from its dependencies and parameters."""
    codes: set[int] = set()
    dependant = route.dependant
    if _depends_on(dependant, current_user):
        codes.add(401)
    if any(d.call is not current_user and _depends_on(d, current_user) for d in _calls(dependant)):
        codes.add(403)
    if dependant.path_params:
        codes.add(404)
    if dependant.body_params:
        codes.update((400, 413))
    codes.add(422)
    return codes


def _document(responses: dict[str, Any], codes: set[int], schemas: dict[str, Any]) -> None:
    """Add `codes` to an operation's responses, and to each error its body: FastAPI's
    HTTPValidationError for 422, `{"detail": "…"}` (every HTTPException) for the others."""
    for code in sorted(codes):
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for status, entry in responses.items():
        if not status.isdigit() or int(status) < 400 or "content" in entry:
            continue
        body = "HTTPValidationError" if status == "422" else ERROR_SCHEMA
        if body in schemas:
            entry["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}


def install(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Make `app.openapi()` document the error answers of the routes of `routers` (the routers as
    included: their routes carry the router's prefix and dependencies) and of the app's own."""
    routes = [r for router in (*routers, app.router) for r in router.routes if isinstance(r, APIRoute)]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault(ERROR_SCHEMA, ErrorPublic.model_json_schema())
        for route in routes:
            if not route.include_in_schema:
                continue
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                _document(operation.setdefault("responses", {}), route_errors(route), schemas)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
