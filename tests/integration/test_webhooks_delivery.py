"""Webhook delivery from the outbox (storage.outbox, gateway.webhook_worker) to a real HTTP receiver on
127.0.0.1, on SQLite and PostgreSQL, in simulated time (FakeClock + run_once): each format arrives as its
robot expects it (signatures recomputed here), a burst becomes one message, a receiver that is down or
refuses (HTTP 500, or 200 with an errcode) is retried with backoff and then gets every notice exactly
once and in order per ticket, and a row that never gets through ends `failed`, kept and listed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.outbound import Name
from core.webhooks import Notice, WebhookTarget
from gateway.webhook_worker import WebhookWorker
from storage.db import session_factory, transaction
from storage.models import OutboxMessage
from storage.outbox import claim_group, enqueue, failed_rows, outbox_summary
from tests.support.http_receiver import HttpReceiver, Received
from tests.support.mqtt import wait_until

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
SECRET = "SECd0e1f2a3b4c5d6e7f8091a2b3c4d5e6f70819a2b3c4d5e6f708192a3b4c5d6e7f8"
WAIT_S = 10.0
PATHS = {  # where each robot's url points, with its credential in the url as the real ones have it
    "generic": ("/patrol-hook", ""),
    "wecom": ("/cgi-bin/webhook/send", "key=693a91f6-7a0c-4bc4-97a0-0ec2afa5aaa0"),
    "dingtalk": ("/robot/send", "access_token=4f7a0c1e9b8d2a6f3c5e7b9d1a3c5e7f"),
    "feishu": ("/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd", ""),
}


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver().start()
    yield r
    r.stop()


def target(receiver: HttpReceiver, fmt: str = "generic", name: str = "ops", **kw: Any) -> WebhookTarget:
    path, query = PATHS[fmt]
    secret = {} if fmt == "wecom" else {"secret": SECRET}
    return WebhookTarget.model_validate({"name": name, "url": receiver.url(path, query), "format": fmt, **secret, **kw})


def notice(n: int, ticket: int | None = None, severity: str | None = "critical") -> Notice:
    return Notice(
        kind="alarm_raised",
        site="liyuan",
        site_name=Name(zh="荔园", en="Liyuan"),
        title=Name(zh=f"3栋 B1 水浸 {n}", en=f"Building 3 B1 water leak {n}"),
        at=T0 + timedelta(seconds=n),
        lines=(Name(zh="水位 35 mm", en="Water level 35 mm"),),
        severity=severity,  # type: ignore[arg-type]
        ticket_id=ticket,
        alarm_id=n,
    )


def add(sessions: sessionmaker[Session], clock: FakeClock, targets: list[WebhookTarget], *notices: Notice) -> None:
    with transaction(sessions) as s:
        for n in notices:
            enqueue(s, targets, n, clock.now())


def worker(sessions: sessionmaker[Session], clock: FakeClock, *targets: WebhookTarget, **kw: Any) -> WebhookWorker:
    return WebhookWorker(sessions, clock, list(targets), group_wait_s=WAIT_S, timeout_s=2, **kw)


def rows(sessions: sessionmaker[Session]) -> list[OutboxMessage]:
    with sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def alarm_ids(request: Received) -> list[int]:
    return [n["alarm_id"] for n in request.json["notices"]]


def b64_hmac(key: str, msg: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), msg.encode(), hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("fmt", ["generic", "wecom", "dingtalk", "feishu"])
def test_a_notice_is_posted_once_in_its_targets_format(
    fmt: str, sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    ops = target(receiver, fmt)
    add(sessions, clock, [ops], notice(1, ticket=12))
    w = worker(sessions, clock, ops)
    assert w.run_once() == 0 and receiver.taken() == []  # group_wait: not before 10 s
    clock.advance(WAIT_S)
    assert w.run_once() == 1
    [got] = receiver.taken()
    sent_at = clock.now()
    assert (got.path, got.headers["content-type"]) == (PATHS[fmt][0], "application/json; charset=utf-8")
    if fmt == "generic":
        ts = got.headers["x-patrol-timestamp"]
        assert ts == str(int(sent_at.timestamp()))
        digest = hmac.new(SECRET.encode(), ts.encode() + b"." + got.raw, hashlib.sha256).hexdigest()
        assert got.headers["x-patrol-signature"] == f"sha256={digest}"
        assert alarm_ids(got) == [1] and got.json["notices"][0]["ticket_id"] == 12
    elif fmt == "wecom":
        assert got.query == {"key": PATHS["wecom"][1].split("=")[1]}
        assert got.json["msgtype"] == "markdown" and "3栋 B1 水浸 1" in got.json["markdown"]["content"]
    elif fmt == "dingtalk":  # 加签: timestamp in ms and sign on the url
        ms = str(int(sent_at.timestamp() * 1000))
        assert got.query["timestamp"] == ms
        assert got.query["sign"] == b64_hmac(SECRET, f"{ms}\n{SECRET}")
        assert got.json["msgtype"] == "markdown" and "3栋 B1 水浸 1" in got.json["markdown"]["text"]
    else:  # feishu 签名校验: timestamp in s and sign in the body
        seconds = str(int(sent_at.timestamp()))
        assert got.json["timestamp"] == seconds
        assert got.json["sign"] == b64_hmac(f"{seconds}\n{SECRET}", "")
        assert got.json["msg_type"] == "post" and "zh_cn" in got.json["content"]["post"]
    [row] = rows(sessions)
    assert (row.state, row.attempts, row.sent_at, row.last_error) == ("sent", 1, sent_at, None)
    clock.advance(3600)
    assert w.run_once() == 0 and len(receiver.taken()) == 1  # sent once, never again


def test_a_burst_within_group_wait_becomes_one_message(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    """A building's sensors all firing: six notices in six seconds go out as one message, after group_wait
    counted from the first; a later notice waits its own group_wait."""
    ops = target(receiver)
    w = worker(sessions, clock, ops)
    for n in range(1, 7):
        add(sessions, clock, [ops], notice(n, ticket=n))
        clock.advance(1)
    clock.set(T0 + timedelta(seconds=WAIT_S - 1))
    assert w.run_once() == 0
    clock.advance(1)
    assert w.run_once() == 6
    [got] = receiver.taken()
    assert got.json["count"] == 6 and sorted(alarm_ids(got)) == [1, 2, 3, 4, 5, 6]
    add(sessions, clock, [ops], notice(7))
    assert w.run_once() == 0
    clock.advance(WAIT_S)
    assert w.run_once() == 1 and alarm_ids(receiver.taken()[1]) == [7]


def test_receiver_down_then_back_gets_each_notice_once_in_order_per_ticket(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    ops = target(receiver)
    w = worker(sessions, clock, ops, batch_limit=2)
    receiver.stop()  # connection refused
    add(sessions, clock, [ops], notice(1, ticket=7), notice(2, ticket=8), notice(3, ticket=7), notice(4, ticket=7))
    clock.advance(WAIT_S)
    assert w.run_once() == 0
    first = rows(sessions)
    assert [r.attempts for r in first] == [1, 1, 0, 0]  # one group per target in flight: the head's
    assert all(r.state == "pending" for r in first)
    assert first[0].last_error is not None and "refused" in first[0].last_error.lower()
    assert first[0].next_attempt_at == clock.now() + timedelta(seconds=5)  # backoff 5 s, then doubling
    assert w.run_once() == 0 and rows(sessions)[0].attempts == 1  # not due again yet
    clock.advance(5)
    assert w.run_once() == 0
    assert rows(sessions)[0].attempts == 2 and rows(sessions)[0].next_attempt_at == clock.now() + timedelta(seconds=10)

    receiver.start()  # back, on the same port
    clock.advance(10)
    assert w.run_once() == 2
    assert w.run_once() == 2
    assert w.run_once() == 0
    taken = receiver.taken()
    assert [alarm_ids(r) for r in taken] == [[1, 2], [3, 4]]  # each once; ticket 7's 1, 3, 4 in order
    assert all(r.state == "sent" for r in rows(sessions))
    assert [r.attempts for r in rows(sessions)] == [3, 3, 1, 1]


@pytest.mark.parametrize(("mode", "error"), [("errcode", "dingtalk error 310000"), ("error_500", "HTTP 500")])
def test_a_refusal_counts_as_a_failure_and_is_retried(
    mode: str, error: str, sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    """The robots answer HTTP 200 with errcode != 0 when they refuse (a bad signature): not delivered."""
    ops = target(receiver, "dingtalk")
    w = worker(sessions, clock, ops)
    add(sessions, clock, [ops], notice(1))
    receiver.mode = mode  # type: ignore[assignment]
    clock.advance(WAIT_S)
    assert w.run_once() == 0
    [row] = rows(sessions)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith(error)
    receiver.mode = "ok"
    clock.advance(5)
    assert w.run_once() == 1
    assert [r.state for r in rows(sessions)] == ["sent"] and len(receiver.taken()) == 2
    # the retry is signed afresh: its timestamp is the time of the second post
    assert receiver.taken()[1].query["timestamp"] == str(int(clock.now().timestamp() * 1000))


def test_after_max_attempts_rows_are_failed_kept_and_listed(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    ops = target(receiver)
    w = worker(sessions, clock, ops, max_attempts=3)
    receiver.mode = "error_500"
    add(sessions, clock, [ops], notice(1, ticket=5), notice(2, ticket=5))
    for _ in range(3):
        clock.advance(timedelta(minutes=15))
        w.run_once()
    assert len(receiver.taken()) == 3
    assert [(r.state, r.attempts) for r in rows(sessions)] == [("failed", 3), ("failed", 3)]
    with sessions() as s:
        listed = failed_rows(s)
        summary = outbox_summary(s, clock.now())
    assert [e.id for e in listed] == [r.id for r in reversed(rows(sessions))]
    assert all(e.last_error and e.last_error.startswith("HTTP 500") for e in listed)
    assert (summary["pending"], summary["failed"], summary["oldest_pending_age_s"]) == (0, 2, None)
    assert summary["targets"] == {"ops": {"pending": 0, "failed": 2}}
    receiver.mode = "ok"
    clock.advance(timedelta(days=1))
    assert w.run_once() == 0 and len(receiver.taken()) == 3  # given up: never posted again


def test_enqueue_writes_a_row_per_target_that_wants_the_notice(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    everyone = target(receiver, name="everyone")
    critical_only = target(receiver, name="managers", min_severity="critical")
    other_site = target(receiver, name="elsewhere", sites=["other"])
    with transaction(sessions) as s:
        assert enqueue(s, [everyone, critical_only, other_site], notice(1, severity="major"), clock.now()) == 1
        assert enqueue(s, [everyone, critical_only, other_site], notice(2, severity="critical"), clock.now()) == 2
    assert [(r.target, r.notice["alarm_id"], r.site_code) for r in rows(sessions)] == [
        ("everyone", 1, "liyuan"),
        ("everyone", 2, "liyuan"),
        ("managers", 2, "liyuan"),
    ]
    with sessions() as s:
        summary = outbox_summary(s, clock.now() + timedelta(seconds=30))
    assert (summary["pending"], summary["oldest_pending_age_s"]) == (3, 30.0)


def test_a_tickets_later_notice_never_overtakes_an_earlier_pending_one(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    ops = target(receiver)
    add(sessions, clock, [ops], notice(1), notice(2, ticket=7), notice(3, ticket=7), notice(4, ticket=8))
    ids = [r.id for r in rows(sessions)]
    with transaction(sessions) as s:  # ticket 7's first row waits for a retry
        later = T0 + timedelta(hours=1)
        s.execute(update(OutboxMessage).where(OutboxMessage.id == ids[1]).values(next_attempt_at=later))
    clock.advance(WAIT_S)
    with transaction(sessions) as s:
        group = claim_group(s, "ops", clock.now(), WAIT_S, limit=10)
    assert [e.id for e in group] == [ids[0], ids[3]]
    assert all(e.attempts == 1 and e.next_attempt_at > clock.now() for e in group)  # leased


def test_two_workers_never_claim_the_same_rows(
    db_kind: str, sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED; a claim in progress holds the head of the target's queue. (SQLite
    serialises claims on its write lock: a second claim waits for the first's commit, then sees the lease.)"""
    ops = target(receiver)
    add(sessions, clock, [ops], notice(1), notice(2))
    clock.advance(WAIT_S)
    first = sessions()
    try:
        first.begin()
        assert len(claim_group(first, "ops", clock.now(), WAIT_S, limit=10)) == 2
        if db_kind == "postgresql":
            with transaction(sessions) as s:
                assert claim_group(s, "ops", clock.now(), WAIT_S, limit=10) == []
        first.commit()
    finally:
        first.close()
    with transaction(sessions) as s:
        assert claim_group(s, "ops", clock.now(), WAIT_S, limit=10) == []  # leased to the first


def test_the_worker_thread_delivers_in_the_background(
    sessions: sessionmaker[Session], clock: FakeClock, receiver: HttpReceiver
) -> None:
    ops = target(receiver)
    w = worker(sessions, clock, ops, max_idle_s=0.5)
    w.start()
    try:
        add(sessions, clock, [ops], notice(1))
        clock.advance(WAIT_S)
        wait_until(receiver.taken, what="the notice at the receiver")
        wait_until(lambda: rows(sessions)[0].state == "sent", what="the row marked sent")
    finally:
        w.stop()
    assert len(receiver.taken()) == 1 and w.sent == 1
