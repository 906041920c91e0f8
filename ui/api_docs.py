"""Serve the API docs (Swagger UI at /docs, ReDoc at /redoc) from packaged assets, offline.

FastAPI's default pages load their JavaScript, CSS, fonts and favicon from CDNs, so they are
blank without internet. The `fastapi-offline` package ships the Swagger UI bundle and the ReDoc
standalone script; they are mounted at `ASSETS_URL` and the pages point there instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
"""Where the packaged Swagger UI and ReDoc files are served."""
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_dir() -> Path:
    """Return the directory of the packaged Swagger UI and ReDoc files.

    Raises:
        FileNotFoundError: the installed `fastapi-offline` lacks one of `ASSET_FILES`.
    """
    directory = Path(str(files("fastapi_offline") / "static"))
    missing = [name for name in ASSET_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks {', '.join(missing)}: reinstall fastapi-offline"
        )
    return directory


def register_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add /docs and /redoc pages whose assets come from this server, not a CDN.

    Build `app` with `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not added too.

    Args:
        app: The application to add the pages and the assets mount to.
        docs_url: Path of the Swagger UI page.
        redoc_url: Path of the ReDoc page.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
