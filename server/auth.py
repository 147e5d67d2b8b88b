"""Users, roles, password hashing and opaque bearer tokens (only their SHA-256 is stored).

A token is revoked by deleting its row: logging out revokes that token; changing a user's
password or disabling the user revokes all of theirs. Password checks are CPU and memory heavy on
purpose, so the HTTP edge runs `verify_password` in its bounded pool (server/hash_pool.py), never
on the event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import ApiToken, User


class Role(StrEnum):
    GUARD = "guard"
    CONTROL_ROOM = "control_room"
    ENGINEER = "engineer"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"
    ADMIN = "admin"


#: argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane): each hash costs a bounded 19 MiB, so the
#: hash pool's size bounds the memory logins can take. Hashes made with other parameters still verify
#: and are upgraded at the next successful login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MIN_PASSWORD = 8


class UserExistsError(ValueError):
    pass


@dataclass(frozen=True)
class LoginCandidate:
    """What a login needs from the database before the (slow) password check."""

    user_id: int
    password_hash: str


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    #: the token's row is gone (logout, password change, user disabled or deleted) or never existed
    UNKNOWN = "unknown"
    #: the token exists but its user is disabled
    DISABLED = "disabled"


@dataclass(frozen=True)
class TokenCheck:
    state: TokenState
    user: User | None = None
    expires_at: datetime | None = None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches. With no hash (unknown user) the same work is done against a
    dummy, so timing does not reveal which names exist."""
    try:
        _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def create_user(
    session: Session, username: str, password: str, role: Role, display_name: str | None, now: datetime
) -> User:
    _check_password(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserExistsError(f"user {username!r} already exists: pick another name or use `patrol user passwd`")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role.value,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise LookupError(f"no user {username!r}: create it with `patrol user add`")
    return user


def set_password(session: Session, username: str, password: str) -> None:
    """A new password; every token of the user is revoked (sessions elsewhere must log in again)."""
    _check_password(password)
    user = _user(session, username)
    user.password_hash = hash_password(password)
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))


def set_active(session: Session, username: str, active: bool) -> int:
    """Disable (or enable again) a user; disabling revokes every token. Returns tokens revoked."""
    user = _user(session, username)
    user.active = active
    if active:
        return 0
    result = session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    return int(getattr(result, "rowcount", 0) or 0)


def find_login(session: Session, username: str) -> LoginCandidate | None:
    """The active user of this name and its hash, or None."""
    row = session.execute(
        select(User.id, User.password_hash).where(User.username == username, User.active.is_(True))
    ).first()
    return LoginCandidate(row.id, row.password_hash) if row else None


def needs_rehash(password_hash: str) -> bool:
    """True for a hash made with older argon2 parameters: the next successful login upgrades it."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Synchronous check for the command line and tests (the API uses find_login + its pool)."""
    candidate = find_login(session, username)
    if not verify_password(candidate.password_hash if candidate else None, password) or candidate is None:
        return None
    return session.get(User, candidate.user_id)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, now: datetime, ttl: timedelta) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    session.add(ApiToken(user_id=user.id, token_hash=_digest(token), created_at=now, expires_at=expires))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < now))
    return token, expires


def revoke_token(session: Session, token: str) -> bool:
    """Log out: this token stops working at once (other tokens of the user are untouched)."""
    result = session.execute(delete(ApiToken).where(ApiToken.token_hash == _digest(token)))
    return bool(getattr(result, "rowcount", 0))


def check_token(session: Session, token: str, now: datetime) -> TokenCheck:
    """Why a token is or is not good, so the live feed can tell "expired" from "revoked"."""
    row = session.execute(
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _digest(token))
    ).first()
    if row is None:
        return TokenCheck(TokenState.UNKNOWN)
    if not row.User.active:
        return TokenCheck(TokenState.DISABLED, row.User, row.expires_at)
    if row.expires_at <= now:
        return TokenCheck(TokenState.EXPIRED, row.User, row.expires_at)
    return TokenCheck(TokenState.VALID, row.User, row.expires_at)


def user_for_token(session: Session, token: str, now: datetime) -> User | None:
    check = check_token(session, token, now)
    return check.user if check.state is TokenState.VALID else None
