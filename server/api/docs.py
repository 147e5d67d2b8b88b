"""The API docs (/docs Swagger UI, /redoc) served from this process, not from a CDN.

The assets come with the `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1, and
ReDoc), installed with the product: the docs work on a control-room machine without internet.
FastAPI's own /docs page starts Swagger UI with an inline script, which our Content-Security-Policy
(server/api/middleware.py, `script-src 'self'`) forbids; here the start-up script is a file too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import get_redoc_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"


class _CachedAssets(StaticFiles):
    """Versioned vendor files: a browser may keep them for a day (the API's own answers are no-store)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", "public, max-age=86400")
        return response


def mount_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local assets; create the app with docs_url=None, redoc_url=None."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, _CachedAssets(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(
            "<!DOCTYPE html>\n<html>\n<head>\n"
            '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
            f'<link type="text/css" rel="stylesheet" href="{root}{ASSETS_URL}/swagger-ui.css">\n'
            f'<link rel="icon" href="{root}{ASSETS_URL}/favicon.png">\n'
            f"<title>{app.title} - Swagger UI</title>\n</head>\n<body>\n"
            '<div id="swagger-ui"></div>\n'
            f'<script src="{root}{ASSETS_URL}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{root}/docs/swagger-init.js"></script>\n'
            "</body>\n</html>\n"
        )

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    def swagger_init(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        params: dict[str, Any] = {
            **swagger_ui_default_parameters,
            **(app.swagger_ui_parameters or {}),
            "url": f"{root}{openapi_url}",
            "validatorUrl": None,  # the default badge would call validator.swagger.io
        }
        body = (
            f"window.ui = SwaggerUIBundle(Object.assign({json.dumps(jsonable_encoder(params))}, {{\n"
            "  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],\n"
            "}));\n"
        )
        return Response(body, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
