"""The product's deadline sweeper in its own process, with every handler the product registers
(app.wiring.deadline_handlers: escalation, alarm rules, silence, housekeeping), for tests that
SIGKILL and restart the process that escalates tickets.

    python -m tests.support.escalation_process DB_URL NAME ORIGIN_ISO SPEED [AT_UNIX_TIME]

sweeps DB_URL on a ScaledClock (simulated time from ORIGIN_ISO at the real time AT_UNIX_TIME,
SPEED times real time; see tests/support/sweeper_process.py for why processes agree on it this
way). Out/ events of fired deadlines are dropped: there is no broker here, and what a test counts
is what the handlers committed (ticket_events). NAME is PostgreSQL's application_name, so a test
can see in pg_stat_activity whether this process is blocked inside a sweep. Prints "ready" once
sweeping; SIGTERM stops it after the sweep in hand.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import datetime, timedelta

from app.wiring import deadline_handlers
from core.clock import ScaledClock
from core.config import Settings
from gateway.sweeper import Sweeper
from storage.db import make_engine, session_factory
from tests.support.sweeper_process import REAL_IDLE_S, process_url


def main(argv: list[str]) -> int:
    db_url, name, origin_iso, speed_text, *at = argv
    speed = float(speed_text)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    engine = make_engine(process_url(db_url, name))
    late_s = time.time() - float(at[0]) if at else 0.0
    clock = ScaledClock(datetime.fromisoformat(origin_iso) + timedelta(seconds=late_s * speed), speed)
    settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
    sweeper = Sweeper(
        session_factory(engine),
        clock,
        deadline_handlers(settings),
        publish=lambda _events: None,
        max_idle_s=REAL_IDLE_S * speed,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    sweeper.run(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
