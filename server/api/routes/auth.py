from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from server.api.deps import EVERYONE, SessionDep, current_user, now
from server.api.schemas import TokenPublic, TokenRequest, UserPublic
from server.auth import authenticate, issue_token
from storage.models import User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenPublic, summary="Log in (no token needed); returns a bearer token")
def login(body: TokenRequest, session: SessionDep, request: Request) -> TokenPublic:
    user = authenticate(session, body.username, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    ttl = timedelta(hours=request.app.state.settings.token_ttl_hours)
    token, expires = issue_token(session, user, now(request), ttl)
    session.commit()
    return TokenPublic(access_token=token, expires_at=expires, role=user.role)


@router.get("/me", response_model=UserPublic, dependencies=[EVERYONE], summary="Who am I. Roles: all")
def me(user: Annotated[User, Depends(current_user)]) -> User:
    return user
