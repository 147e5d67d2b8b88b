"""Alembic environment: runs on the connection handed over by `storage.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage.db import normalise_url
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = normalise_url(config.get_main_option("sqlalchemy.url") or "")
        with create_engine(url).begin() as conn:
            _run_on(conn)
    else:
        _run_on(connection)


def _run_on(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
