from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.cli import DEMO_SITE
from storage.db import make_engine, open_database, session_factory, transaction
from storage.sitefile.load import load_site
from storage.sitefile.parse import parse_site_file
from storage.sitefile.schema import SiteFile
from tests.support.accounts import accounts_for_tests
from tests.support.databases import DatabaseTemplates, database
from tests.support.mosquitto import MosquittoBroker


@pytest.fixture(scope="session")
def patrol_site() -> SiteFile:
    """The demo site file as shipped, with its patrol routes and plans."""
    return parse_site_file(DEMO_SITE)


@pytest.fixture(scope="session")
def demo_site(patrol_site: SiteFile) -> SiteFile:
    """The demo site without patrol plans: a known checkpoint tag is answered `ok` (a site onboarded
    before its plans are written), which is what the ingestion, incident and API tests rely on.
    Patrol tests load `patrol_site`, or plans of their own."""
    return patrol_site.model_copy(update={"routes": [], "plans": []})


@pytest.fixture(scope="session")
def mosquitto(demo_site: SiteFile) -> Iterator[MosquittoBroker]:
    """Mosquitto with the shipped deploy/mosquitto/mosquitto.conf rules (no anonymous access, the ACL, the
    client id bound to the username) and accounts for the demo site's devices, the gateway (and a second
    one), the live feed and the test-only observer and unrestricted accounts (tests/support/accounts.py)."""
    broker = MosquittoBroker(accounts=accounts_for_tests(demo_site))
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory, demo_site: SiteFile) -> Iterator[DatabaseTemplates]:
    """Per run and per backend, one database migrated (with the migrations on disk now) holding the demo site."""

    def prepare(url: str) -> None:
        eng = open_database(url)
        try:
            with transaction(session_factory(eng)) as session:
                load_site(session, demo_site)
        finally:
            eng.dispose()

    templates = DatabaseTemplates(tmp_path_factory.mktemp("db-templates"), prepare)
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """The backend of this test's databases: every test using `db_url`, `engine` or `empty_db_url` runs on both."""
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, db_templates: DatabaseTemplates, tmp_path: Path) -> Iterator[str]:
    """URL of this test's own database, already migrated and holding the demo site 荔园 (a copy of the template)."""
    with db_templates.clone(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
def empty_db_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database of this test's own, for tests that migrate or load a site themselves."""
    with database(db_kind, tmp_path / "empty") as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on `db_url`: a migrated database holding the demo site 荔园."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
