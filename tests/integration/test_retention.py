"""Raw telemetry and quarantined input age out of the relational store; sign-ins, taps and events stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from core.deadlines import Deadline
from gateway.housekeeping import PRUNE_QUARANTINE, housekeeping_handlers
from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage, QuarantinedMessage
from storage.models.ingest import QuarantineBudget
from storage.retention import prune_quarantine, prune_telemetry

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_old_telemetry_is_pruned_in_bounded_steps(engine: Engine) -> None:
    with transaction(session_factory(engine)) as s:
        device = s.scalars(select(Device).where(Device.code == "gas-b1-shop101")).one()
        for i, (kind, age_days) in enumerate(
            [("telemetry", 40)] * 5 + [("telemetry", 1)] * 2 + [("event", 400), ("tap", 400)]
        ):
            at = NOW - timedelta(days=age_days)
            s.add(InboundMessage(site_id=device.site_id, device_id=device.id, msg_id=f"m{i}", kind=kind,
                                 device_ts=at, received_at=at, payload="{}"))  # fmt: skip
    cutoff = NOW - timedelta(days=30)
    with transaction(session_factory(engine)) as s:
        assert prune_telemetry(s, cutoff, limit=3) == 3
    with transaction(session_factory(engine)) as s:
        assert prune_telemetry(s, cutoff, limit=3) == 2
    with session_factory(engine)() as s:
        left = dict(s.execute(select(InboundMessage.kind, func.count()).group_by(InboundMessage.kind)).all())
    assert left == {"telemetry": 2, "event": 1, "tap": 1}


def test_quarantine_rows_age_out_by_when_they_were_last_seen(engine: Engine) -> None:
    """Issue 6 item 2: the quarantine has a retention. A row whose rejection keeps repeating stays
    (last seen recently); old budget rows go with the old rows, in bounded steps."""
    cutoff = NOW - timedelta(days=14)
    with transaction(session_factory(engine)) as s:
        for i, (first_days, last_days) in enumerate([(20, 20), (20, 15), (20, 1), (2, 2)]):
            s.add(QuarantinedMessage(dedup_key=f"k{i}", received_at=NOW - timedelta(days=first_days),
                                     last_seen=NOW - timedelta(days=last_days), count=1, topic="t", reason="bad_json",
                                     detail="", payload=b"{", size=1))  # fmt: skip
        for i, days in enumerate([30, 20, 1]):
            s.add(QuarantineBudget(bucket="other", window_start=NOW - timedelta(days=days, hours=i), stored=1, over=0))
    with transaction(session_factory(engine)) as s:
        assert prune_quarantine(s, cutoff, limit=1) == 2  # one of each
    with transaction(session_factory(engine)) as s:
        assert prune_quarantine(s, cutoff, limit=5) == 2
    with transaction(session_factory(engine)) as s:
        assert prune_quarantine(s, cutoff, limit=5) == 0
    with session_factory(engine)() as s:
        assert sorted(k or "" for k in s.scalars(select(QuarantinedMessage.dedup_key))) == ["k2", "k3"]
        assert s.scalar(select(func.count()).select_from(QuarantineBudget)) == 1


def test_housekeeping_prunes_the_quarantine_by_its_own_retention(engine: Engine) -> None:
    """The chore runs as a durable deadline like the telemetry one, with quarantine_retention_days."""
    handlers = housekeeping_handlers(retention_days=30, quarantine_days=3)
    with transaction(session_factory(engine)) as s:
        for i, days in enumerate([5, 1]):
            at = NOW - timedelta(days=days)
            s.add(QuarantinedMessage(dedup_key=f"h{i}", received_at=at, last_seen=at, count=1, topic="t",
                                     reason="bad_json", detail="", payload=b"{", size=1))  # fmt: skip
    chore = Deadline(id=1, kind=PRUNE_QUARANTINE, subject="all", due_at=NOW, payload={}, attempts=0)
    with transaction(session_factory(engine)) as s:
        assert handlers[PRUNE_QUARANTINE](s, chore, NOW) == ()
    with session_factory(engine)() as s:
        assert list(s.scalars(select(QuarantinedMessage.dedup_key))) == ["h1"]
