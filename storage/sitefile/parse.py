"""Reading a site file and reporting every problem with the line it is on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.alarm_rules_config import check_devices
from core.patrol_plans import cross_check
from storage.sitefile.schema import SiteFile
from storage.yaml_lines import Lines, Problem, YamlFileError, parse_yaml, problem_at, validation_problems

Path_ = tuple[str | int, ...]


class SiteFileError(YamlFileError):
    """The site file cannot be loaded; `problems` says where and why, nothing was written."""

    def __init__(self, source: str, problems: list[Problem]):
        problems = [replace(p, source="") for p in problems]  # the message names the file once per line
        super().__init__(source, problems)
        self.source = source
        listing = "\n".join(f"  {source}: {p}" for p in problems)
        self.args = (f"{source} has {len(problems)} problem(s), nothing was loaded:\n{listing}",)


def parse_site_text(text: str, source: str = "<site file>") -> SiteFile:
    try:
        data, lines = parse_yaml(text, source, empty_hint="see docs/site-file.md")
        site = SiteFile.model_validate(data)
    except YamlFileError as exc:
        raise SiteFileError(source, exc.problems) from exc
    except ValidationError as exc:
        raise SiteFileError(source, validation_problems(exc, lines)) from exc
    problems = check_references(site, lines)
    if problems:
        raise SiteFileError(source, problems)
    return site


def parse_site_file(path: Path) -> SiteFile:
    return parse_site_text(path.read_text(encoding="utf-8"), str(path))


def check_references(site: SiteFile, lines: Lines) -> list[Problem]:
    """Duplicate codes and UIDs, references to things not in the file, floors out of range."""
    problems: list[Problem] = []

    def bad(path: Path_, message: str) -> None:
        problems.append(problem_at(path, lines, message))

    for section in ("departments", "buildings", "locations", "staff", "devices"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(site, section)):
            if item.code in seen:
                bad((section, i, "code"), f"code {item.code!r} is used twice in {section}")
            seen.add(item.code)
    departments = {d.code for d in site.departments}
    buildings = {b.code: b for b in site.buildings}
    locations = {loc.code for loc in site.locations}
    staff = {s.code: s for s in site.staff}
    uids: dict[str, str] = {}
    for i, loc in enumerate(site.locations):
        if loc.building is not None and loc.building not in buildings:
            bad(("locations", i, "building"), f"building {loc.building!r} is not in `buildings`")
        elif loc.building is not None and loc.floor is not None:
            b = buildings[loc.building]
            if not -b.floors_below <= loc.floor <= b.floors_above:
                bad(
                    ("locations", i, "floor"),
                    f"floor {loc.floor} is outside {b.code} (-{b.floors_below}..{b.floors_above})",
                )
        if loc.tag:
            _claim(uids, loc.tag, f"location {loc.code}", ("locations", i, "tag"), bad)
    for i, person in enumerate(site.staff):
        if person.department not in departments:
            bad(("staff", i, "department"), f"department {person.department!r} is not in `departments`")
        if person.badge:
            _claim(uids, person.badge, f"staff {person.code}", ("staff", i, "badge"), bad)
    for i, dev in enumerate(site.devices):
        if dev.holder is not None and dev.holder not in staff:
            bad(("devices", i, "holder"), f"holder {dev.holder!r} is not in `staff`")
        if dev.location is not None and dev.location not in locations:
            bad(("devices", i, "location"), f"location {dev.location!r} is not in `locations`")
    for message in check_devices(site.alarm_rules, {d.code: d.kind for d in site.devices}):
        code = message.split(":", 1)[0].rsplit(".", 1)[-1]
        bad(("alarm_rules", "devices", code), message.split(": ", 1)[1])
    for i, entry in enumerate(site.roster.root):
        if entry.staff not in staff:
            bad(("roster", i, "staff"), f"staff {entry.staff!r} is not in `staff`: add them there or fix the code")
    for ref in cross_check(site.routes, site.plans, locations, staff):
        bad(ref.path, ref.message)
    return problems


def _claim(uids: dict[str, str], uid: str, owner: str, path: Path_, bad: Any) -> None:
    if uid in uids:
        bad(path, f"tag UID {uid} is already used by {uids[uid]}")
    else:
        uids[uid] = owner
