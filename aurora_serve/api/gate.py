"""The ASGI layer in front of the routes: API-key check, request-body cap, response counting.

Pure ASGI (no BaseHTTPMiddleware), so streaming responses and disconnect messages pass through untouched.
The key check runs before the body is read or parsed: an unauthenticated client learns nothing about its
request. Keys are compared with ``hmac.compare_digest`` against every configured key (no early exit).
"""

from __future__ import annotations

import hmac
import json

from aurora_serve.api.metrics import Metrics
from aurora_serve.errors import AuroraError, AuthenticationError, MediaTooLargeError

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/captions": "captions",
             "/v1/models": "models"}


class Gate:
    def __init__(self, app, *, api_keys: tuple[str, ...], max_body_bytes: int, metrics: Metrics):
        self.app, self.max_body, self.metrics = app, max_body_bytes, metrics
        self.keys = [k.encode() for k in api_keys]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = ENDPOINTS.get(scope["path"])
        status = {"code": 0}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if scope["path"].startswith("/v1/"):
                if self.keys and not self._authorized(scope):
                    error = AuthenticationError("Incorrect or missing API key; send 'Authorization: Bearer <key>'")
                    return await _respond(counted_send, error, [(b"www-authenticate", b"Bearer")])
                receive = await self._capped_body(scope, receive, counted_send)
                if receive is None:
                    return
            await self.app(scope, receive, counted_send)
        finally:
            if endpoint is not None and status["code"]:
                self.metrics.requests.labels(endpoint, str(status["code"])).inc()

    def _authorized(self, scope) -> bool:
        given = bearer_token(scope)
        ok = False
        for key in self.keys:  # every key is compared: timing does not reveal which one (or how much) matched
            ok |= hmac.compare_digest(given or b"", key)
        return ok and given is not None

    async def _capped_body(self, scope, receive, send):
        """Read the body (at most ``max_body`` bytes) and return a ``receive`` that replays it; None if refused."""
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await _respond(send, _too_large(int(declared), self.max_body))
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            size += len(message.get("body", b""))
            if size > self.max_body:
                await _respond(send, _too_large(size, self.max_body))
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return replay


def bearer_token(scope) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header in an ASGI scope; None without one."""
    scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None


def _too_large(size: int, limit: int) -> MediaTooLargeError:
    return MediaTooLargeError(f"the request body is {size} bytes or more; this server accepts at most {limit} "
                              "(send large media by URL)", code="request_too_large")


async def _respond(send, error: AuroraError, headers: list | None = None) -> None:
    body = json.dumps(error.to_dict()).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
