"""Users, roles, password hashing and opaque bearer tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

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


_hasher = PasswordHasher()


class UserExistsError(ValueError):
    pass


def create_user(
    session: Session, username: str, password: str, role: Role, display_name: str | None, now: datetime
) -> User:
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserExistsError(f"user {username!r} already exists: pick another name or use `patrol user passwd`")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        role=role.value,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise LookupError(f"no user {username!r}: create it with `patrol user add`")
    user.password_hash = _hasher.hash(password)
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        _hasher.hash(password)  # same work either way, so timing does not reveal which names exist
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, now: datetime, ttl: timedelta) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    session.add(ApiToken(user_id=user.id, token_hash=_digest(token), created_at=now, expires_at=expires))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < now))
    return token, expires


def user_for_token(session: Session, token: str, now: datetime) -> User | None:
    row = session.execute(
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _digest(token), User.active.is_(True))
    ).first()
    if row is None or row.expires_at <= now:
        return None
    return row.User
