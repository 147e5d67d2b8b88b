"""The quarantine stays bounded (issue 6, item 2): a payload prefix with its size and SHA-256,
repeats folded into a count, an hourly budget of new rows per source, and every refused tap still
answered. The whole pipeline in-process with a fake link and a fake clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from storage.db import session_factory
from storage.models import QuarantinedMessage
from storage.models.ingest import QuarantineBudget
from storage.quarantine import KEEP_BYTES
from tests.support.rig import Rig, make_rig

SITE = "liyuan"
READER = "rdr-h02"
TAP = f"patrol/v1/{SITE}/reader/{READER}/tap"
ACK = f"/reader/{READER}/ack"


class QuarantineRig(Rig):
    def rows(self) -> list[QuarantinedMessage]:
        with session_factory(self.engine)() as s:
            return list(s.scalars(select(QuarantinedMessage).order_by(QuarantinedMessage.id)))

    def budgets(self) -> dict[str, tuple[int, int]]:
        with session_factory(self.engine)() as s:
            return {b.bucket: (b.stored, b.over) for b in s.scalars(select(QuarantineBudget))}

    def refusals(self) -> list[tuple[bool, str]]:
        return [(a["ok"], a["reason"]) for _, a in self.link.published("/ack")]


@pytest.fixture
def rig(engine: Engine, db_url: str) -> Iterator[QuarantineRig]:
    base = make_rig(engine, db_url, quarantine_budget_per_hour=3)
    yield QuarantineRig(base.gateway, base.link, base.clock, base.engine)


def test_a_large_rejected_payload_keeps_a_prefix_with_its_size_and_sha256(rig: QuarantineRig) -> None:
    """Issue 6 item 2: a 5 MB payload was kept whole; now only KEEP_BYTES of it, with what proves
    which payload it was. The tap is still answered red (CONTRACT.md, "What bad input gets")."""
    payload = b'{"id": "big", "pad": "' + b"x" * 40_000 + b'"}'
    rig.link.inject(TAP, payload)
    rig.gateway.pump()
    [row] = rig.rows()
    assert (row.reason, row.size, row.count) == ("too_large", len(payload), 1)
    assert row.payload == payload[:KEEP_BYTES] and len(row.payload) == KEEP_BYTES == 4096
    assert row.sha256 == hashlib.sha256(payload).hexdigest()
    assert rig.refusals() == [(False, "too_large")]
    assert rig.link.acked == [1]


def test_repeats_of_one_rejection_fold_into_one_row_with_a_count(rig: QuarantineRig) -> None:
    """The same bad bytes from one device, again and again (and redelivered): one row, counted,
    first and last seen; each one answered and acked. Folding costs no budget."""
    first = rig.clock.now()
    for _ in range(4):
        rig.link.inject(TAP, b"{oops")
    rig.gateway.pump()
    rig.clock.advance(timedelta(minutes=5))
    for _ in range(6):
        rig.link.inject(TAP, b"{oops")
    rig.gateway.pump()
    [row] = rig.rows()
    assert (row.count, row.received_at, row.last_seen) == (10, first, first + timedelta(minutes=5))
    assert rig.refusals() == [(False, "bad_json")] * 10
    assert rig.link.acked == list(range(1, 11))
    assert rig.budgets() == {f"device:{SITE}/{READER}": (1, 0)}


def test_the_same_bytes_refused_for_another_reason_or_on_another_topic_is_another_row(rig: QuarantineRig) -> None:
    rig.link.inject(TAP, b"{oops")
    rig.link.inject(f"patrol/v1/{SITE}/reader/rdr-h03/tap", b"{oops")
    rig.gateway.pump()
    assert [r.device_code for r in rig.rows()] == [READER, "rdr-h03"]


def test_a_device_over_its_hourly_budget_is_counted_not_kept_and_still_answered(rig: QuarantineRig) -> None:
    """Issue 6 item 2: 50,000 distinct bad payloads were 50,000 rows. Past the budget (3 here) a
    device's rejections are only counted on its budget row; its taps are answered every time; the
    next hour it has a budget again."""
    for i in range(10):
        rig.link.inject(TAP, f'{{"id": "f{i}", "uid": "zz"}}'.encode())
    rig.gateway.pump()
    assert len(rig.rows()) == 3
    assert rig.budgets() == {f"device:{SITE}/{READER}": (3, 7)}
    assert rig.refusals() == [(False, "bad_schema")] * 10
    assert rig.link.acked == list(range(1, 11))

    rig.link.inject(TAP, b'{"id": "f0", "uid": "zz"}')  # over budget even a repeat is only counted:
    rig.gateway.pump()  # a flooding device costs one budget-row update per batch, no quarantine row
    assert [r.count for r in rig.rows()] == [1, 1, 1]
    assert rig.budgets() == {f"device:{SITE}/{READER}": (3, 8)}

    rig.clock.advance(timedelta(hours=1))
    rig.link.inject(TAP, b'{"id": "next-hour", "uid": "zz"}')
    rig.gateway.pump()
    assert len(rig.rows()) == 4


def test_unknown_devices_share_their_sites_budget_and_unknown_sites_share_one(rig: QuarantineRig) -> None:
    """Inventing device ids buys no storage: devices that are not registered are budgeted together
    per registered site, everything else (unknown sites, topics outside the contract) in one."""
    for i in range(5):
        rig.link.inject(f"patrol/v1/{SITE}/reader/ghost-{i}/tap", b"{oops")
        rig.link.inject(f"patrol/v1/nowhere-{i}/reader/ghost/tap", b"{oops")
        rig.link.inject(f"not/the/contract/{i}", b"{oops")
    rig.gateway.pump()
    assert rig.budgets() == {f"site:{SITE}": (3, 2), "other": (3, 7)}
    assert len(rig.rows()) == 6
    assert len(rig.refusals()) == 10, "every tap on a reader topic is answered"
