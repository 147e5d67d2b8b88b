"""Reading a site file and reporting every problem with the line it is on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.alarm_rules_config import check_devices
from storage.sitefile.schema import SiteFile

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"line {self.line}: " if self.line else ""
        return f"{at}{self.where}: {self.message}" if self.where else f"{at}{self.message}"


class SiteFileError(ValueError):
    """The site file cannot be loaded; `problems` says where and why, nothing was written."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s), nothing was loaded:\n{listing}")


def _to_data(node: yaml.Node, path: Path_, lines: dict[Path_, int], scalars: yaml.SafeLoader) -> Any:
    """Plain data from the node tree, noting the line of every path for error messages."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = scalars.construct_object(key_node)
            out[key] = _to_data(value_node, (*path, key), lines, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, i), lines, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node)


def _line_of(path: Path_, lines: dict[Path_, int]) -> int | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def parse_site_text(text: str, source: str = "<site file>") -> SiteFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SiteFileError(source, [Problem(line, "", f"not valid YAML: {exc.problem}")]) from exc
    if root is None:
        raise SiteFileError(source, [Problem(None, "", "the file is empty: see docs/site-file.md")])
    lines: dict[Path_, int] = {}
    data = _to_data(root, (), lines, yaml.SafeLoader(""))
    try:
        site = SiteFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(_line_of(tuple(e["loc"]), lines), ".".join(str(p) for p in e["loc"]), e["msg"])
            for e in exc.errors()
        ]
        raise SiteFileError(source, problems) from exc
    problems = check_references(site, lines)
    if problems:
        raise SiteFileError(source, problems)
    return site


def parse_site_file(path: Path) -> SiteFile:
    return parse_site_text(path.read_text(encoding="utf-8"), str(path))


def check_references(site: SiteFile, lines: dict[Path_, int]) -> list[Problem]:
    """Duplicate codes and UIDs, references to things not in the file, floors out of range."""
    problems: list[Problem] = []

    def bad(path: Path_, message: str) -> None:
        problems.append(Problem(_line_of(path, lines), ".".join(str(p) for p in path), message))

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
    return problems


def _claim(uids: dict[str, str], uid: str, owner: str, path: Path_, bad: Any) -> None:
    if uid in uids:
        bad(path, f"tag UID {uid} is already used by {uids[uid]}")
    else:
        uids[uid] = owner
