"""WebSocket /api/v1/live: every change the control room sees, as JSON objects.

The token never travels in the URL (URLs land in access logs): the client connects to
`/api/v1/live` (optionally `?site=<code>`) and sends `{"token": "<bearer token>"}` as its first
message within AUTH_TIMEOUT_S; the server answers `{"type": "hello", "user": …}` and then streams one
JSON object per frame. A client that sends `{"token": …, "batch": true}` (the web UI) gets arrays of
events instead, whatever waited in its queue in one frame: 2,000 events/s to 50 screens is 100,000
frames a second one by one, and a few hundred in arrays; its hello then says `"batch": true`.
A client too slow for the feed loses its oldest events and then gets `{"type": "gap"}` before the next
ones: what it shows may be behind, so it reads its lists again from the REST API.
Authorisation is checked again every RECHECK_S of the app's clock, so an expired token, a logout,
a changed password, a disabled or deleted user or a changed role ends the stream within seconds.
The socket's receive side is watched all along, so a client that leaves is noticed at once, even
when no event matches its filter (and Ctrl-C does not wait for it).

Close codes: 4401 not logged in or the token expired (log in again); 4403 the token was revoked,
the user disabled, or the role may not watch; 1008 the token was put in the URL.
Roles: control_room, supervisor, manager, admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from starlette.concurrency import run_in_threadpool

from core.clock import Clock
from server.auth import Role, TokenCheck, TokenState, check_token

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])
_ALLOWED = {Role.CONTROL_ROOM.value, Role.SUPERVISOR.value, Role.MANAGER.value, Role.ADMIN.value}
AUTH_TIMEOUT_S = 10.0  # real seconds a client has to send its token
RECHECK_S = 5.0  # seconds of the app's clock between authorisation checks
POLL_S = 1.0  # real seconds between looks at the clock while no event comes
CLOSE_EXPIRED = 4401
CLOSE_REVOKED = 4403
MAX_TOKEN = 256
MAX_DRAIN = 200  # deliveries taken from a client's queue at once
MAX_FRAME_EVENTS = 500  # events in one array frame (batch clients)
GAP = '{"type":"gap"}'  # told to a client whose oldest events were dropped (too slow): read the lists again


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str  # at most 123 bytes of UTF-8 (a WebSocket close frame's limit)


NOT_LOGGED_IN = Refusal(CLOSE_EXPIRED, 'send {"token": "…"} first: log in at POST /api/v1/auth/token / 请先登录')
EXPIRED = Refusal(CLOSE_EXPIRED, "the token expired: log in again / 令牌已过期，请重新登录")
REVOKED = Refusal(CLOSE_REVOKED, "the token was revoked or the user disabled / 令牌已撤销或用户已停用")
TOKEN_IN_URL = Refusal(status.WS_1008_POLICY_VIOLATION, 'no token in the URL: send {"token": "…"} as the first message')


def forbidden(role: str) -> Refusal:
    return Refusal(CLOSE_REVOKED, f"role {role!r} may not watch the live feed / 该角色无权查看实时动态")


def judge(check: TokenCheck, now: datetime, known_expiry: datetime | None) -> Refusal | None:
    """None when the token may watch; else why not. `known_expiry` is the expiry seen at an earlier
    check: a token whose row is gone after it expired was pruned (expired), before it was revoked."""
    if check.state is TokenState.EXPIRED:
        return EXPIRED
    if check.state is TokenState.UNKNOWN:
        if known_expiry is None:
            return NOT_LOGGED_IN
        return EXPIRED if now >= known_expiry else REVOKED
    if check.state is TokenState.DISABLED:
        return REVOKED
    assert check.user is not None
    return None if check.user.role in _ALLOWED else forbidden(check.user.role)


def _check(websocket: WebSocket, token: str) -> TokenCheck:
    clock: Clock = websocket.app.state.clock
    with websocket.app.state.sessions() as session:
        return check_token(session, token, clock.now())


@dataclass(frozen=True)
class Hello:
    """The client's first message: its token, and whether it takes events in arrays (`"batch": true`)."""

    token: str
    batch: bool = False


