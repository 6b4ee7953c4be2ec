"""The ASGI layer in front of the routes: everything decided before a request's body is parsed.

Pure ASGI (no BaseHTTPMiddleware), so streaming responses and disconnect messages pass through untouched.
For ``/v1`` paths, cheapest first, and nothing buffered before the request is admitted:

1. the API key (401); without keys, ``Host`` and ``Origin`` (403, :mod:`aurora_serve.api.hosts`);
2. a declared ``Content-Length`` over ``--max-request-mb`` (413);
3. generation endpoints (``GENERATION``) take a slot (:mod:`aurora_serve.api.admission`: 503 while loading or
   draining, 429 + ``Retry-After`` past the queue) and give it back in this call's ``finally`` — the one
   release, after the last byte of a stream;
4. the body, under :mod:`aurora_serve.api.body`'s limits (413, 408, 400);

then the app, with a ``receive`` that replays the body. A refusal from here closes the connection: a body
that was not read is not read afterwards either (httpx and the SDKs still read the answer). Keys are compared
with ``hmac.compare_digest`` against every configured key (no early exit).
"""

from __future__ import annotations

import hmac
import json

from aurora_serve.api.admission import Admission
from aurora_serve.api.body import BodyLimits, ClientDisconnected, declared_too_large, read_body, replay
from aurora_serve.api.hosts import SAFE_METHODS, allowed_names, host_allowed, origin_allowed
from aurora_serve.api.metrics import Metrics
from aurora_serve.config import ServerSettings
from aurora_serve.errors import AuroraError, AuthenticationError, PermissionDeniedError

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/captions": "captions",
             "/v1/models": "models"}
# Endpoints that run the engine: admitted before their body is read (POST only).
GENERATION = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/captions"})


class Gate:
    def __init__(self, app, *, settings: ServerSettings, admission: Admission, metrics: Metrics):
        self.app, self.admission, self.metrics = app, admission, metrics
        self.keys = [k.encode() for k in settings.api_key]
        self.hosts = allowed_names(settings.allowed_hosts, settings.host)
        self.limits = BodyLimits(max_bytes=settings.max_request_bytes, timeout=settings.body_timeout,
                                 idle_timeout=settings.body_idle_timeout, max_json_items=settings.max_json_items)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        endpoint = ENDPOINTS.get(scope["path"])
        status = {"code": 0}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._admitted(scope, receive, counted_send)
        finally:
            if endpoint is not None and status["code"]:
                self.metrics.requests.labels(endpoint, str(status["code"])).inc()

    async def _admitted(self, scope, receive, send):
        headers = dict(scope["headers"])
        slot = scope["method"] == "POST" and scope["path"] in GENERATION
        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                raise refusal
            if slot:
                await self.admission.acquire()
        except AuroraError as error:
            return await _respond(send, error)
        try:
            is_json = not headers.get(b"content-type", b"").lower().startswith(b"multipart/")
            try:
                body = await read_body(receive, self.limits, is_json=is_json)
            except ClientDisconnected:
                return
            except AuroraError as error:
                return await _respond(send, error)
            await self.app(scope, replay(body, receive), send)
        finally:
            if slot:
                self.admission.release()

    def _refusal(self, scope, headers: dict[bytes, bytes]) -> AuroraError | None:
        """Why the request is refused on its headers alone (401, 403, 413), or None."""
        if self.keys:
            if not self._authorized(scope):
                return AuthenticationError("Incorrect or missing API key; send 'Authorization: Bearer <key>'")
        else:
            host = _text(headers.get(b"host"))
            if not host_allowed(host, self.hosts):
                return PermissionDeniedError(
                    f"this server does not answer to Host {host!r} (a guard against DNS rebinding); its operator "
                    "can list the name in --allowed-hosts or set --api-key", code="host_not_allowed")
            origin = _text(headers.get(b"origin"))
            if origin is not None and scope["method"] not in SAFE_METHODS and \
                    not origin_allowed(origin, host, scope.get("scheme", "http"), self.hosts):
                return PermissionDeniedError(
                    f"requests from pages of another site ({origin}) are refused; its operator can list that host "
                    "in --allowed-hosts or set --api-key", code="cross_site_request")
        return declared_too_large(headers, self.limits)

    def _authorized(self, scope) -> bool:
        given = bearer_token(scope)
        ok = False
        for key in self.keys:  # every key is compared: timing does not reveal which one (or how much) matched
            ok |= hmac.compare_digest(given or b"", key)
        return ok and given is not None


def bearer_token(scope) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header in an ASGI scope; None without one."""
    scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _respond(send, error: AuroraError) -> None:
    body = json.dumps(error.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
