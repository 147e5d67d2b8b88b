"""Device status (online, battery, signal; the Last Will): the newest observation wins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.device_clock import judge_device_time
from core.ingest import status_supersedes
from core.outbound import DeviceStatusEvent, Outbound
from gateway.effects import Effects
from gateway.handlers.base import Context
from gateway.handlers.readings import status_changed
from gateway.messages import Accepted
from storage.incident_notes import Told
from storage.message_log import lock_rows
from storage.models import Device


def handle_status(session: Session, msgs: list[Accepted], ctx: Context) -> Effects:
    """Not logged by id (status has none); applied in arrival order under the devices' row locks,
    each only if it is not older than what is held, so a redelivery changes nothing."""
    effects = Effects()
    ids = {m.device.id for m in msgs}
    lock_rows(session, Device, ids)
    held = {r.id: r.status_at for r in session.execute(select(Device.id, Device.status_at).where(Device.id.in_(ids)))}
    applied: list[Accepted] = []
    for m in msgs:
        status = m.model
        # a clock a year ahead must not pin the status there: outside the window, receipt time
        at = judge_device_time(status.ts, m.raw.received_at, ctx.clock_window).at if status.ts else m.raw.received_at
        if not status_supersedes(held.get(m.device.id), at):
            continue
        values: dict[str, Any] = {"online": status.online, "status_at": at}
        for column, value in (("battery_pct", status.battery_pct), ("rssi", status.rssi), ("firmware", status.fw)):
            if value is not None:
                values[column] = value
        session.execute(update(Device).where(Device.id == m.device.id).values(**values))
        held[m.device.id] = at
        applied.append(m)
        event = DeviceStatusEvent(device=m.device.code, kind=m.device.kind, **values)
        effects.events.append(Outbound(m.device.site_code, event))
    _alarms(session, applied, ctx, effects)  # a status older than the one held is no news for alarms either
    return effects


def _alarms(session: Session, msgs: list[Accepted], ctx: Context, effects: Effects) -> None:
    """Offline (a Last Will, `online: false`) and low battery, judged at the broker's receipt time
    (a Last Will has no `ts` of its own); all offline rule states first, then all battery ones,
    each in device order, so two gateways lock them in the same order."""
    told = Told()
    # a retained status replayed at (re)subscription is old news: the alarm it meant was judged then
    live = [m for m in msgs if not m.raw.retain]
    ordered = sorted(live, key=lambda m: (m.device.id, m.raw.received_at))
    for m in ordered:
        status_changed(session, ctx, told, m.device, "offline", m.raw.received_at, online=m.model.online)
    for m in ordered:
        if m.model.battery_pct is not None:
            at, pct = m.raw.received_at, m.model.battery_pct
            status_changed(session, ctx, told, m.device, "low_battery", at, online=True, battery_pct=pct)
    effects.events += told.events