def _hello_of(message: Mapping[str, Any]) -> Hello | None:
    text = message.get("text") or ""
    if len(text) > 4 * MAX_TOKEN:  # a first message is a token, not a document
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    token = body.get("token") if isinstance(body, dict) else None
    if not (isinstance(token, str) and 0 < len(token) <= MAX_TOKEN):
        return None
    return Hello(token, body.get("batch") is True)


async def _until_closed(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends until it goes away or the server shuts down."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


@router.websocket("/api/v1/live")
async def live(websocket: WebSocket, site: str | None = None) -> None:
    await websocket.accept()
    if "token" in websocket.query_params:
        await websocket.close(TOKEN_IN_URL.code, TOKEN_IN_URL.reason)
        return
    try:
        first = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        first = {"type": "websocket.receive"}
    if first["type"] == "websocket.disconnect":
        return
    hello = _hello_of(first)
    check = await run_in_threadpool(_check, websocket, hello.token) if hello else TokenCheck(TokenState.UNKNOWN)
    clock: Clock = websocket.app.state.clock
    refusal = judge(check, clock.now(), None)
    if refusal or hello is None or check.user is None:
        await _close(websocket, refusal or NOT_LOGGED_IN, "refused")
        return
    username = check.user.username
    await websocket.send_json({"type": "hello", "user": username, **({"batch": True} if hello.batch else {})})
    log.info("live feed: %s watching (site %s)", username, site or "all")
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        refusal = await _stream(websocket, hello, site, check.expires_at, closed)
    except (WebSocketDisconnect, OSError, RuntimeError):  # the client went away between our look and our send
        refusal = None
    finally:
        closed.cancel()
    if refusal is not None:
        await _close(websocket, refusal, username)
    else:
        log.info("live feed: %s left", username)


async def _close(websocket: WebSocket, refusal: Refusal, who: str) -> None:
    log.info("live feed: closing %s with %s (%s)", who, refusal.code, refusal.reason)
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # already gone: nothing to tell
        await websocket.close(refusal.code, refusal.reason)


async def _stream(
    websocket: WebSocket, hello: Hello, site: str | None, expires: datetime | None, closed: asyncio.Task[None]
) -> Refusal | None:
    """Forward matching events until the client leaves (None) or its authorisation ends (why). Whatever
    waits in the client's queue goes out together: one frame per event, or arrays for a batch client."""
    clock: Clock = websocket.app.state.clock
    checked = clock.monotonic()
    async with websocket.app.state.hub.subscribe() as queue:
        while not closed.done():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, closed}, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
            deliveries = [getter.result()] if getter in done else []
            if getter not in done:
                getter.cancel()
            if closed.done():
                return None
            if clock.monotonic() - checked >= RECHECK_S:
                check = await run_in_threadpool(_check, websocket, hello.token)
                refusal = judge(check, clock.now(), expires)
                if refusal is not None:
                    return refusal
                checked = clock.monotonic()
            while deliveries and not queue.empty() and len(deliveries) < MAX_DRAIN:
                deliveries.append(queue.get_nowait())
            texts = [t for d in deliveries if site is None or d.site == site for t in d.texts]
            if queue.gap:  # events were dropped for this slow client: it reads the lists again
                queue.gap = False
                texts.insert(0, GAP)
            await _send(websocket, texts, hello.batch)
    return None


async def _send(websocket: WebSocket, texts: list[str], batch: bool) -> None:
    if not batch:
        for text in texts:
            await websocket.send_text(text)
        return
    for start in range(0, len(texts), MAX_FRAME_EVENTS):
        await websocket.send_text("[" + ",".join(texts[start : start + MAX_FRAME_EVENTS]) + "]")
