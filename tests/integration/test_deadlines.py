"""Durable deadlines on SQLite and PostgreSQL, in simulated time (FakeClock): each fires once at
its due time, cancelled ones never, moved ones at the new time; failing handlers are retried and
do not hold the others back; two sweepers on one database never fire one twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.deadlines import Deadline, DeadlineHandler
from core.outbound import DeviceStatusEvent, Outbound
from gateway import housekeeping
from gateway.sweeper import Sweeper
from storage.db import make_engine, session_factory, transaction
from storage.deadlines import cancel, schedule
from storage.models import DeadlineRow, Device, InboundMessage
from tests.support.mqtt import wait_until
from tests.support.sweeper_process import (
    RECORD,
    by_sweeper,
    create_fired_table,
    fired_counts,
    insert_pending,
    record_handler,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    create_fired_table(engine)
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def sweeper_for(
    sessions: sessionmaker[Session],
    clock: FakeClock,
    extra: dict[str, DeadlineHandler] | None = None,
    publish: Callable[[Sequence[Outbound]], None] = lambda _e: None,
    **kwargs: Any,
) -> Sweeper:
    return Sweeper(sessions, clock, {RECORD: record_handler("s1"), **(extra or {})}, publish, **kwargs)


def add(sessions: sessionmaker[Session], subject: str, due: datetime, kind: str = RECORD, **payload: Any) -> int:
    with transaction(sessions) as s:
        ident = schedule(s, kind, subject, due, payload, T0)
    assert ident is not None
    return ident


def row(sessions: sessionmaker[Session], ident: int) -> DeadlineRow:
    with sessions() as s:
        return s.get_one(DeadlineRow, ident)


def fired(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return fired_counts(conn)


def test_deadline_fires_once_at_its_due_time_and_never_again(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    ident = add(sessions, "round-1", T0 + timedelta(minutes=1))
    sweeper = sweeper_for(sessions, clock)
    assert sweeper.sweep_once() == 0
    clock.advance(timedelta(seconds=59.999))
    assert sweeper.sweep_once() == 0, "fired before its due time"
    clock.advance(timedelta(milliseconds=1))
    assert sweeper.sweep_once() == 1
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        assert sweeper.sweep_once() == 0
    assert fired(engine) == {ident: 1}
    r = row(sessions, ident)
    assert (r.state, r.fired_at, r.attempts, r.last_error) == ("fired", T0 + timedelta(minutes=1), 0, None)


def test_a_claim_is_undone_with_its_sweep_so_a_crash_before_the_commit_fires_nothing(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """A claim and its handlers' effects commit together or not at all: a sweep that dies after the
    claim leaves the deadline pending (on SQLite the claim once committed by itself, and a gateway
    killed mid-sweep left deadlines fired whose effects never happened)."""
    ident = add(sessions, "round-1", T0)

    def dies(session: Session, _deadline: Deadline, _now: datetime) -> Sequence[Outbound]:
        session.execute(text("INSERT INTO test_fired (deadline_id, sweeper) VALUES (-1, 'half')"))
        raise SystemExit("killed mid-sweep")  # not an Exception: the sweep's transaction rolls back

    with pytest.raises(SystemExit):
        sweeper_for(sessions, clock, {RECORD: dies}).sweep_once()
    assert row(sessions, ident).state == "pending"
    assert fired(engine) == {}
    assert sweeper_for(sessions, clock).sweep_once() == 1
    assert fired(engine) == {ident: 1}


def test_cancelled_deadline_never_fires(engine: Engine, sessions: sessionmaker[Session], clock: FakeClock) -> None:
    ident = add(sessions, "alarm-7", T0 + timedelta(seconds=30))
    with transaction(sessions) as s:
        assert cancel(s, RECORD, "alarm-7", clock.now()) is True
        assert cancel(s, RECORD, "alarm-7", clock.now()) is False, "nothing pending is left to cancel"
    sweeper = sweeper_for(sessions, clock)
    clock.advance(timedelta(days=1))
    assert sweeper.sweep_once() == 0
    assert fired(engine) == {}
    assert row(sessions, ident).state == "cancelled"


def test_cancel_after_firing_says_it_came_too_late(sessions: sessionmaker[Session], clock: FakeClock) -> None:
    add(sessions, "alarm-8", T0)
    assert sweeper_for(sessions, clock).sweep_once() == 1
    with transaction(sessions) as s:
        assert cancel(s, RECORD, "alarm-8", clock.now()) is False


def test_moved_deadline_fires_at_its_new_time_and_not_at_the_old(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    later = add(sessions, "later", T0 + timedelta(minutes=1), step=1)
    sooner = add(sessions, "sooner", T0 + timedelta(minutes=10))
    assert add(sessions, "later", T0 + timedelta(minutes=5), step=2) == later, "moved, not a second deadline"
    assert add(sessions, "sooner", T0 + timedelta(minutes=2)) == sooner
    sweeper = sweeper_for(sessions, clock)
    clock.set(T0 + timedelta(minutes=1))
    assert sweeper.sweep_once() == 0, "fired at the time it was moved away from"
    clock.set(T0 + timedelta(minutes=2))
    assert sweeper.sweep_once() == 1 and fired(engine) == {sooner: 1}
    clock.set(T0 + timedelta(minutes=5))
    assert sweeper.sweep_once() == 1 and fired(engine) == {sooner: 1, later: 1}
    clock.set(T0 + timedelta(minutes=10))
    assert sweeper.sweep_once() == 0, "fired again at its old time"
    assert row(sessions, later).payload == {"step": 2} and row(sessions, later).fired_at == T0 + timedelta(minutes=5)


def test_raising_handler_is_retried_with_backoff_and_the_rest_of_the_batch_fires(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    runs: list[int] = []

    def flaky(session: Any, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        record_handler("flaky")(session, deadline, now)  # written, then undone by the raise
        runs.append(deadline.attempts)
        if len(runs) <= 2:
            raise RuntimeError(f"site not loaded yet (run {len(runs)})")
        return ()

    good = [add(sessions, f"ok-{i}", T0) for i in range(3)]
    bad = add(sessions, "flaky", T0, kind="test.flaky")
    sweeper = sweeper_for(sessions, clock, {"test.flaky": flaky})
    assert sweeper.sweep_once() == 4
    assert fired(engine) == dict.fromkeys(good, 1), "the failure undid the others' effects, or kept its own"
    r = row(sessions, bad)
    assert (r.state, r.attempts, r.due_at, r.fired_at) == ("pending", 1, T0 + timedelta(seconds=5), None)
    assert r.last_error == "RuntimeError: site not loaded yet (run 1)"

    clock.advance(timedelta(seconds=4.9))
    assert sweeper.sweep_once() == 0, "retried before its backoff"
    clock.advance(timedelta(seconds=0.1))
    assert sweeper.sweep_once() == 1
    assert (row(sessions, bad).attempts, row(sessions, bad).due_at) == (2, clock.now() + timedelta(seconds=10))
    clock.advance(timedelta(seconds=10))
    assert sweeper.sweep_once() == 1
    assert runs == [0, 1, 2]
    assert fired(engine) == {**dict.fromkeys(good, 1), bad: 1}
    assert (row(sessions, bad).state, row(sessions, bad).attempts) == ("fired", 2)
    assert (sweeper.fired, sweeper.failed_runs) == (4, 2)


def test_failed_deadline_gives_way_to_a_newer_schedule_of_its_subject(
    sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """One handler reschedules (kind, subject) of another deadline in the batch, whose handler
    then fails: the newer schedule holds the one pending slot, the failed one is closed."""

    def reschedule(session: Any, _d: Deadline, now: datetime) -> Sequence[Outbound]:
        schedule(session, "test.broken", "x", now + timedelta(hours=1), {"v": 2}, now)
        return ()

    def broken(_s: Any, _d: Deadline, _n: datetime) -> Sequence[Outbound]:
        raise LookupError("gone")

    first = add(sessions, "y", T0 - timedelta(seconds=1), kind="test.reschedule")
    old = add(sessions, "x", T0, kind="test.broken")
    sweeper = sweeper_for(sessions, clock, {"test.reschedule": reschedule, "test.broken": broken})
    assert sweeper.sweep_once() == 2
    assert row(sessions, first).state == "fired"
    r = row(sessions, old)
    assert (r.state, r.last_error) == ("cancelled", "superseded by a newer schedule; LookupError: gone")
    with sessions() as s:
        newer = s.scalars(select(DeadlineRow).where(DeadlineRow.state == "pending")).one()
    assert (newer.kind, newer.subject, newer.payload, newer.due_at) == (
        "test.broken",
        "x",
        {"v": 2},
        T0 + timedelta(hours=1),
    )


def test_a_kind_this_process_cannot_fire_is_left_to_one_that_can(
    sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """During a rolling upgrade an old gateway must not claim (and fail) a kind it does not know."""
    ident = add(sessions, "x", T0, kind="test.newer")
    old = sweeper_for(sessions, clock)
    clock.advance(timedelta(days=1))
    assert old.sweep_once() == 0
    r = row(sessions, ident)
    assert (r.state, r.attempts, r.last_error) == ("pending", 0, None)
    newer = Sweeper(sessions, clock, {"test.newer": lambda s, d, now: ()}, publish=lambda events: None)
    assert newer.sweep_once() == 1
    assert row(sessions, ident).state == "fired"


def test_events_are_published_after_the_commit(sessions: sessionmaker[Session], clock: FakeClock) -> None:
    event = Outbound("liyuan", DeviceStatusEvent(device="gas-1", kind="gas", online=False, status_at=T0))
    seen_state: list[str] = []

    def publish(events: Sequence[Outbound]) -> None:
        assert list(events) == [event]
        seen_state.append(row(sessions, ident).state)  # another session sees only what is committed
        raise ConnectionError("broker away")  # a lost notification does not undo the fire

    ident = add(sessions, "gas-1", T0, kind="test.event")
    sweeper = sweeper_for(sessions, clock, {"test.event": lambda _s, _d, _n: [event]}, publish=publish)
    assert sweeper.sweep_once() == 1
    assert seen_state == ["fired"]
    assert row(sessions, ident).state == "fired"


def test_handler_may_schedule_the_next_deadline_of_its_own_subject(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    def again(session: Any, deadline: Deadline, now: datetime) -> Sequence[Outbound]:
        record_handler("again")(session, deadline, now)
        if deadline.payload["n"] < 3:
            schedule(
                session,
                deadline.kind,
                deadline.subject,
                now + timedelta(hours=1),
                {"n": deadline.payload["n"] + 1},
                now,
            )
        return ()

    add(sessions, "tick", T0, kind="test.again", n=1)
    sweeper = sweeper_for(sessions, clock, {"test.again": again})
    for _ in range(5):
        sweeper.sweep_once()
        clock.advance(timedelta(hours=1))
    with sessions() as s:
        rows = s.execute(select(DeadlineRow.state, DeadlineRow.payload).order_by(DeadlineRow.id)).all()
    assert [(state, p["n"]) for state, p in rows] == [("fired", 1), ("fired", 2), ("fired", 3)]
    assert sorted(fired(engine).values()) == [1, 1, 1]


@pytest.fixture
def two_sweepers(sessions: sessionmaker[Session], clock: FakeClock) -> Iterator[tuple[Sweeper, Sweeper]]:
    pair = tuple(Sweeper(sessions, clock, {RECORD: record_handler(n)}, lambda _e: None, batch_size=50) for n in "ab")
    yield pair  # type: ignore[misc]
    for sweeper in pair:
        sweeper.stop()


def test_two_sweepers_fire_each_of_2000_deadlines_exactly_once(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock, two_sweepers: tuple[Sweeper, Sweeper]
) -> None:
    insert_pending(engine, [T0 + timedelta(milliseconds=i) for i in range(2000)], created=T0)
    for sweeper in two_sweepers:
        sweeper.start()
    clock.advance(timedelta(seconds=3))  # all 2,000 are due at once: both sweepers race for them
    wait_until(lambda: sum(fired(engine).values()) >= 2000, timeout=60, what="2,000 deadlines fired")
    for sweeper in two_sweepers:
        sweeper.stop()
    counts = fired(engine)
    assert len(counts) == 2000 and set(counts.values()) == {1}, "a deadline fired twice"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM deadlines WHERE state = 'fired'")).scalar_one() == 2000
        shares = by_sweeper(conn)
    assert sum(shares.values()) == 2000 and set(shares) == {"a", "b"}, "only one sweeper took part: no race tested"
    assert two_sweepers[0].fired + two_sweepers[1].fired == 2000


def test_running_sweeper_drains_a_backlog_without_waiting_for_the_clock(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    insert_pending(engine, [T0] * 35, created=T0)
    sweeper = sweeper_for(sessions, clock, batch_size=10)
    sweeper.start()
    try:  # the clock never moves: only "a full batch means more may be due" gets past the first 10
        wait_until(lambda: sum(fired(engine).values()) >= 35, timeout=20, what="35 deadlines fired in 4 batches")
    finally:
        sweeper.stop()
    counts = fired(engine)  # the sweeper has stopped: nothing more can come
    assert len(counts) == 35 and set(counts.values()) == {1}


def test_running_sweeper_sees_a_deadline_scheduled_elsewhere_within_its_idle_cap(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    sweeper = sweeper_for(sessions, clock, max_idle_s=0.25)
    sweeper.start()
    try:  # it knows of no deadline, so it waits at most max_idle_s, then looks again
        ident = add(sessions, "elsewhere", T0 + timedelta(seconds=0.1))

        def tick() -> bool:
            clock.advance(0.01)
            return bool(fired(engine))

        wait_until(tick, timeout=20, what="the deadline fired")
    finally:
        sweeper.stop()
    fired_at = row(sessions, ident).fired_at
    assert fired_at is not None
    assert timedelta(0) <= fired_at - (T0 + timedelta(seconds=0.1)) <= timedelta(seconds=0.25)


def test_sweeper_thread_survives_an_unreachable_database(tmp_path: Path, clock: FakeClock) -> None:
    broken = make_engine(f"sqlite:///{tmp_path}")  # a directory: every connection attempt fails
    sweeper = Sweeper(session_factory(broken), clock, {}, lambda _e: None)
    stop = threading.Event()
    thread = threading.Thread(target=sweeper.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "the sweeper thread ended on a database error"
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    broken.dispose()


def test_housekeeping_prunes_in_bounded_steps_and_reschedules_itself(
    engine: Engine, sessions: sessionmaker[Session], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "PRUNE_STEP", 3)
    with transaction(sessions) as s:
        device = s.scalars(select(Device).where(Device.code == "gas-b1-shop101")).one()
        for i, age in enumerate([40] * 5 + [1] * 2):
            at = T0 - timedelta(days=age)
            s.add(InboundMessage(site_id=device.site_id, device_id=device.id, msg_id=f"m{i}", kind="telemetry",
                                 device_ts=at, received_at=at, payload="{}"))  # fmt: skip
    old_fire = add(sessions, "old", T0 - timedelta(days=40))
    with transaction(sessions) as s:  # a deadline that fired 40 days ago: finished history to prune
        s.execute(text("UPDATE deadlines SET state = 'fired', updated_at = due_at WHERE id = :i"), {"i": old_fire})
    with transaction(sessions) as s:
        housekeeping.ensure_housekeeping(s, clock.now())
        housekeeping.ensure_housekeeping(s, clock.now())  # a second process starting: no second chore
    sweeper = sweeper_for(sessions, clock, housekeeping.housekeeping_handlers(retention_days=30, quarantine_days=14))

    def chores() -> dict[str, datetime]:
        with sessions() as s:
            pending = s.execute(
                select(DeadlineRow.kind, DeadlineRow.due_at).where(
                    DeadlineRow.kind.in_(housekeeping.KINDS), DeadlineRow.state == "pending"
                )
            ).all()
        return {kind: due for kind, due in pending}

    def telemetry_left() -> int:
        with sessions() as s:
            return len(s.scalars(select(InboundMessage.id).where(InboundMessage.kind == "telemetry")).all())

    assert chores() == dict.fromkeys(housekeeping.KINDS, T0)
    assert sweeper.sweep_once() == 3
    assert telemetry_left() == 4, "one step removes at most PRUNE_STEP rows"
    assert chores() == {
        housekeeping.PRUNE_TELEMETRY: T0 + timedelta(seconds=1),  # a full step: more may be left
        housekeeping.PRUNE_DEADLINES: T0 + timedelta(minutes=10),  # caught up
        housekeeping.PRUNE_QUARANTINE: T0 + timedelta(minutes=10),  # nothing to prune
    }
    assert row_or_none(sessions, old_fire) is None
    clock.advance(timedelta(seconds=1))
    assert sweeper.sweep_once() == 1
    assert telemetry_left() == 2, "old telemetry left behind, or recent telemetry pruned"
    assert chores()[housekeeping.PRUNE_TELEMETRY] == clock.now() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=10))
    assert sweeper.sweep_once() == 3
    assert telemetry_left() == 2 and set(chores()) == set(housekeeping.KINDS)


def row_or_none(sessions: sessionmaker[Session], ident: int) -> DeadlineRow | None:
    with sessions() as s:
        return s.get(DeadlineRow, ident)
