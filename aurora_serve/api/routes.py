"""The FastAPI app: routes (thin: parse, one call to ``Serving``, respond), error envelopes, lifespan.

Routes: ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/captions``, ``GET /v1/models`` and
``GET /v1/models/{id}`` (API keys apply under ``/v1``; ``GET /v1/responses/{id}`` is always a 404: nothing is
stored), and the unauthenticated operational ones: ``GET /health`` (liveness), ``GET /ready`` (503 while
loading or draining), ``GET /metrics`` (Prometheus). Every failure before the 200 is an OpenAI error
envelope ``{"error": {"message", "type", "param", "code"}}`` with its real status.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from aurora_serve.api.admission import Admission
from aurora_serve.api.gate import Gate
from aurora_serve.api.lifecycle import Lifecycle
from aurora_serve.api.metrics import Metrics
from aurora_serve.api.playground import playground_router
from aurora_serve.api.protocol import (
    Caption, CaptionRequest, ChatCompletionRequest, ChatCompletionResponse, ErrorResponse, ModelCard, ModelList,
)
from aurora_serve.api.responses import CreateResponse
from aurora_serve.api.serving import ClientGone, Serving
from aurora_serve.config import ServerSettings
from aurora_serve.errors import AuroraError, InvalidRequestError, NotFoundError

logger = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 408, 413, 415, 429, 503)}
SSE = {"text/event-stream": {"schema": {"type": "string", "description": "chat.completion.chunk events"}}}
RESPONSE_EVENTS = {"text/event-stream": {"schema": {"type": "string", "description": "Responses API events"}}}
FORM_FIELDS = ("url", "prompt", "token_kept_ratio", "num_frames", "fps", "max_frames", "start", "end", "max_tokens",
               "temperature", "stream")


def create_app(settings: ServerSettings, engine_factory=None, metrics: Metrics | None = None) -> FastAPI:
    if engine_factory is None:
        from aurora_serve.engine import AuroraEngine as engine_factory
    metrics = metrics or Metrics()
    lifecycle = Lifecycle(settings.engine, engine_factory)
    admission = Admission(lifecycle, settings.max_concurrency, settings.max_queue, metrics)
    serving = Serving(settings, lifecycle, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        starting = asyncio.create_task(lifecycle.start())  # serve /health and /ready (503) while loading
        yield
        await asyncio.wait({starting})  # a thread building the engine cannot be cancelled: let it finish
        await lifecycle.stop()

    # FastAPI's /docs and /redoc pages load their scripts from a CDN: served only when asked for.
    docs = {} if settings.enable_docs else {"docs_url": None, "redoc_url": None}
    app = FastAPI(title="aurora-serve", version="0.1.0", lifespan=lifespan, **docs,
                  description="AuroraCap video/image captioning behind an OpenAI-compatible API")
    app.state.lifecycle, app.state.serving, app.state.admission = lifecycle, serving, admission
    _add_error_handlers(app)
    _add_routes(app, serving, metrics, settings)
    app.include_router(playground_router(settings))
    app.add_middleware(Gate, settings=settings, admission=admission, metrics=metrics)
    return app


def _add_routes(app: FastAPI, serving: Serving, metrics: Metrics, settings: ServerSettings) -> None:
    lifecycle = serving.lifecycle

    @app.post("/v1/chat/completions", response_model=ChatCompletionResponse,
              responses={**ERRORS, 200: {"content": SSE}})
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await serving.chat(request, body)

    caption_body = {"required": True, "content": {
        "application/json": {"schema": CaptionRequest.model_json_schema()},
        "multipart/form-data": {"schema": _form_schema()},
    }}

    @app.post("/v1/captions", response_model=Caption, openapi_extra={"requestBody": caption_body},
              responses={**ERRORS, 200: {"content": SSE}})
    async def captions(request: Request):
        body, upload = await _caption_input(request)
        return await serving.caption(request, body, upload)

    @app.post("/v1/responses", responses={**ERRORS, 200: {"content": {"application/json": {}, **RESPONSE_EVENTS}}})
    async def responses(body: CreateResponse, request: Request):
        return await serving.responses(request, body)

    @app.get("/v1/responses/{response_id}", responses=ERRORS)
    async def stored_response(response_id: str):
        raise NotFoundError(f"No response with id {response_id!r}: this server stores no responses (store is "
                            "accepted and ignored)", param="response_id", code="response_not_found")

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS)
    async def models():
        return ModelList(data=[ModelCard(id=settings.served_model_name, created=lifecycle.created)])

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=ERRORS)
    async def model(model_id: str):
        if model_id != settings.served_model_name:
            raise NotFoundError(f"The model `{model_id}` does not exist; this server serves "
                                f"`{settings.served_model_name}`", param="model", code="model_not_found")
        return ModelCard(id=settings.served_model_name, created=lifecycle.created)

    @app.get("/health", responses={503: {"model": ErrorResponse}})
    async def health():
        lifecycle.health()
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorResponse}})
    async def ready():
        lifecycle.readiness()
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response)
    async def metrics_page():
        return Response(metrics.render(), media_type=metrics.content_type)


async def _caption_input(request: Request) -> tuple[CaptionRequest, bytes | None]:
    """JSON body, or multipart form (``file`` plus the same fields as strings)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1)
            unknown = sorted(set(form.keys()) - set(FORM_FIELDS) - {"file"})
            if unknown:
                raise InvalidRequestError(f"Unrecognized form field(s): {', '.join(unknown)}", param=unknown[0])
            file = form.get("file")
            if file is not None and not isinstance(file, UploadFile):
                raise InvalidRequestError("the form field 'file' must be a file upload", param="file")
            fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
            upload = await file.read() if file is not None else None
            return CaptionRequest.model_validate(fields, strict=False), upload
        if content_type not in ("application/json", ""):
            raise InvalidRequestError("send application/json or multipart/form-data", code="unsupported_content_type")
        return CaptionRequest.model_validate_json(await request.body()), None
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None


