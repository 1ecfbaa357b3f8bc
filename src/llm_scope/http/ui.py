"""The local dashboard at /ui: one HTML page and its static files, all served by the gateway (works offline).

The front end (src/llm_scope/ui/) is plain HTML, CSS and vanilla ES modules with hand-drawn SVG charts: no
build step, no CDN. It reads the local store through the read API (/api/traces, /api/sessions, /api/usage)
plus two small routes here: /api/ui-config and /api/stats (latency percentiles, spend per user per day).

Assets are read once per app and served with an ETag; the page links them as `?v=<content hash>`, so those
URLs are cached for good and any change to a file changes its URL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import GatewayError, InvalidRequest, NotFound
from ..tracing import stats
from .api import read, trace_filter
from .auth import UI_COOKIE, UI_PATH, ui_token
from .responses import RawResponse, error_response, json_response
from .state import state_of

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
PAGE = "index.html"
IMMUTABLE = "public, max-age=31536000, immutable"
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_ASSET_REF = re.compile(r"\{\{asset:([\w./-]+)\}\}")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # a short content hash

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _walk(node: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for child in node.iterdir():
        name = prefix + child.name
        if child.is_dir():
            found.update(_walk(child, name + "/"))
            continue
        suffix = "." + child.name.rsplit(".", 1)[-1] if "." in child.name else ""
        if suffix in CONTENT_TYPES:
            body = child.read_bytes()
            found[name] = Asset(body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return found


def load_assets() -> dict[str, Asset]:
    """Every servable file under the package's ui/ folder, by its path there; the page gets versioned links."""
    assets = _walk(resources.files("llm_scope") / "ui")
    page = assets.pop(PAGE, None)
    if page is None:
        raise RuntimeError("llm_scope/ui/index.html is missing from the package")

    def link(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in assets:
            raise RuntimeError(f"index.html links a missing asset: {name}")
        return f"ui/assets/{name}?v={assets[name].version}"

    html = _ASSET_REF.sub(link, page.body.decode()).replace("{{version}}", __version__).encode()
    assets[PAGE] = Asset(html, page.content_type, hashlib.sha256(html).hexdigest()[:16])
    return assets


def _assets(request: Request) -> dict[str, Asset]:
    cached: dict[str, Asset] = state_of(request).ui_assets
    if not cached:
        cached.update(load_assets())
    return cached


async def page(request: Request) -> Response:
    settings = state_of(request).settings
    if "key" in request.query_params:
        # The master key middleware has already checked the key. Swap it for a cookie and take it out of the
        # address bar (and the browser history); the URL fragment (#/call/…) survives the redirect.
        response = RedirectResponse(request.scope.get("root_path", "") + UI_PATH, status_code=303)
        if settings.master_key:
            response.set_cookie(
                UI_COOKIE,
                ui_token(settings.master_key),
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response
    asset = _assets(request)[PAGE]
    return Response(asset.body, headers={**PAGE_HEADERS, "etag": asset.etag}, media_type=asset.content_type)


async def asset(request: Request) -> Response:
    path = request.path_params["path"]
    found = _assets(request).get(path) if path != PAGE else None
    if found is None:
        return error_response(NotFound(f"No dashboard asset '{path}'"))
    versioned = request.query_params.get("v") == found.version
    headers = {
        "etag": found.etag,
        "cache-control": IMMUTABLE if versioned else "no-cache",
        "x-content-type-options": "nosniff",
    }
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, headers=headers, media_type=found.content_type)


async def ui_config(request: Request) -> RawResponse:
    settings = state_of(request).settings
    langfuse = settings.langfuse_host.rstrip("/") if settings.langfuse_configured else None
    return json_response(
        {"version": __version__, "langfuse_url": langfuse, "master_key": bool(settings.master_key)},
        headers={"cache-control": "no-cache"},
    )


async def dashboard_stats(request: Request) -> RawResponse:
    """Latency p50/p95 per day (or hour) and usage per user per day, with /api/traces' filters."""
    bucket = request.query_params.get("bucket") or "day"
    try:
        if bucket not in stats.BUCKETS:
            raise InvalidRequest("Invalid 'bucket': expected day or hour", param="bucket")
        f = trace_filter(request)
    except GatewayError as exc:
        return error_response(exc)
    pipeline = state_of(request).pipeline
    await pipeline.flush()
    try:
        return json_response(await read(pipeline, stats.dashboard_stats, pipeline.store, f, bucket))
    except GatewayError as exc:
        return error_response(exc)


routes = [
    Route(UI_PATH, page, methods=["GET"]),
    Route(UI_PATH + "/assets/{path:path}", asset, methods=["GET"]),
    Route("/api/ui-config", ui_config, methods=["GET"]),
    Route("/api/stats", dashboard_stats, methods=["GET"]),
]
