"""/docs: Swagger UI served from this process (fastapi-offline's copy of swagger-ui), so it works offline under the CSP.

FastAPI's own /docs page loads Swagger from a CDN with an inline script; both are blocked by
our Content-Security-Policy, which allows scripts from this origin only.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"  # swagger-ui 5 (Apache-2.0), no CDN
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
router = APIRouter(include_in_schema=False)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>promptsim API</title>
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body></html>
"""


@router.get("/docs")
def docs() -> HTMLResponse:
    """The interactive API reference."""
    return HTMLResponse(_PAGE, headers={"Content-Security-Policy": DOCS_CSP})


def mount_assets(app: FastAPI) -> None:
    app.mount("/docs-assets", StaticFiles(directory=str(ASSETS)), name="docs-assets")
