"""The JSON API's documentation page, /api/v1/docs: Swagger UI over the API's own OpenAPI document.

Swagger UI's script and stylesheet are vendored under ``static/vendor/swagger-ui`` (no CDN), so the
page works offline and asks no other host for anything.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from llmtally.app.web.pages import STATIC_PATH

SWAGGER_UI = f"{STATIC_PATH}/vendor/swagger-ui"


def install_api_docs(api: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` of ``api`` (mounted at /api/v1, so /api/v1/docs)."""

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{api.openapi_url}",
            title=f"{api.title}: documentation",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            # No badge from validator.swagger.io: the page talks to this server only.
            swagger_ui_parameters={"validatorUrl": None},
        )
