"""The two hot inserts of the ingestion path, per dialect.

On PostgreSQL one `INSERT … SELECT FROM unnest(arrays)` per batch: a short statement psycopg
parses once, whatever the batch size (a multi-VALUES statement of 500 rows cost more time in
query conversion than in the database). SQLite takes SQLAlchemy Core's executemany.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from storage.models import InboundMessage, SignIn

MESSAGE_COLUMNS = ("site_id", "device_id", "msg_id", "kind", "device_ts", "received_at", "payload", "clock_skew_s")
SIGNIN_COLUMNS = (
    "message_id", "site_id", "device_id", "guard_id", "location_id", "tag_uid", "tapped_at", "received_at", "ok",
    "reason", "round_id", "result", "next_location_id",
)  # fmt: skip
_PG_TYPES = {
    "site_id": "int", "device_id": "int", "msg_id": "text", "kind": "text", "device_ts": "timestamptz",
    "received_at": "timestamptz", "payload": "text", "clock_skew_s": "int", "message_id": "bigint", "guard_id": "int",
    "location_id": "int", "tag_uid": "text", "tapped_at": "timestamptz", "ok": "bool", "reason": "text",
    "round_id": "bigint", "result": "text", "next_location_id": "int",
}  # fmt: skip


def _pg_unnest_insert(table: str, columns: tuple[str, ...], suffix: str = "") -> str:
    arrays = ", ".join(f"%({c})b::{_PG_TYPES[c]}[]" for c in columns)  # %b: binary, dumped in C
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {suffix}"


_PG_MESSAGES = _pg_unnest_insert(
    "inbound_messages", MESSAGE_COLUMNS,
    "ON CONFLICT (device_id, msg_id) DO NOTHING RETURNING id, device_id, msg_id",
)  # fmt: skip
_PG_SIGNINS = _pg_unnest_insert("signins", SIGNIN_COLUMNS)


def _columns(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> dict[str, list[Any]]:
    return {c: [r[c] for r in rows] for c in columns}


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Insert what is new; return {(device_id, msg_id): id} of the rows this call inserted.
    A row whose (device, msg_id) exists already — a redelivery — is skipped by the database."""
    if not rows:
        return {}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        result = conn.exec_driver_sql(_PG_MESSAGES, _columns(rows, MESSAGE_COLUMNS))
    else:
        stmt = (
            sqlite.insert(InboundMessage)
            .on_conflict_do_nothing(index_elements=["device_id", "msg_id"])
            .returning(InboundMessage.id, InboundMessage.device_id, InboundMessage.msg_id)
        )
        result = conn.execute(stmt, rows)
    return {(device_id, msg_id): id_ for id_, device_id, msg_id in result}


def insert_signins(session: Session, rows: list[dict[str, Any]]) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_SIGNINS, _columns(rows, SIGNIN_COLUMNS))
    else:
        conn.execute(insert(SignIn.__table__), rows)  # type: ignore[arg-type]
