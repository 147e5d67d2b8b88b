"""What a round's change tells screens (out/round/{id}, the live feed) and, for a missed checkpoint,
the control room's webhooks (issue 8 item 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.outbound import Name, RoundEvent, RoundPointState
from core.rounds import next_point
from core.webhooks import Notice
from storage.models import Location, Site
from storage.rounds import LoadedRound


def round_event(
    session: Session,
    loaded: LoadedRound,
    change: str,
    at: datetime,
    *,
    missed: Sequence[str] = (),
    actor: str = "system",
    names: Mapping[int, Name] | None = None,
) -> RoundEvent:
    """The round as it now is; `names` ({location id: name}, e.g. the directory's) spares the query
    for the checkpoints' names on the tap path."""
    row, value = loaded.row, loaded.value
    names = _names(session, [p.location_id for p in loaded.points]) if names is None else names
    return RoundEvent(
        change=change,
        id=row.id,
        plan=row.plan,
        route=row.route,
        area=row.area,
        guard=value.guard,
        state=row.state,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        completion_pct=row.completion_pct,
        lateness_s=row.lateness_s,
        next_checkpoint=next_point(value, at) if row.state == "in_progress" or row.state == "scheduled" else None,
        missed=list(missed),
        points=[
            RoundPointState(
                checkpoint=p.checkpoint,
                name=names.get(p.location_id) if p.location_id else None,
                result=p.result,
                due_at=p.due_at,
                signed_at=p.signed_at,
            )
            for p in sorted(loaded.points, key=lambda p: p.seq)
        ],
        alert_open=row.alert_open,
        actor=actor,
        at=at,
    )


def _names(session: Session, ids: Sequence[int | None]) -> dict[int, Name]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Location.id, Location.name_zh, Location.name_en).where(Location.id.in_(wanted)))
    return {i: Name(zh=zh, en=en) for i, zh, en in rows}


def missed_notice(event: RoundEvent, site: Site, now: datetime) -> Notice:
    """What webhooks are told of a round's missed checkpoints (`round_missed`)."""
    by_code = {p.checkpoint: p for p in event.points}
    places = [by_code[c].name or Name(zh=c, en=c) for c in event.missed if c in by_code]
    title = Name(
        zh=f"漏巡：{event.guard} {event.route} 巡查点 {'、'.join(p.zh for p in places)}",
        en=f"Missed checkpoint: {event.guard} on {event.route}: {', '.join(p.en for p in places)}",
    )
    lines = (Name(zh=f"完成率 {event.completion_pct:.0f}%", en=f"{event.completion_pct:.0f}% done"),)
    return Notice(kind="round_missed", site=site.code, title=title, at=now, lines=lines, severity="warning")
