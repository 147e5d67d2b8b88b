"""The site file: the demo site is realistic and valid; a bad file names the line and the problem."""

from __future__ import annotations

from collections import Counter

import pytest

from app.cli import DEMO_SITE
from storage.sitefile.parse import SiteFileError, parse_site_text
from storage.sitefile.schema import SiteFile

MINIMAL = """\
version: 1
site: {code: s1, name: {zh: 测试, en: Test}}
departments:
  - {code: security, name: {zh: 护管部, en: Security}}
buildings:
  - {code: B1, name: {zh: 1栋, en: Building 1}, floors_above: 18, floors_below: 1}
locations:
  - code: B1-F01-LOBBY
    name: {zh: 大堂, en: Lobby}
    type: lobby
    building: B1
    floor: 1
    tag: "04A1B2C3D4E5F6"
staff:
  - {code: G1, name: {zh: 张伟, en: Zhang Wei}, department: security, position: guard, badge: "04000000000001"}
devices:
  - {code: r1, kind: handheld_reader, name: {zh: 巡更棒, en: Reader}, holder: G1}
"""


def test_demo_site_is_a_realistic_compound(demo_site: SiteFile) -> None:
    tall = [b for b in demo_site.buildings if b.floors_above >= 18]
    assert len(tall) >= 6
    types = Counter(loc.type for loc in demo_site.locations)
    for needed in ("shop", "machine_room", "pipe_well", "fan_room", "telecom_room", "parking", "green_area"):
        assert types[needed] > 0, needed
    assert len({loc.building for loc in demo_site.locations if loc.type == "shop"}) >= 2
    assert sum(1 for loc in demo_site.locations if loc.tag) >= 150
    kinds = {d.kind for d in demo_site.devices}
    assert kinds == {
        "handheld_reader",
        "fixed_reader",
        "water_leak",
        "gas",
        "elevator",
        "electric_leak",
        "smoke",
        "door",
    }
    departments = {s.department for s in demo_site.staff}
    assert departments == {d.code for d in demo_site.departments}


def test_demo_site_file_parses_from_disk() -> None:
    assert parse_site_text(DEMO_SITE.read_text(encoding="utf-8")).site.code == "liyuan"


def test_minimal_file_parses() -> None:
    assert parse_site_text(MINIMAL).locations[0].tag == "04A1B2C3D4E5F6"


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("type: lobby", "type: ballroom", 10, "locations.0.type"),
        ("building: B1\n    floor: 1", "building: B9\n    floor: 1", 11, "building 'B9' is not in `buildings`"),
        ("floor: 1\n", "floor: 40\n", 12, "outside B1"),
        ('badge: "04000000000001"', 'badge: "04A1B2C3D4E5F6"', 15, "already used by location B1-F01-LOBBY"),
        ("holder: G1", "holder: G9", 17, "holder 'G9' is not in `staff`"),
        ("department: security", "department: nowhere", 15, "department 'nowhere'"),
        ("floors_above: 18", "floors_above: many", 6, "floors_above"),
        ("version: 1", "version: 2", 1, "version"),
        ("    type: lobby\n", "    type: lobby\n   oops: [\n", 11, "not valid YAML"),
    ],
)
def test_errors_name_the_line_and_the_problem(old: str, new: str, line: int, words: str) -> None:
    assert old in MINIMAL
    with pytest.raises(SiteFileError) as err:
        parse_site_text(MINIMAL.replace(old, new, 1), "site.yaml")
    problem = err.value.problems[0]
    assert problem.line == line, str(err.value)
    assert words in str(problem)
    assert "site.yaml" in str(err.value) and "nothing was loaded" in str(err.value)


def test_duplicate_codes_are_reported() -> None:
    text = MINIMAL + "  - {code: r1, kind: handheld_reader, name: {zh: 巡更棒, en: Reader}, holder: G1}\n"
    with pytest.raises(SiteFileError) as err:
        parse_site_text(text)
    assert any("used twice" in str(p) and p.line == 18 for p in err.value.problems)


def test_sensor_needs_a_location() -> None:
    text = MINIMAL + "  - {code: gas1, kind: gas, name: {zh: 燃气, en: Gas}}\n"
    with pytest.raises(SiteFileError) as err:
        parse_site_text(text)
    assert "must say where it is mounted" in str(err.value)
