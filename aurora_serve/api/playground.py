"""The playground: a page at ``GET /`` for people who would rather click than curl.

Plain HTML + vanilla JS + CSS from ``aurora_serve/api/static/`` (package data, no build step, no CDN), so
it works offline. The page is only a client of the public API: it calls ``POST /v1/captions`` (JSON for a
URL, multipart for an upload, always ``stream: true``) with the same optional ``Authorization: Bearer`` key
as any client, and shows errors exactly as the API returns them. The server only tells it the defaults and
limits a client could not otherwise learn (model name, default ρ and frame count, max frames, max media
size), embedded as JSON in the page. The page and its assets live outside ``/v1``, so they need no key.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from aurora_serve.config import ServerSettings

CONFIG_SLOT = "{{AURORA_CONFIG}}"
JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
ASSETS = {"app.js": JS, "api.js": JS, "style.css": CSS}
# Only our own origin, no inline script: the page cannot load anything from elsewhere, even by mistake.
# Media previews may show what the user pointed at (blob: for uploads, http(s)/data: for URLs).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data: blob: http: https:; media-src 'self' data: blob: http: https:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def page_config(settings: ServerSettings) -> dict:
    """What the page needs from the server's settings (nothing secret: no keys, no paths)."""
    return {
        "model": settings.served_model_name,
        "default_token_kept_ratio": settings.engine.media.default_token_kept_ratio,
        "default_num_frames": settings.engine.media.default_num_frames,
        "max_frames": settings.engine.media.max_frames,
        "max_media_bytes": settings.max_media_bytes,
        "auth_required": bool(settings.api_key),
    }


def render_index(template: str, config: dict) -> str:
    """The page with ``config`` as JSON in its data block (``<`` escaped: the JSON cannot end the script)."""
    data = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    return template.replace(CONFIG_SLOT, data)


def playground_router(settings: ServerSettings) -> APIRouter:
    """``GET /`` (the page) and ``GET /playground/<asset>``; the files are read once, here."""
    static = files("aurora_serve.api").joinpath("static")
    index = render_index(static.joinpath("index.html").read_text(encoding="utf-8"), page_config(settings))
    assets = {name: static.joinpath(name).read_bytes() for name in ASSETS}
    etags = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, body in assets.items()}
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(index, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @router.get("/playground/{name}")
    async def asset(name: str, request: Request):
        if name not in assets:
            raise HTTPException(404, f"no playground asset named {name!r}")
        headers = {"ETag": etags[name], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etags[name]:
            return Response(status_code=304, headers=headers)
        return Response(assets[name], media_type=ASSETS[name], headers=headers)

    return router
