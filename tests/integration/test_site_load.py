"""`patrol site load`: idempotent, updates what changed, deactivates what was removed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from app.cli import DEMO_SITE
from storage.db import session_factory, transaction
from storage.models import Device, Location, Tag
from storage.sitefile.load import load_site
from storage.sitefile.parse import parse_site_text

pytestmark = pytest.mark.integration


def _load(engine: Engine, text: str) -> str:
    with transaction(session_factory(engine)) as s:
        return load_site(s, parse_site_text(text)).describe()


def test_loading_twice_changes_nothing(engine: Engine) -> None:
    """The `engine` fixture loaded the demo site without its patrol plans: the file's plans are the
    one change of the first load; the second changes nothing."""
    text = DEMO_SITE.read_text(encoding="utf-8")
    assert _load(engine, text) == "site liyuan: updated {'site': 1}"
    assert _load(engine, text) == "site liyuan: already up to date, nothing changed"


def test_a_changed_file_updates_and_removed_items_are_deactivated(engine: Engine) -> None:
    text = DEMO_SITE.read_text(encoding="utf-8")
    _load(engine, text)  # with its plans (the fixture's copy has none)
    changed = text.replace(
        "name: {zh: 1栋 1F 大堂, en: Building 1 1F lobby}",
        "name: {zh: 1栋 首层大堂, en: Building 1 ground floor lobby}",
    )
    start = changed.index("  - code: rdr-h06")
    end = changed.index("  - code:", start + 5)
    changed = changed[:start] + changed[end:]
    summary = _load(engine, changed)
    assert "updated {'location': 1}" in summary and "deactivated {'device': 1}" in summary
    with session_factory(engine)() as s:
        lobby = s.scalars(select(Location).where(Location.code == "B1-F01-LOBBY")).one()
        assert lobby.name_zh == "1栋 首层大堂"
        assert s.scalars(select(Device.active).where(Device.code == "rdr-h06")).one() is False
    restored = _load(engine, text)  # putting it back reactivates it
    assert "'device': 1" in restored and "created" not in restored
    with session_factory(engine)() as s:
        assert s.scalars(select(Device.active).where(Device.code == "rdr-h06")).one() is True


def _site_load(db_url: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATROL_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "app.cli", "site", "load", str(path)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_loads_a_file_and_reports_a_bad_one(empty_db_url: str, tmp_path: Path) -> None:
    ok = _site_load(empty_db_url, DEMO_SITE)
    assert ok.returncode == 0, ok.stderr
    assert "created" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_SITE.read_text(encoding="utf-8").replace("type: pipe_well", "type: pipe-well", 1))
    out = _site_load(empty_db_url, bad)
    assert out.returncode == 1
    assert "line " in out.stderr and "type" in out.stderr and "nothing was loaded" in out.stderr


def test_tag_counts_match_the_file(engine: Engine) -> None:
    spec = parse_site_text(DEMO_SITE.read_text(encoding="utf-8"))
    expected = sum(1 for loc in spec.locations if loc.tag) + sum(1 for p in spec.staff if p.badge)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Tag).where(Tag.active.is_(True))) == expected