def _form_schema() -> dict:
    schema = CaptionRequest.model_json_schema()
    props = {name: {"type": "string"} for name in FORM_FIELDS}
    props["file"] = {"type": "string", "format": "binary"}
    return {"type": "object", "properties": props, "description": schema.get("description", "")}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuroraError)
    async def aurora_error(_: Request, exc: AuroraError):
        if exc.status >= 500:  # 503 is the expected answer while loading or draining
            logger.log(logging.INFO if exc.status == 503 else logging.ERROR, "request failed: %s", exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        return JSONResponse(_validation_message(exc.errors(), exc.body).to_dict(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
        kind = kinds.get(exc.status_code, "invalid_request_error" if exc.status_code < 500 else "server_error")
        error = {"error": {"message": str(exc.detail), "type": kind, "param": None, "code": None}}
        return JSONResponse(error, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, __: ClientGone):
        return Response(status_code=499)  # nobody reads it; the status shows in logs and metrics

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception):
        logger.exception("unhandled error")
        error = AuroraError("internal server error")
        return JSONResponse(error.to_dict(), status_code=500)


def _validation_message(errors, body: Any = None) -> InvalidRequestError:
    """The most specific pydantic error as OpenAI words it: a message and the offending parameter path.

    For a union (``content``: a string or a list of parts) pydantic reports every branch; the deepest error is
    the one about what the caller actually sent, not "Input should be a valid string" for a list."""
    first = max(errors, key=lambda e: len(e.get("loc", ()))) if errors else {"loc": (), "msg": "invalid request"}
    loc = _input_path(first.get("loc", ()), body, keep_last=first.get("type") == "missing")
    param = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":
        return InvalidRequestError(f"Unrecognized request argument supplied: {param}", param=param)
    if first.get("type") == "json_invalid":
        return InvalidRequestError("We could not parse the JSON body of your request: "
                                   f"{first.get('ctx', {}).get('error', 'invalid JSON')}", code="invalid_json")
    where = f"{param}: " if param else ""
    return InvalidRequestError(f"{where}{first.get('msg', 'invalid value')}", param=param)


def _input_path(loc, body: Any, keep_last: bool) -> list[str]:
    """``loc`` without pydantic's union-branch labels ("str", "list[...]", a part's tag): only the steps that
    index into the request as sent (and, for a missing field, its name)."""
    path, node = [], body
    steps = [p for p in loc if p != "body"]
    for i, step in enumerate(steps):
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        elif not (keep_last and i == len(steps) - 1) and body is not None:
            continue  # a branch label, not a place in the request
        path.append(str(step))
    return path
