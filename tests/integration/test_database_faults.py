"""The database drops the gateway's connections mid-stream (PostgreSQL backends killed): the gateway
retries, nothing is acked before it is committed, every tap lands exactly once."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from gateway.pipeline import Gateway
from storage.db import session_factory
from storage.models import SignIn
from storage.sitefile.schema import SiteFile
from tests.support.databases import PG_ADMIN_URL
from tests.support.mqtt import SitePeers, wait_quiet, wait_until

pytestmark = pytest.mark.integration
TAPS = 1500


def _kill_backends(database: str) -> int:
    """Terminate every other session on the gateway's database, as a failover or restart would."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        admin.dispose()


def test_killed_database_connections_lose_and_double_nothing(
    engine: Engine, gateway: Gateway, peer: SitePeers, db_url: str, demo_site: SiteFile
) -> None:
    if make_url(db_url).get_backend_name() != "postgresql":
        pytest.skip("SQLite has no server connections to kill")
    tags = [loc.tag for loc in demo_site.locations if loc.tag]
    done = threading.Event()

    def publish() -> None:
        for i in range(TAPS):
            tap = json.dumps({"id": f"dbk-{i:05d}", "ts": 1764288311250, "uid": tags[i % len(tags)]})
            topic = f"patrol/v1/liyuan/reader/rdr-h0{1 + i % 6}/tap"
            peer.sender(topic).client.publish(topic, tap, qos=1)  # each reader on its own account
            if i % 100 == 99:
                time.sleep(0.02)  # a stream over about a third of a second, not one burst
        done.set()

    def committed() -> int:
        with session_factory(engine)() as s:
            return int(s.scalar(select(func.count()).select_from(SignIn)) or 0)

    publisher = threading.Thread(target=publish)
    publisher.start()
    killed = 0
    for threshold in (200, 700, 1200):

        def reached(t: int = threshold) -> bool:
            return committed() >= t

        wait_until(reached, timeout=60, what=f"{threshold} sign-ins")
        killed += _kill_backends(make_url(db_url).database or "")
    publisher.join(30)
    assert done.is_set() and killed > 0
    wait_until(lambda: committed() >= TAPS, timeout=120, what=f"{TAPS} sign-ins after the faults")
    assert wait_quiet(committed, what="sign-ins") == TAPS
    ids = {f"dbk-{i:05d}" for i in range(TAPS)}
    assert peer.answers(ids, timeout=60).keys() == ids
