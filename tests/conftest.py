from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.cli import DEMO_SITE
from storage.db import make_engine, migrate, session_factory, transaction
from storage.sitefile.load import load_site
from storage.sitefile.parse import parse_site_file
from storage.sitefile.schema import SiteFile
from tests.support.databases import database
from tests.support.mosquitto import MosquittoBroker


@pytest.fixture(scope="session")
def demo_site() -> SiteFile:
    return parse_site_file(DEMO_SITE)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker()
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str, demo_site: SiteFile) -> Iterator[Engine]:
    """A migrated database holding the demo site 荔园."""
    eng = make_engine(db_url)
    migrate(eng)
    with transaction(session_factory(eng)) as session:
        load_site(session, demo_site)
    yield eng
    eng.dispose()
