"""Request dependencies: the database session, the caller, and the roles an endpoint admits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.clock import Clock
from server.auth import Role, user_for_token
from storage.models import User

_bearer = HTTPBearer(auto_error=False, description="Token from POST /api/v1/auth/token")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
#: Keyset paging of newest-first lists: `?before_id=` from the previous page, `?limit=`.
#: Bounded to the ids' BIGINT range: a larger number is answered 422, not passed to the database (a 500).
BeforeId = Annotated[int | None, Query(ge=1, le=2**63 - 1, description="next_before_id of the previous page")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def now(request: Request) -> datetime:
    """The app's clock (a fake one in tests): token expiry and every time rule go by it."""
    clock: Clock = request.app.state.clock
    return clock.now()


def current_user(
    session: SessionDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "log in at POST /api/v1/auth/token and send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = user_for_token(session, credentials.credentials, now(request))
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the token is unknown or expired: log in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def bearer_token(
    _user: Annotated[User, Depends(current_user)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's own (already checked) token, for logging out."""
    assert credentials is not None  # current_user refused a request without one
    return credentials.credentials


def require_roles(*roles: Role) -> Callable[..., User]:
    """Admit the listed roles (admin always); the roles are also named in the OpenAPI text."""
    allowed = {r.value for r in roles} | {Role.ADMIN.value}

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not do this; allowed: {', '.join(sorted(allowed))}"
            )
        return user

    return check


ALL_ROLES = tuple(Role)
EVERYONE = Depends(require_roles(*ALL_ROLES))
CONTROL = Depends(require_roles(Role.CONTROL_ROOM, Role.SUPERVISOR, Role.MANAGER))
OPERATORS = Depends(require_roles(Role.CONTROL_ROOM, Role.SUPERVISOR))
