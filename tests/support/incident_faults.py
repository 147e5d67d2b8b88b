"""Helpers of the incident fault tests (tests/integration/test_incident_faults.py): what is left
unacknowledged in a gateway's broker session, escalation sweeper processes on a ScaledClock, and a
lock held on a ticket so that a sweeper blocks inside its sweep."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from tests.support.mosquitto import MosquittoBroker
from tests.support.mqtt import wait_quiet, wait_until

REPO = Path(__file__).resolve().parents[2]


def left_in_session(broker: MosquittoBroker, username: str) -> list[str]:
    """Topics of the device messages the broker still holds for `username`'s persistent session
    (sent and never acked, or queued): it resends them all when the session is resumed. Raises if
    there was no session to resume (an empty answer would then prove nothing). The gateway's own
    out/ events, which a shared group may queue for a member that left, are not device messages."""
    got: list[str] = []
    present: list[bool] = []
    lock = threading.Lock()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, broker.passwords[username])

    def on_connect(_c: Any, _u: Any, flags: Any, _rc: Any, _p: Any) -> None:
        present.append(bool(flags.session_present))

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(msg.topic)

    client.on_connect = on_connect
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        wait_until(lambda: present, timeout=10, what=f"{username} reconnected")
        assert present[0], f"the broker had no session of {username} to resume"

        def count() -> int:
            with lock:
                return len(got)

        wait_quiet(count, quiet_s=1.0, what="redelivered messages")  # the broker resends at once on resume
    finally:
        client.disconnect()
        client.loop_stop()
    return [t for t in got if "/out/" not in t]


@contextmanager
def holding_ticket(engine: Engine, db_url: str, ticket_id: int) -> Iterator[None]:
    """Hold the ticket's event log so that a sweeper firing its escalation blocks inside the sweep:
    on PostgreSQL a lock on `ticket_events` (the handler has claimed the deadline and locked the
    ticket, then waits to write the escalation's event; it never waits for the ticket itself, which
    it takes NOWAIT), on SQLite the write lock (the sweep waits to claim)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE ticket_events IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
        return
    path = make_url(db_url).database
    assert path, db_url
    raw = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
    finally:
        raw.close()


def blocked_on_a_lock(engine: Engine, application_name: str) -> bool:
    """PostgreSQL: whether the process connected as `application_name` waits for a lock now."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n AND wait_event_type = 'Lock'"),
            {"n": application_name},
        ).scalar_one()
    return bool(found)
