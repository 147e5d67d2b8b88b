"""The control room's web UI and the guard's phone page, served from `dashboards/web`.

Plain ES modules and vendored libraries (Preact + htm, ECharts), no build step and no CDN: the
screens work on a control-room LAN without internet. The directory is found beside the source tree
(a checkout, `pip install -e`) or where PATROL_UI_DIR points (the Docker image copies it there).
Without it the API still serves; `/` then says where the UI was looked for.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)
UI_URL = "/ui"
SOURCE_UI_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "web"


def ui_dir(configured: Path | None) -> Path:
    return configured if configured is not None else SOURCE_UI_DIR


def mount_ui(app: FastAPI, directory: Path) -> None:
    """`/ui/` the control room, `/ui/guard.html` the guard's phone page; `/` leads to the first."""
    if (directory / "index.html").is_file():
        app.mount(UI_URL, StaticFiles(directory=directory, html=True), name="ui")
    else:
        log.warning("no web UI at %s: set PATROL_UI_DIR to the dashboards/web directory", directory)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        if (directory / "index.html").is_file():
            return RedirectResponse(f"{UI_URL}/", status_code=307)
        return PlainTextResponse(
            f"The web UI is not installed here (looked in {directory}); set PATROL_UI_DIR. The API is at /docs.",
            status_code=404,
        )
