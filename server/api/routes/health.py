from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from server.api.deps import CONTROL, SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database reachability (no token needed)")
def healthz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get(
    "/metrics",
    dependencies=[CONTROL],
    response_class=Response,
    summary="Prometheus metrics. Roles: control_room, supervisor, manager, admin",
)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
