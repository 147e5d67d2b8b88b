"""`patrol user …`: create users, set passwords, disable and enable them (each revokes tokens)."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from core.config import Settings
from server.auth import Role


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    from server.auth import UserExistsError, create_user
    from storage.db import open_database, session_factory, transaction

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    engine = open_database(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            create_user(session, args.username, password, Role(args.role), args.name, datetime.now(UTC))
    except (UserExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username} created with role {args.role}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ: nothing changed")
    return first


def cmd_user_passwd(settings: Settings, args: argparse.Namespace) -> int:
    """A new password; the user's tokens are revoked, so every session of theirs must log in again."""
    from server.auth import set_password
    from storage.db import open_database, session_factory, transaction

    try:
        password = _read_password(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    engine = open_database(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            set_password(session, args.username, password)
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"password of {args.username} changed; their tokens are revoked")
    return 0


def cmd_user_disable(settings: Settings, args: argparse.Namespace) -> int:
    """Disable (or, with `enable`, allow again) a user; disabling ends their sessions and live feeds."""
    from server.auth import set_active
    from storage.db import open_database, session_factory, transaction

    active = args.user_command == "enable"
    engine = open_database(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            revoked = set_active(session, args.username, active)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if active:
        print(f"user {args.username} enabled")
    else:
        print(f"user {args.username} disabled; {revoked} token(s) revoked (undo: patrol user enable {args.username})")
    return 0
