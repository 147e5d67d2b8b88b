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

import sys

from app.wiring import deadline_handlers
from core.config import Settings
from tests.support.sweeper_process import run_sweeper


def main(argv: list[str]) -> int:
    return run_sweeper(argv, lambda db_url, _name: deadline_handlers(Settings(_env_file=None, database_url=db_url)))  # type: ignore[call-arg]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
