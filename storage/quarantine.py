"""Keeping rejected input bounded: a payload prefix with its size and digest, repeats folded into
one row, and an hourly budget of new rows per source.

Why: one device sending garbage at full speed added 50,000 rows (18 MB) in 24 s, and one 5 MB
payload was kept whole. Now a source adds at most `budget` rows an hour, each at most
KEEP_BYTES of payload, TOPIC_CHARS of topic and DETAIL_CHARS of detail; what comes past the
budget is counted on the source's budget row (and the source shows as flagged), never stored.

Sources (buckets): a registered device is its own; a device that is not registered is budgeted
with the other unknown devices of its site (a registered site), and everything else (unknown
sites, topics outside the contract) shares one bucket, so inventing device ids buys no storage.

Locks, in this order in every transaction: the budget rows of the batch's sources (bucket order),
then quarantine rows; a quarantine row is only written under its source's budget row lock, so two
gateways cannot deadlock on them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from storage.db import upsert_insert
from storage.models import Device, QuarantinedMessage, Site
from storage.models.ingest import QuarantineBudget

KEEP_BYTES = 4096  # of a rejected payload; the contract's limit is 16 KiB, enough to see what is wrong
TOPIC_CHARS = 1024
DETAIL_CHARS = 2000
WINDOW = timedelta(hours=1)
OTHER = "other"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected delivery, as storage needs it (the gateway's `Rejected` stays in the gateway)."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    site: str | None
    device: str | None
    received_at: datetime
    digest: str = field(init=False)  # SHA-256 of the whole payload, hashed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.payload).hexdigest())


@dataclass
class Kept:
    """What became of each rejection of a call, by its index in the call's sequence."""

    added: list[int] = field(default_factory=list)  # the first of its kind: a new row
    folded: list[int] = field(default_factory=list)  # counted on a row already kept (or added just now)
    over: list[int] = field(default_factory=list)  # only counted: its source is over budget
    newly_over: list[str] = field(default_factory=list)  # sources that went over budget in this call


def fold_key(topic: str, reason: str, digest: str) -> str:
    """Repeats of one rejection from one source: same topic (site, device, channel), same reason,
    same bytes. A redelivery is such a repeat, so it finds the row; a device changing one byte
    (a fresh id) makes a new row, which the budget bounds."""
    raw = "\x00".join((topic, reason, digest)).encode("utf-8", errors="replace")
    return hashlib.sha256(raw).hexdigest()


