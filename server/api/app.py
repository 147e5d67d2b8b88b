"""The FastAPI application: REST under /api/v1, the live feed, /healthz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from core.clock import Clock, SystemClock
from core.config import Settings
from server.api.routes import auth, health, live, quarantine, signins, sites
from server.live import FeedSource, LiveHub
from storage.db import session_factory


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
        source = live_feed(hub) if live_feed else None
        if source:
            source.start()
        try:
            yield
        finally:
            if source:
                source.stop()

    app = FastAPI(
        title="Patrol — 物业巡查与突发事件监控",
        version="0.1.0",
        description="Patrol sign-ins, devices and incidents for property management. "
        "Log in at POST /api/v1/auth/token, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = session_factory(engine)
    app.state.clock = clock or SystemClock()
    app.state.hub = hub
    for module in (health, auth, sites, signins, quarantine, live):
        app.include_router(module.router)
    return app
