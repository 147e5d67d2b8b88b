"""The sweeper: fires due deadlines, each exactly once, in whichever process gets to it first.

One sweep is one transaction: claim a small batch of due deadlines (storage.deadlines.claim_due),
run each one's handler in a SAVEPOINT, record a failure for those that raised, commit, and only
then publish the handlers' out/ events. A crash before the commit leaves every claimed deadline
pending for the next sweep, by this process after a restart or by another one; after the commit
they are fired and cannot be claimed again. Several processes may sweep one database at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.deadlines import BUSY_RETRY, Deadline, DeadlineHandler, DeadlineState, SubjectBusy, describe_error
from core.outbound import Outbound
from storage.db import transaction
from storage.deadlines import claim_due, next_due, postpone, record_failure

log = logging.getLogger(__name__)
#: Real seconds to pause when due deadlines exist but another sweeper holds them all (SKIP LOCKED
#: found nothing): its commit is real time away, whatever the clock says.
BUSY_PAUSE_S = 0.01
#: Real seconds between retries while the database is unavailable, doubling up to the cap.
DB_RETRY_S, DB_RETRY_CAP_S = 0.5, 10.0


class Sweeper:
    """Fires due deadlines with the handler registered for their kind.

    `max_idle_s` (in the clock's seconds) caps every wait: the sweeper knows when the deadlines it
    can see come due, not when one scheduled later by another process or thread (sooner than the
    next it knows of) does, so this bounds how late such a deadline fires. `batch_size` bounds how
    long one transaction holds its rows and, on SQLite, the write lock the gateway also needs.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        handlers: Mapping[str, DeadlineHandler],
        publish: Callable[[Sequence[Outbound]], None],
        batch_size: int = 200,
        max_idle_s: float = 0.25,
    ) -> None:
        if batch_size < 1 or max_idle_s <= 0:
            raise ValueError("batch_size must be >= 1 and max_idle_s > 0")
        self._sessions = sessions
        self._clock = clock
        self._handlers = dict(handlers)
        self._publish = publish
        self._batch_size = batch_size
        self._max_idle_s = max_idle_s
        self._next_due: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0  # deadlines whose handler succeeded and whose sweep committed, since start
        self.failed_runs = 0  # handler runs that raised (each retried or, at the end, marked failed)

    def sweep_once(self) -> int:
        """One transaction: claim due deadlines, fire them, commit, publish. Returns how many were
        claimed (fired or recorded as failed). Database errors propagate; nothing is then changed."""
        now = self._clock.now()
        effects: list[Outbound] = []
        fired = failed = 0
        with self._sessions() as session:  # a read first: nothing due costs no write lock (SQLite)
            self._next_due = next_due(session, self._handlers.keys())
        if self._next_due is None or self._next_due > now:
            return 0
        with transaction(self._sessions) as session:
            claimed = claim_due(session, now, self._batch_size, self._handlers.keys())
            for deadline in claimed:
                outcome = self._fire(session, deadline, now, effects)
                fired += outcome == "fired"
                failed += outcome == "failed"
            # read after this sweep's own writes, so a deadline a handler just scheduled counts
            self._next_due = next_due(session, self._handlers.keys())
        self.fired += fired
        self.failed_runs += failed
        if claimed:
            log.debug("sweep at %s: %d fired, %d failed", now.isoformat(), fired, failed)
        if effects:
            try:
                self._publish(effects)
            except Exception:  # the effects are committed; a lost notification must not stop the sweeper
                log.exception("could not publish %d events of fired deadlines", len(effects))
        return len(claimed)

    def _fire(
        self, session: Session, deadline: Deadline, now: datetime, effects: list[Outbound]
    ) -> Literal["fired", "failed", "postponed"]:
        """Run one handler in a SAVEPOINT, so its failure undoes its own writes and nothing else."""
        handler = self._handlers.get(deadline.kind)
        raised: Exception | None = None
        if handler is None:
            error = f"no handler for kind {deadline.kind!r} in this process (known: {sorted(self._handlers)})"
        else:
            try:
                with session.begin_nested():
                    out = list(handler(session, deadline, now))  # a bad return value is its failure too
            except SubjectBusy:
                postpone(session, deadline, now + BUSY_RETRY, now)
                log.debug("deadline %d kind=%s subject=%s: subject busy, again shortly", deadline.id, deadline.kind,
                          deadline.subject)  # fmt: skip
                return "postponed"
            except Exception as exc:
                raised, error = exc, describe_error(exc)
            else:
                effects.extend(out)
                log.debug("fired deadline %d kind=%s subject=%s", deadline.id, deadline.kind, deadline.subject)
                return "fired"
        # If the connection itself is gone this raises too, and the whole sweep rolls back.
        state = record_failure(session, deadline, error, now)
        level = logging.ERROR if state is DeadlineState.FAILED else logging.WARNING  # failed: retries used up
        log.log(
            level,
            "deadline %d kind=%s subject=%s failed (attempt %d, now %s): %s",
            deadline.id,
            deadline.kind,
            deadline.subject,
            deadline.attempts + 1,
            state.value,
            error,
            exc_info=raised,  # the handler's traceback, for the bug that made it raise
        )
        return "failed"

    def run(self, stop: threading.Event) -> None:
        """Sweep until `stop` is set: straight on while batches come back full, otherwise wait
        until the next known deadline, at most `max_idle_s`. Never ends on an error."""
        retry_s = DB_RETRY_S
        while not stop.is_set():
            try:
                claimed = self.sweep_once()
            except OperationalError as exc:
                log.warning("deadline sweep: database unavailable (%s); retrying in %.1f s", exc.orig, retry_s)
                if stop.wait(retry_s):
                    return
                retry_s = min(retry_s * 2, DB_RETRY_CAP_S)
                continue
            except Exception:  # a bug in the sweep itself: keep the thread, do not spin on it
                log.exception("deadline sweep failed; retrying in %.1f s", DB_RETRY_CAP_S)
                if stop.wait(DB_RETRY_CAP_S):
                    return
                continue
            retry_s = DB_RETRY_S
            if claimed >= self._batch_size:
                continue  # more may be due right now
            wait = self._max_idle_s
            if self._next_due is not None:
                wait = min(wait, (self._next_due - self._clock.now()).total_seconds())
            if wait <= 0 and claimed == 0:
                # due but claimed by another sweeper that has not committed yet: pause, do not spin
                if stop.wait(BUSY_PAUSE_S):
                    return
            elif wait > 0 and self._clock.wait(stop, wait):
                return

    def start(self) -> None:
        """Sweep on a daemon thread until `stop()`."""
        if self._thread is not None:
            raise RuntimeError("sweeper already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="deadline-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the sweep in hand (its transaction commits or rolls back as a whole)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