def window_start(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def buckets(session: Session, rejections: Sequence[Rejection]) -> list[str]:
    """The budget bucket of each rejection (see the module docstring), from the database's devices."""
    sites = {r.site for r in rejections if r.site}
    pairs = {(r.site, r.device) for r in rejections if r.site and r.device}
    known_sites: set[str] = set()
    known_devices: set[tuple[str, str]] = set()
    if sites:
        known_sites = set(session.scalars(select(Site.code).where(Site.code.in_(sites))))
    if pairs:
        rows = session.execute(
            select(Site.code, Device.code)
            .join(Device, Device.site_id == Site.id)
            .where(tuple_(Site.code, Device.code).in_(sorted(pairs)))
        )
        known_devices = {(s, d) for s, d in rows}
    out = []
    for r in rejections:
        if r.site and r.device and (r.site, r.device) in known_devices:
            out.append(f"device:{r.site}/{r.device}")
        elif r.site in known_sites:
            out.append(f"site:{r.site}")
        else:
            out.append(OTHER)
    return out


def keep(session: Session, rejections: Sequence[Rejection], budget_per_hour: int) -> Kept:
    """Fold repeats into their rows and add rows for new rejections while their source has budget
    left this hour; count the rest on the source's budget row. A source already over budget costs
    one budget-row update per batch: its rejections are only counted, not even folded, so a flood
    reads and writes no quarantine rows. Inside the caller's transaction."""
    kept = Kept()
    if not rejections:
        return kept
    now = max(r.received_at for r in rejections)
    where = buckets(session, rejections)
    by_bucket: dict[str, list[int]] = {}
    for i, bucket in enumerate(where):
        by_bucket.setdefault(bucket, []).append(i)
    rows = _lock_budgets(session, by_bucket, rejections, window_start(now))
    open_ = [i for i, bucket in enumerate(where) if rows[bucket].stored < budget_per_hour]
    keys = {i: fold_key(rejections[i].topic, rejections[i].reason, rejections[i].digest) for i in open_}
    existing: set[str | None] = set()
    if keys:
        wanted = set(keys.values())
        existing = set(
            session.scalars(select(QuarantinedMessage.dedup_key).where(QuarantinedMessage.dedup_key.in_(wanted)))
        )
    firsts: dict[str, int] = {}  # new key → index of its first rejection
    for i, k in keys.items():
        if k not in existing and k not in firsts:
            firsts[k] = i
    room = {b: max(0, budget_per_hour - row.stored) for b, row in rows.items()}
    admitted: set[str] = set()
    for k, i in firsts.items():
        if room[where[i]] > 0:
            room[where[i]] -= 1
            admitted.add(k)
    repeats = Counter(k for k in keys.values() if k in existing or k in admitted)
    _fold(session, {k: n for k, n in repeats.items() if k in existing}, now)
    # in arrival order, so ids follow first-seen; two transactions adding one key are serialised by its budget row
    _add(session, [(rejections[i], k, repeats[k], where[i]) for k, i in firsts.items() if k in admitted])
    for i in range(len(rejections)):
        key = keys.get(i)
        if key is None or not (key in existing or key in admitted):
            kept.over.append(i)
        elif key in admitted and firsts[key] == i:
            kept.added.append(i)
        else:
            kept.folded.append(i)
    added = Counter(where[i] for i in kept.added)
    over = Counter(where[i] for i in kept.over)
    for bucket, row in rows.items():
        if over[bucket] and row.over == 0:
            kept.newly_over.append(bucket)
        session.execute(
            update(QuarantineBudget)
            .where(QuarantineBudget.id == row.id)
            .values(
                stored=QuarantineBudget.stored + added[bucket],
                over=QuarantineBudget.over + over[bucket],
                **({"last_over_at": now} if over[bucket] else {}),
            )
        )
    return kept


@dataclass(frozen=True, slots=True)
class _Budget:
    id: int
    stored: int
    over: int


def _lock_budgets(
    session: Session, by_bucket: dict[str, list[int]], rejections: Sequence[Rejection], start: datetime
) -> dict[str, _Budget]:
    """This hour's budget row of each source in the batch, created if missing, locked (in bucket
    order) so two gateways cannot both spend the last of a budget."""
    if not by_bucket:
        return {}
    names = sorted(by_bucket)
    fresh = []
    for bucket in names:
        first = rejections[by_bucket[bucket][0]]
        named = bucket != OTHER
        fresh.append(
            {
                "bucket": bucket,
                "window_start": start,
                "site_code": first.site if named else None,
                "device_code": first.device if bucket.startswith("device:") else None,
                "stored": 0,
                "over": 0,
            }
        )
    session.execute(
        upsert_insert(session, QuarantineBudget).on_conflict_do_nothing(index_elements=["bucket", "window_start"]),
        fresh,
    )
    b = QuarantineBudget
    stmt = (
        select(b.id, b.bucket, b.stored, b.over).where(b.bucket.in_(names), b.window_start == start).order_by(b.bucket)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {r.bucket: _Budget(r.id, r.stored, r.over) for r in session.execute(stmt)}


def _fold(session: Session, repeats: dict[str, int], now: datetime) -> None:
    if not repeats:
        return
    q = cast(Table, QuarantinedMessage.__table__)
    stmt = (
        update(q)
        .where(q.c.dedup_key == bindparam("b_key"))
        .values(count=q.c.count + bindparam("b_n"), last_seen=bindparam("b_at"))
    )
    session.execute(stmt, [{"b_key": k, "b_n": n, "b_at": now} for k, n in sorted(repeats.items())])


def _add(session: Session, new: list[tuple[Rejection, str, int, str]]) -> None:
    """Insert the new rows; one that another gateway added meanwhile is folded into instead."""
    if not new:
        return
    rows = [
        {
            "dedup_key": k,
            "received_at": r.received_at,
            "last_seen": r.received_at,
            "count": n,
            "topic": r.topic[:TOPIC_CHARS],
            "site_code": r.site,
            "device_code": r.device,
            "source": source,
            "reason": r.reason,
            "detail": r.detail[:DETAIL_CHARS],
            "payload": r.payload[:KEEP_BYTES],
            "size": len(r.payload),
            "sha256": r.digest,
        }
        for r, k, n, source in new
    ]
    stmt = upsert_insert(session, QuarantinedMessage)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dedup_key"],
        set_={"count": QuarantinedMessage.count + stmt.excluded.count, "last_seen": stmt.excluded.last_seen},
    )
    session.execute(stmt, rows)
