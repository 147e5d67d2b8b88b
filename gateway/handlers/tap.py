"""Taps: the sign-in (签到) and the reader's verdict, decided once, after the log insert.

Only a tap whose log row is new is judged, under row locks of the guards it concerns (the place
where a round's state will be read), and its decision is stored as the sign-in row. Every copy
of the tap, new or redelivered, is answered from that stored decision. A tap reusing another
tap's id is answered `id_conflict` by the log insert, never with the other tap's verdict. A
sign-in counts at the reader's `ts`, or at the receipt time when the reader's clock is off
(core.device_clock); the answer then says so.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from core.contract import RejectReason, TapPayload
from core.escalation import duty_check
from core.ingest import first_of_each
from core.outbound import Name, Outbound, SignInBatch, SignInEvent
from core.taps import TapDecision, decide_tap
from gateway.effects import Effects, Reply
from gateway.handlers.base import Context, Logged, key, log_new
from gateway.messages import Accepted
from storage.bulk_insert import insert_signins
from storage.message_log import MessageKey, lock_rows, stored_decisions
from storage.models import Staff
from storage.round_events import round_event
from storage.round_taps import RoundTap, judge_round_taps

log = logging.getLogger(__name__)


def handle_taps(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    effects = Effects()
    logged = log_new(session, msgs, ctx, effects)
    new = [m for m in first_of_each(msgs, key) if key(m) in logged.new]
    # who and where, from the directory; then the guards' rows are locked before anything that
    # depends on their rounds is judged (issue 8's round state is read here, under the lock)
    decisions = {
        key(m): replace(decide_tap(m.device, m.model.uid, ctx.directory), clock_skew_s=logged.times[key(m)].skew_s)
        for m in new
    }
    lock_rows(session, Staff, (d.guard_id for d in decisions.values() if d.guard_id is not None))
    _judge_rounds(session, new, decisions, logged, ctx, effects)
    if new:
        insert_signins(session, [_signin_row(logged, m, decisions[key(m)]) for m in new])
        _count_and_publish(new, decisions, ctx, effects)
    answered = [m for m in msgs if not logged.conflicted(m)]  # conflicts: answered `id_conflict` already
    decisions.update(stored_decisions(session, (k for m in answered if (k := key(m)) not in decisions)))
    for m in answered:
        effects.replies.append(
            Reply(m.device.site_code, m.device.code, _decision(decisions, m).answer(m.msg_id, ctx.directory))
        )
    return effects


def _judge_rounds(
    session: Session,
    new: list[Accepted],
    decisions: dict[MessageKey, TapDecision],
    logged: Logged,
    ctx: Context,
    effects: Effects,
) -> None:
    """On a site with patrol plans a known checkpoint is not enough: the tap is judged against the
    guard's round (storage.round_taps), under the guards' locks taken above."""
    by_site: dict[int, list[RoundTap]] = defaultdict(list)
    for m in new:
        d = decisions[key(m)]
        rules = ctx.directory.site_rules.get(m.device.site_id)
        if not (d.ok and rules is not None and rules.patrol and d.guard_id is not None and d.location_id is not None):
            continue
        guard, place = ctx.directory.staff.get(d.guard_id), ctx.directory.locations.get(d.location_id)
        code, checkpoint = guard.code if guard else "", place.code if place else ""
        by_site[m.device.site_id].append(
            RoundTap(key(m), d.guard_id, code, d.location_id, checkpoint, logged.times[key(m)].at)
        )
    for site_id, taps in by_site.items():
        rules = ctx.directory.site_rules[site_id]
        duty = duty_check(rules.shifts, rules.timezone)
        judged = judge_round_taps(session, taps, decisions, duty, ctx.now)
        decisions.update(judged.decisions)
        site_code = next(m.device.site_code for m in new if m.device.site_id == site_id)
        places = {p.location_id for r in judged.changed for p in r.points if p.location_id is not None}
        names = {i: Name(zh=n.name_zh, en=n.name_en) for i in places if (n := ctx.directory.locations.get(i))}
        effects.events += [
            Outbound(site_code, round_event(session, r, "progress", ctx.now, names=names)) for r in judged.changed
        ]


def _decision(decisions: dict[MessageKey, TapDecision], msg: Accepted) -> TapDecision:
    found = decisions.get(key(msg))
    if found is None:  # logged by a gateway that stored no sign-in: say so rather than guess
        log.error("tap %s of device %s is logged without a sign-in", msg.msg_id, msg.device.code)
        return TapDecision(False, RejectReason.INTERNAL_ERROR.value, None, None)
    return found


def _count_and_publish(
    new: list[Accepted], decisions: dict[MessageKey, TapDecision], ctx: Context, effects: Effects
) -> None:
    effects.signins += len(new)
    effects.signins_refused += sum(1 for m in new if not decisions[key(m)].ok)
    by_site: dict[str, list[SignInEvent]] = defaultdict(list)
    for m in new:
        tap: TapPayload = m.model
        event = decisions[key(m)].event(m.device.code, tap.uid.upper(), tap.ts, m.raw.received_at, ctx.directory)
        by_site[m.device.site_code].append(event)
    for site, items in by_site.items():  # one message per batch and site: half the MQTT work per tap
        effects.events.append(Outbound(site, SignInBatch(items=items)))


def _signin_row(logged: Logged, msg: Accepted, decision: TapDecision) -> dict[str, Any]:
    return {
        "message_id": logged.new[key(msg)],
        "site_id": msg.device.site_id,
        "device_id": msg.device.id,
        "guard_id": decision.guard_id,
        "location_id": decision.location_id,
        "tag_uid": msg.model.uid.upper(),
        "tapped_at": logged.times[key(msg)].at,  # the reader's ts, or the receipt time if its clock is off
        "received_at": msg.raw.received_at,
        "ok": decision.ok,
        "reason": decision.reason,
        "round_id": decision.round_id,
        "result": decision.result,
        "next_location_id": decision.next_location_id,
    }
