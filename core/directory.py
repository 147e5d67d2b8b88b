"""An in-memory, read-only view of the site model: what a device or tag UID stands for.

The gateway resolves every tap against it without a database round trip; it is rebuilt from the
database when a site file is loaded or an unknown device shows up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from core.contract import SensorKind
from core.escalation import DutyShift

#: The one list of device kinds: readers here, sensors with their readings' schemas in the contract.
ReaderKind = Literal["handheld_reader", "fixed_reader"]
DeviceKind = Literal[ReaderKind, SensorKind]
READER_KINDS = frozenset(get_args(ReaderKind))
SENSOR_KINDS = frozenset(get_args(SensorKind))


@dataclass(frozen=True, slots=True)
class Named:
    id: int
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    id: int
    site_id: int
    site_code: str
    code: str
    kind: str
    location_id: int | None
    holder_id: int | None
    # where a mounted device is, for alarms' roll-ups, routing and telemetry tags
    building_id: int | None = None
    building: str | None = None  # the building's code
    floor: int | None = None  # 1 = ground floor, -1 = first basement
    location: str | None = None  # the location's code


@dataclass(frozen=True, slots=True)
class TagEntry:
    uid: str
    location_id: int | None
    staff_id: int | None


@dataclass(frozen=True, slots=True)
class SiteRules:
    timezone: str
    alarm_rules: dict[str, Any]
    patrol: bool = False  # the site has patrol plans: taps are judged against rounds (issue 8)
    shifts: tuple[DutyShift, ...] = ()  # the roster (core.escalation), read once with the directory


@dataclass(frozen=True)
class Directory:
    """Everything the gateway needs to resolve messages, for every site."""

    devices: dict[tuple[str, str], DeviceEntry] = field(default_factory=dict)  # (site code, device code)
    tags: dict[tuple[int, str], TagEntry] = field(default_factory=dict)  # (site id, UPPER uid)
    locations: dict[int, Named] = field(default_factory=dict)
    staff: dict[int, Named] = field(default_factory=dict)
    #: per site id: its timezone and its site file's `alarm_rules:` section as stored (JSON)
    site_rules: dict[int, SiteRules] = field(default_factory=dict)

    def device(self, site: str, code: str) -> DeviceEntry | None:
        return self.devices.get((site, code))

    def tag(self, site_id: int, uid: str) -> TagEntry | None:
        return self.tags.get((site_id, uid.upper()))
