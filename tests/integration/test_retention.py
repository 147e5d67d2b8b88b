"""Raw telemetry ages out of the relational store; sign-ins, taps and events stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.db import session_factory, transaction
from storage.models import Device, InboundMessage
from storage.retention import prune_telemetry

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
