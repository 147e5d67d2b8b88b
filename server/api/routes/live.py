"""WebSocket /api/v1/live: every change the control room sees, as JSON objects.

Browsers cannot set headers on a WebSocket, so the token comes as `?token=`.
Roles: control_room, supervisor, manager, admin.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, WebSocketException, status

from server.api.deps import now
from server.auth import Role, user_for_token

router = APIRouter(tags=["live"])
_ALLOWED = {Role.CONTROL_ROOM.value, Role.SUPERVISOR.value, Role.MANAGER.value, Role.ADMIN.value}


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket, token: str = "", site: str | None = None) -> None:
    with websocket.app.state.sessions() as session:
        user = user_for_token(session, token, now(websocket)) if token else None  # type: ignore[arg-type]
    if user is None:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "log in and pass ?token=<bearer token>")
    if user.role not in _ALLOWED:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, f"role {user.role!r} may not watch the live feed")
    await websocket.accept()
    await websocket.send_json({"type": "hello", "user": user.username})
    try:
        async with websocket.app.state.hub.subscribe() as events:
            while True:
                event = await events.get()
                if site is None or event.get("site") == site:
                    await websocket.send_json(event)
    except WebSocketDisconnect:
        return
