"""Rejected input: kept once per delivery (a redelivery finds it kept), counted, and for a tap
answered every time, so the reader shows red instead of nothing (CONTRACT.md, "What bad input gets")."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.taps import refusal
from gateway.effects import Effects, Reply
from gateway.messages import Rejected
from storage.message_log import quarantine, quarantine_key


def handle_rejected(session: Session, rejected: list[Rejected]) -> Effects:
    effects = Effects()
    if not rejected:
        return effects
    keys = [quarantine_key(r.raw.topic, r.raw.payload) for r in rejected]
    stored = quarantine(
        session,
        [
            {
                "dedup_key": k,
                "received_at": r.raw.received_at,
                "topic": r.raw.topic,
                "site_code": r.topic.site if r.topic else None,
                "device_code": r.topic.device if r.topic else None,
                "reason": r.reason.value,
                "detail": r.detail[:2000],
                "payload": r.raw.payload,
            }
            for k, r in zip(keys, rejected, strict=True)
        ],
    )
    for k, r in zip(keys, rejected, strict=True):
        if k in stored:
            stored.discard(k)  # a second copy in this batch is a duplicate
            effects.quarantined.append(r)
        else:
            effects.duplicates += 1
        if r.answer_reader and r.topic is not None:
            effects.replies.append(Reply(r.topic.site, r.topic.device, refusal(r.msg_id, r.reason.value)))
    return effects
