"""Engine, sessions and migrations: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
_M = TypeVar("_M")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class _AlembicPreamble(logging.Filter):
    """Drops the two lines alembic logs on every run, migrating or not ("Context impl …", "Will assume
    … DDL"): a command that opens the database twice (`patrol demo`) printed them twice. Its
    "Running upgrade a -> b" lines, which say what changed, are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_AlembicPreamble())
_reported: set[str] = set()  # databases whose "schema is up to date" this process has said at INFO


def normalise_url(url: str) -> str:
    """Accept the plain `postgresql://` users type and use the psycopg 3 driver we install."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while the gateway writes; busy_timeout waits instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def upsert_insert(session: Session, model: Any) -> Any:
    """An INSERT of `model` that knows ON CONFLICT (DO NOTHING / DO UPDATE), for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def open_database(url: str) -> Engine:
    """An engine on a schema brought up to date: what every `patrol` command starts with."""
    engine = make_engine(url)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; several processes may call it at start."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # several gateways and the API may start at once: one migrates, the others wait for it
            conn.execute(text("SELECT pg_advisory_xact_lock(7270251)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    where = engine.url.render_as_string()  # the password, if any, is masked
    log.log(
        logging.DEBUG if where in _reported else logging.INFO, "database schema is at the newest revision (%s)", where
    )
    _reported.add(where)


def held(session: Session, model: type[_M], ident: int | None) -> _M | None:
    """`session.get` that keeps what it loaded for the session's life: the identity map holds
    objects weakly, so a site or device read by several steps of one batch would otherwise be
    read again from the database by each of them."""
    if ident is None:
        return None
    cache: dict[tuple[type[Any], int], Any] = session.info.setdefault("held", {})
    found = cache.get((model, ident))
    if found is None:
        found = cache[(model, ident)] = session.get(model, ident)
    return found
