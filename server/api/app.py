"""The FastAPI application: REST under /api/v1, the live feed, /healthz and /metrics, the docs.

Around every request: a 64 KiB body limit and the security headers (server/api/middleware.py);
the OpenAPI document lists each route's error answers (server/api/openapi_errors.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from core.clock import Clock, SystemClock
from core.config import Settings
from server.api import openapi_errors
from server.api.docs import mount_docs
from server.api.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from server.api.routes import (
    alarms,
    auth,
    findings,
    health,
    live,
    notifications,
    patrol,
    procedures,
    quarantine,
    reports,
    rounds,
    sensors,
    signins,
    sites,
    tickets,
)
from server.api.strict_params import STRICT_PARAMS
from server.api.ui import mount_ui, ui_dir
from server.live import FeedSource, LiveHub
from storage.db import session_factory
from storage.incident_notes import IncidentEnv
from storage.procedures.load import load_procedures


def method_not_allowed(routers: Sequence[APIRouter]) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """405 naming every method of the path: Starlette names only those of the first route matching
    it, and GET and POST of one path (/api/v1/tickets) are two routes."""
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        here = [r for r in routes if r.path_regex.match(request.url.path)]
        methods = ", ".join(sorted({m for r in here for m in r.methods or ()}))
        allow = methods or (exc.headers or {}).get("Allow", "")  # the app's own routes (docs): Starlette's
        return JSONResponse({"detail": exc.detail}, status_code=405, headers={"Allow": allow})

    return answer


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock | None = None,
    live_feed: Callable[[LiveHub], FeedSource] | None = None,
) -> FastAPI:
    """`live_feed` builds what feeds the live hub (the application wires the broker's out/
    topics in); without it the WebSocket serves no events."""
    hub = LiveHub()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        _app.state.hash_pool = auth.new_hash_pool(settings)  # each run of the app its own; shut down below
        source = live_feed(hub) if live_feed else None
        if source:
            source.start()
        try:
            yield
        finally:
            if source:
                source.stop()
            _app.state.hash_pool.shutdown()

    app = FastAPI(
        title="Patrol — 物业巡查与突发事件监控",
        version="0.1.0",
        description="Patrol sign-ins, devices and incidents for property management. "
        "Log in at POST /api/v1/auth/token, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by mount_docs, not from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        dependencies=[STRICT_PARAMS],  # a misspelt filter or a NUL is a 422, not an unfiltered list or a 500
    )
    app.state.settings = settings
    app.state.sessions = session_factory(engine)
    app.state.clock = clock or SystemClock()
    app.state.hub = hub
    app.state.incidents = IncidentEnv(load_procedures(settings.procedures_dir), tuple(settings.webhook_targets))
    auth.install_login_limits(app.state, settings)
    tickets.install_errors(app)  # a refused ticket/alarm rule: 409 or 422 with its code and problems
    modules = (
        *(health, auth, sites, signins, quarantine, live, alarms, tickets, sensors, procedures, notifications),
        *(patrol, rounds, findings, reports),
    )
    routers = [module.router for module in modules]
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(405, method_not_allowed(routers))
    mount_docs(app)
    mount_ui(app, ui_dir(settings.ui_dir))
    openapi_errors.install(app, routers)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, so a 413 carries the headers too
    return app
