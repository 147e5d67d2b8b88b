"""Log in, log out, who am I.

The login is async: the database look-ups run in the request threadpool and the password check in
the bounded hash pool, so a flood of logins holds no thread while it waits and cannot starve
/healthz, the other routes or the gateway in the same process. Before any hashing, the login guard
refuses a locked user name or client address with 429 and `Retry-After` (server/login_guard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from core.config import Settings
from server.api.deps import EVERYONE, bearer_token, current_user, now
from server.api.schemas import TokenPublic, TokenRequest, UserPublic
from server.auth import find_login, hash_password, issue_token, needs_rehash, revoke_token, verify_password
from server.hash_pool import HashPool, PoolBusy
from server.login_guard import Limits, LoginGuard
from storage.models import User

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_LIMITED = {
    "description": "Too many failed logins for this user name or address, or too many logins being checked at this "
    "moment: wait `Retry-After` seconds"
}


def install_login_limits(state: Any, s: Settings) -> None:
    """The app's login guard and hash pool (one each per app), from its settings."""
    state.login_guard = LoginGuard(
        Limits(lock_after=s.login_lockout_after_user_failures),
        Limits(lock_after=s.login_lockout_after_address_failures),
    )
    state.hash_pool = new_hash_pool(s)


def new_hash_pool(s: Settings) -> HashPool:
    return HashPool(s.login_hash_workers, s.login_hash_queue, s.login_hashes_per_second)


def login_limits(request: Request) -> tuple[LoginGuard, HashPool]:
    return request.app.state.login_guard, request.app.state.hash_pool


def _too_many(seconds: int) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many failed logins: try again in {seconds} s (登录失败次数过多，请 {seconds} 秒后再试)",
        headers={"Retry-After": str(seconds)},
    )


def _lookup(request: Request, username: str) -> tuple[int, str] | None:
    with request.app.state.sessions() as session:
        found = find_login(session, username)
    return (found.user_id, found.password_hash) if found else None


def _issue(request: Request, user_id: int, new_hash: str | None) -> TokenPublic:
    ttl = timedelta(hours=request.app.state.settings.token_ttl_hours)
    with request.app.state.sessions() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:  # disabled or deleted while its password was being checked
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
        if new_hash:
            user.password_hash = new_hash
        token, expires = issue_token(session, user, now(request), ttl)
        session.commit()
        return TokenPublic(access_token=token, expires_at=expires, role=user.role)


@router.post(
    "/token",
    response_model=TokenPublic,
    summary="Log in (no token needed); returns a bearer token",
    responses={401: {"description": "Wrong user name or password"}, 429: _LIMITED},
)
async def login(body: TokenRequest, request: Request) -> TokenPublic:
    try:
        return await _attempt(body, request)
    except HTTPException as exc:
        # A refusal is decided at once (nothing is queued for it) but answered a little later, so a
        # client that ignores Retry-After cannot turn refusals into a flood of cheap requests that
        # takes the interpreter from the gateway running in the same process.
        delay_ms = request.app.state.settings.login_refusal_delay_ms
        if exc.status_code in (401, 429) and delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        raise


async def _attempt(body: TokenRequest, request: Request) -> TokenPublic:
    guard, pool = login_limits(request)
    address = request.client.host if request.client else "unknown"
    clock = request.app.state.clock
    wait = guard.retry_after(body.username, address, clock.monotonic())
    if wait:
        raise _too_many(wait)
    try:
        if pool.busy:  # refuse before the database look-up: under a flood every saved step counts
            raise PoolBusy("too many logins are being checked right now: try again in a second")
        found = await run_in_threadpool(_lookup, request, body.username)
        ok = await pool.run(verify_password, found[1] if found else None, body.password)
    except PoolBusy as exc:  # 429, not 503: the server is fine, the clients ask too much at once
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, f"{exc!s} (登录请求过多，请稍后再试)", headers={"Retry-After": "1"}
        ) from exc
    new_hash = None
    if ok and found and needs_rehash(found[1]):
        with contextlib.suppress(PoolBusy):  # a busy pool only puts the upgrade off to the next login
            new_hash = await pool.run(hash_password, body.password)
    if not ok or found is None:
        lockout = guard.failed(body.username, address, clock.monotonic())
        if lockout:  # one line per lockout, not per guess: a flood must not flood the log too
            log.warning("failed logins: %r from %s locked out for %s s", body.username[:64], address, lockout)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    guard.succeeded(body.username)
    return await run_in_threadpool(_issue, request, found[0], new_hash)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[EVERYONE],
    summary="Revoke the token this request carries (other sessions stay logged in). Roles: all",
)
def logout(request: Request, token: Annotated[str, Depends(bearer_token)]) -> Response:
    with request.app.state.sessions() as session:
        revoke_token(session, token)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserPublic, dependencies=[EVERYONE], summary="Who am I. Roles: all")
def me(user: Annotated[User, Depends(current_user)]) -> User:
    return user
