"""WebSocket /api/v1/live: every change the control room sees, as JSON objects.

Browsers cannot set headers on a WebSocket, so the token comes as `?token=`. It is checked again
every RECHECK_S of the app's clock, so an expired token, a changed password or a deactivated user ends the stream.
Roles: control_room, supervisor, manager, admin.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, WebSocketException, status
from starlette.concurrency import run_in_threadpool

from core.clock import Clock
from server.api.deps import now
from server.auth import Role, user_for_token
from storage.models import User

router = APIRouter(tags=["live"])
_ALLOWED = {Role.CONTROL_ROOM.value, Role.SUPERVISOR.value, Role.MANAGER.value, Role.ADMIN.value}
RECHECK_S = 30.0
POLL_S = 1.0  # real seconds between looks at the clock while no event comes


def _user(websocket: WebSocket, token: str) -> User | None:
    if not token:
        return None
    with websocket.app.state.sessions() as session:
        return user_for_token(session, token, now(websocket))  # type: ignore[arg-type]


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket, token: str = "", site: str | None = None) -> None:
    user = await run_in_threadpool(_user, websocket, token)
    if user is None:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "log in and pass ?token=<bearer token>")
    if user.role not in _ALLOWED:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, f"role {user.role!r} may not watch the live feed")
    await websocket.accept()
    await websocket.send_json({"type": "hello", "user": user.username})
    clock: Clock = websocket.app.state.clock
    checked = clock.monotonic()
    try:
        async with websocket.app.state.hub.subscribe() as events:
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), timeout=POLL_S)
                except TimeoutError:
                    event = None
                if clock.monotonic() - checked >= RECHECK_S:
                    if await run_in_threadpool(_user, websocket, token) is None:
                        await websocket.close(status.WS_1008_POLICY_VIOLATION, "the token expired: log in again")
                        return
                    checked = clock.monotonic()
                if event is not None and (site is None or event.get("site") == site):
                    await websocket.send_json(event)
    except WebSocketDisconnect:
        return
