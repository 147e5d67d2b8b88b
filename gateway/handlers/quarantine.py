"""Rejected input: kept bounded (a payload prefix with its size and SHA-256, repeats folded into a
count, an hourly budget of new rows per source: storage/quarantine.py), counted, and for a tap
answered every time, over budget too, so the reader shows red instead of nothing (CONTRACT.md,
"What bad input gets")."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from core.taps import refusal
from gateway.effects import Effects, Reply
from gateway.messages import Rejected
from storage.quarantine import Rejection, keep

log = logging.getLogger(__name__)


def handle_rejected(session: Session, rejected: list[Rejected], budget_per_hour: int) -> Effects:
    """`effects.quarantined` holds the rejections that added a row; a repeat folded into a row
    (a redelivery, or the device sending the same bytes again) counts as a duplicate; one over
    its source's budget only in the budget row."""
    effects = Effects()
    if not rejected:
        return effects
    outcome = keep(
        session,
        [
            Rejection(
                topic=r.raw.topic,
                payload=r.raw.payload,
                reason=r.reason.value,
                detail=r.detail,
                site=r.topic.site if r.topic else None,
                device=r.topic.device if r.topic else None,
                received_at=r.raw.received_at,
            )
            for r in rejected
        ],
        budget_per_hour,
    )
    effects.quarantined += [rejected[i] for i in outcome.added]
    effects.duplicates += len(outcome.folded)
    for bucket in outcome.newly_over:
        log.warning(
            "%s is over its rejection budget (%d new quarantine rows an hour): further rejections "
            "this hour are counted, not kept; see GET /api/v1/quarantine/summary",
            bucket,
            budget_per_hour,
        )
    for r in rejected:
        if r.answer_reader and r.topic is not None:
            effects.replies.append(Reply(r.topic.site, r.topic.device, refusal(r.msg_id, r.reason.value)))
    return effects
