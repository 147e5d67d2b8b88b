"""Test databases: a SQLite file per test, or a fresh PostgreSQL database created and dropped.

`DatabaseTemplates` makes a prepared database (migrated, demo site loaded) once per test run and per backend, and
hands each test its own copy of it: for SQLite a copy of the template file, for PostgreSQL a database cloned with
`CREATE DATABASE … TEMPLATE …`. Nothing is kept between runs, so a run always starts from the migrations on disk."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

PG_ADMIN_URL = os.environ.get("PATROL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SQLITE_FILE = "patrol-test.db"


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _pg_unreachable(exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"cannot create a test database on {PG_ADMIN_URL} ({exc}); start PostgreSQL "
        "(.ci/run does) or set PATROL_TEST_PG_URL"
    )


def _drop_pg(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"patrol_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise _pg_unreachable(exc) from exc
    try:
        yield _pg_url(name)
    finally:
        _drop_pg(admin, name)
        admin.dispose()


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    """An empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / SQLITE_FILE}"
    else:
        with postgres_database() as url:
            yield url


class DatabaseTemplates:
    """One prepared template per backend for the whole run, built on first use; `clone` gives a test its own copy.

    `prepare(url)` brings an empty database to the state every copy starts from; it must close every connection it
    opened (dispose its engines): PostgreSQL refuses to clone a database somebody is connected to, and a SQLite
    template is copied as a plain file. `close()` drops the templates and is safe to call after a failed build."""

    def __init__(self, workdir: Path, prepare: Callable[[str], None]) -> None:
        self._workdir = workdir
        self._prepare = prepare
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._admin: Engine | None = None

    @contextmanager
    def clone(self, kind: str, tmp: Path) -> Iterator[str]:
        """A database of `kind` that is a copy of the template, dropped on exit (a SQLite file stays in `tmp`)."""
        if kind == "sqlite":
            target = tmp / SQLITE_FILE
            shutil.copyfile(self._sqlite_template(), target)
            yield f"sqlite:///{target}"
            return
        template = self._pg_template()
        admin = self._pg_admin()
        name = f"patrol_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        try:
            yield _pg_url(name)
        finally:
            _drop_pg(admin, name)

    def close(self) -> None:
        """Drop every template; run at the end of the session, whether the tests passed or not."""
        if self._sqlite is not None:
            self._sqlite.unlink(missing_ok=True)
            self._sqlite = None
        if self._admin is not None:
            try:
                if self._pg is not None:
                    _drop_pg(self._admin, self._pg)
                    self._pg = None
            finally:
                self._admin.dispose()
                self._admin = None

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            path = self._workdir / f"template-{uuid.uuid4().hex[:8]}.db"
            try:
                self._prepare(f"sqlite:///{path}")
                # Fold the write-ahead log into the file and leave WAL mode, so the file alone is the whole
                # database; each test's engine switches its copy back to WAL when it connects.
                conn = sqlite3.connect(path)
                try:
                    conn.execute("PRAGMA journal_mode=DELETE")
                finally:
                    conn.close()
            except BaseException:
                for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                    leftover.unlink(missing_ok=True)
                raise
            self._sqlite = path
        return self._sqlite

    def _pg_admin(self) -> Engine:
        if self._admin is None:
            self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        return self._admin

    def _pg_template(self) -> str:
        if self._pg is None:
            admin = self._pg_admin()
            name = f"patrol_tpl_{uuid.uuid4().hex[:12]}"
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:
                raise _pg_unreachable(exc) from exc
            try:
                self._prepare(_pg_url(name))
                # Nobody may connect to the template from now on: a connection left open would make every
                # clone fail with "source database is being accessed by other users".
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            except BaseException:
                _drop_pg(admin, name)
                raise
            self._pg = name
        return self._pg
