"""All tables; importing this package registers them on `Base.metadata`."""

from storage.models.auth import ApiToken, User
from storage.models.base import Base, UTCDateTime, utcnow
from storage.models.deadline import DeadlineRow
from storage.models.incidents import (
    Alarm,
    AlarmSnooze,
    OutboxMessage,
    RuleState,
    SensorLatest,
    Ticket,
    TicketEvent,
    TicketStep,
)
from storage.models.ingest import InboundMessage, QuarantinedMessage, SignIn
from storage.models.patrol import Finding, Round, RoundHandover, RoundPoint
from storage.models.site import Building, Department, Device, Floor, Location, Site, Staff, Tag

__all__ = [
    "Alarm",
    "AlarmSnooze",
    "ApiToken",
    "Base",
    "Building",
    "DeadlineRow",
    "Department",
    "Device",
    "Finding",
    "Floor",
    "InboundMessage",
    "Location",
    "OutboxMessage",
    "QuarantinedMessage",
    "Round",
    "RoundHandover",
    "RoundPoint",
    "RuleState",
    "SensorLatest",
    "SignIn",
    "Site",
    "Staff",
    "Tag",
    "Ticket",
    "TicketEvent",
    "TicketStep",
    "UTCDateTime",
    "User",
    "utcnow",
]
