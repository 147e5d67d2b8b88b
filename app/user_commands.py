"""`patrol user …`: create users, set passwords, disable and enable them (each revokes tokens)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from core.config import Settings
from server.auth import Role

T = TypeVar("T")


def _in_transaction(settings: Settings, work: Callable[[Session], T]) -> T | None:
    """`work` in one transaction; None (the error printed) when it refuses with LookupError or ValueError."""
    from storage.db import open_database, session_factory, transaction

    engine = open_database(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return work(session)
    except (LookupError, ValueError) as exc:  # UserExistsError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return None
    finally:
        engine.dispose()


def _read_password(args: argparse.Namespace) -> str | None:
    """From stdin, or asked twice; None (and said why) when the two differ."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        print("error: the two passwords differ: nothing changed", file=sys.stderr)
        return None
    return first


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    from server.auth import create_user

    password = _read_password(args)
    if password is None:
        return 1
    role = Role(args.role)
    created = _in_transaction(
        settings, lambda s: create_user(s, args.username, password, role, args.name, datetime.now(UTC))
    )
    if created is None:
        return 1
    print(f"user {args.username} created with role {args.role}")
    return 0


def cmd_user_passwd(settings: Settings, args: argparse.Namespace) -> int:
    """A new password; the user's tokens are revoked, so every session of theirs must log in again."""
    from server.auth import set_password

    password = _read_password(args)
    if password is None:
        return 1

    def change(session: Session) -> bool:
        set_password(session, args.username, password)
        return True

    if _in_transaction(settings, change) is None:
        return 1
    print(f"password of {args.username} changed; their tokens are revoked")
    return 0


def cmd_user_disable(settings: Settings, args: argparse.Namespace) -> int:
    """Disable (or, with `enable`, allow again) a user; disabling ends their sessions and live feeds."""
    from server.auth import set_active

    active = args.user_command == "enable"
    revoked = _in_transaction(settings, lambda s: set_active(s, args.username, active))
    if revoked is None:
        return 1
    if active:
        print(f"user {args.username} enabled")
    else:
        print(f"user {args.username} disabled; {revoked} token(s) revoked (undo: patrol user enable {args.username})")
    return 0
