"""What the gateway's handlers and deadline handlers need for incidents, built once per process:
the procedures, where notices go, where telemetry is written, and each device's alarm rule."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pydantic import ValidationError

from core.alarm_rules import AlarmRulesSpec, KindRule, resolve_rule
from core.config import Settings
from core.directory import DeviceEntry, Directory, SiteRules
from gateway.telemetry_sink import NullSink, TelemetrySink, sink_from_settings
from storage.incident_notes import IncidentEnv
from storage.procedures import load_procedures

log = logging.getLogger(__name__)


class RuleBook:
    """Each device's resolved alarm rule (built-in → the site's defaults → the device's own), for
    the directory in use; rebuilt when the directory is reloaded, never per reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directory: Directory | None = None
        self._rules: dict[int, KindRule] = {}

    def rule(self, directory: Directory, device: DeviceEntry) -> KindRule:
        with self._lock:
            if directory is not self._directory:
                self._rules, self._directory = {}, directory
            found = self._rules.get(device.id)
            if found is None:
                found = self._rules[device.id] = rule_for(directory.site_rules.get(device.site_id), device)
            return found


def rule_for(site: SiteRules | None, device: DeviceEntry) -> KindRule:
    """Built-in → the site's defaults for the kind → the device's own override."""
    spec: AlarmRulesSpec | None = None
    if site is not None and site.alarm_rules:
        try:
            spec = AlarmRulesSpec.model_validate(site.alarm_rules)
        except ValidationError as exc:  # stored by an older version: the defaults, loudly
            log.error("site %s: stored alarm rules no longer validate, using defaults: %s", device.site_code, exc)
    return resolve_rule(spec, device.kind, device.code, timezone=site.timezone if site else None)


@dataclass
class Incidents:
    env: IncidentEnv
    sink: TelemetrySink = field(default_factory=NullSink)
    rules: RuleBook = field(default_factory=RuleBook)


_default: Incidents | None = None


def incidents_from_settings(settings: Settings) -> Incidents:
    """The company's procedures (refused at start if a file is wrong), its webhook targets and the
    telemetry store it named."""
    env = IncidentEnv(load_procedures(settings.procedures_dir), tuple(settings.webhook_targets))
    return Incidents(env, sink_from_settings(settings))


def default_incidents() -> Incidents:
    """The shipped procedures, no webhooks, telemetry in SQL: for tests and tools that build a
    gateway context without settings."""
    global _default
    if _default is None:
        _default = Incidents(IncidentEnv(load_procedures()))
    return _default
