"""The product's gateway (with its deadline sweeper, as `patrol gateway` runs them) in its own process on
a ScaledClock, for tests that SIGKILL it mid-round while taps stream and windows shut.

    python -m tests.support.patrol_gateway_process DB_URL MQTT_URL CLIENT_ID ORIGIN_ISO SPEED AT_UNIX_TIME WEBHOOKS

The simulated time is ORIGIN_ISO at the real time AT_UNIX_TIME and runs SPEED times real time, so
every restart continues the same simulated time (tests/support/sweeper_process.py explains why).
WEBHOOKS is PATROL_WEBHOOKS' JSON ("[]" for none). Prints "ready" once subscribed; SIGTERM stops it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import datetime, timedelta

from app.runtime import Runtime
from core.clock import ScaledClock
from core.config import Settings
from storage.db import make_engine


def main(argv: list[str]) -> int:
    db_url, mqtt_url, client_id, origin_iso, speed_text, at_text, webhooks = argv
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {client_id} %(levelname)s %(name)s: %(message)s")
    speed = float(speed_text)
    late_s = time.time() - float(at_text)
    clock = ScaledClock(datetime.fromisoformat(origin_iso) + timedelta(seconds=late_s * speed), speed)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db_url, mqtt_url=mqtt_url, mqtt_client_id=client_id, webhooks=webhooks
    )
    runtime = Runtime(settings, make_engine(db_url), clock=clock)
    gateway = runtime.start_gateway()
    if not gateway.link.subscribed.wait(30):
        print("not subscribed", flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
