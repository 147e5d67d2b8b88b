"""Item 11: `patrol user passwd`, `patrol user disable` / `enable`, and the tokens they revoke."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from app import cli
from core.config import get_settings
from server.auth import Role, authenticate, issue_token, user_for_token
from storage.db import session_factory, transaction
from tests.support.api import PASSWORD, add_user

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a brand new passphrase"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def patrol(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """`patrol …` in this process on the test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("PATROL_DATABASE_URL", db_url)
    get_settings.cache_clear()

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    get_settings.cache_clear()


def _token(engine: Engine, username: str) -> str:
    with transaction(session_factory(engine)) as session:
        user = authenticate(session, username, PASSWORD)
        assert user is not None
        return issue_token(session, user, datetime.now(UTC), timedelta(hours=1))[0]


def _token_works(engine: Engine, token: str) -> bool:
    with session_factory(engine)() as session:
        return user_for_token(session, token, datetime.now(UTC)) is not None


def _can_log_in(engine: Engine, username: str, password: str) -> bool:
    with session_factory(engine)() as session:
        return authenticate(session, username, password) is not None


def test_passwd_sets_a_new_password_and_revokes_tokens(engine: Engine, patrol: Run) -> None:
    add_user(engine, "wang", Role.CONTROL_ROOM)
    token = _token(engine, "wang")
    code, out, _ = patrol("user", "passwd", "wang", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert code == 0 and "revoked" in out
    assert _can_log_in(engine, "wang", NEW_PASSWORD) and not _can_log_in(engine, "wang", PASSWORD)
    assert not _token_works(engine, token)


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [("nobody", NEW_PASSWORD, "patrol user add"), ("wang", "short", "at least 8 characters")],
)
def test_passwd_says_what_is_wrong(engine: Engine, patrol: Run, user: str, password: str, message: str) -> None:
    add_user(engine, "wang", Role.CONTROL_ROOM)
    code, _, err = patrol("user", "passwd", user, "--password-stdin", stdin=password + "\n")
    assert code == 1 and message in err
    assert _can_log_in(engine, "wang", PASSWORD)


def test_disable_refuses_logins_and_revokes_tokens_until_enabled(engine: Engine, patrol: Run) -> None:
    add_user(engine, "li", Role.SUPERVISOR)
    token = _token(engine, "li")
    code, out, _ = patrol("user", "disable", "li")
    assert code == 0 and "1 token(s) revoked" in out and "patrol user enable li" in out
    assert not _token_works(engine, token) and not _can_log_in(engine, "li", PASSWORD)
    assert patrol("user", "enable", "li")[0] == 0
    assert _can_log_in(engine, "li", PASSWORD)
    assert patrol("user", "disable", "nobody")[0] == 1
