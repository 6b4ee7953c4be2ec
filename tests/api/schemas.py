"""Validate our wire objects against OpenAI's own schemas (../shared/reference/openai-chat-schemas.json, and
openai-responses-schemas.json for the Responses API: ``Response``, ``ResponseStreamEvent``, ``CreateResponse``,
``Model``; a name is looked up in the chat extract first).

The file is OpenAPI 3.1 that still uses the 3.0 keyword ``nullable: true``; as the file's own comment says,
it must be read as "or null": each such schema becomes ``anyOf: [schema, {"type": "null"}]`` (and an enum
gains null). A ``oneOf`` with an OpenAPI ``discriminator`` is read as ``anyOf``: OpenAPI picks its branch by the
discriminator, and some branches overlap without it (a Responses ``input`` message matches both
``EasyInputMessage`` and ``InputMessage``, so plain JSON Schema would refuse every message). The file is read from beside the repo (../shared). Where that is absent (a clone on its own), the
same names are checked against the ``openai`` SDK's own response types in pydantic's strict mode instead:
weaker than the schemas (the SDK types allow extra keys), but required fields and types still fail a bad
object, and the tests that validate keep running rather than skipping.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

from typing import Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel, TypeAdapter
from referencing import Registry
from referencing.jsonschema import DRAFT202012

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
SCHEMAS = REFERENCE / "openai-chat-schemas.json"
RESPONSES_SCHEMAS = REFERENCE / "openai-responses-schemas.json"


def _denullable(node):
    if isinstance(node, list):
        return [_denullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _denullable(v) for k, v in node.items()}
    if "discriminator" in node and "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    if node.pop("nullable", False):
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return {"anyOf": [node, {"type": "null"}]}
    return node


@lru_cache(maxsize=None)
def _document(path: Path) -> dict:
    return _denullable(json.loads(path.read_text()))


def _file_of(name: str) -> Path:
    return SCHEMAS if name in _document(SCHEMAS)["components"]["schemas"] else RESPONSES_SCHEMAS


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    resource = DRAFT202012.create_resource(copy.deepcopy(_document(_file_of(name))))
    registry = Registry().with_resource("urn:openai", resource)
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=registry)


@lru_cache(maxsize=None)
def sdk_adapter(name: str) -> TypeAdapter:
    """The ``openai`` SDK type for an OpenAPI schema name (the fallback when ../shared is absent)."""
    from openai.types import CompletionUsage, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseCreateParams, ResponseStreamEvent
    from openai.types.shared import ErrorObject

    class ListModelsResponse(BaseModel):
        object: Literal["list"]
        data: list[Model]

    class ErrorResponse(BaseModel):
        error: ErrorObject

    types = {"CreateChatCompletionResponse": ChatCompletion, "CreateChatCompletionStreamResponse": ChatCompletionChunk,
             "CompletionUsage": CompletionUsage, "ListModelsResponse": ListModelsResponse,
             "ErrorResponse": ErrorResponse, "Model": Model, "Response": Response,
             "ResponseStreamEvent": ResponseStreamEvent, "CreateResponse": ResponseCreateParams}
    return TypeAdapter(types[name])


def validate(name: str, obj) -> None:
    """Raise unless ``obj`` is a valid ``name`` (e.g. "ErrorResponse"): ``jsonschema.ValidationError`` against
    OpenAI's schemas, or ``pydantic.ValidationError`` against the SDK's types where the schemas are absent."""
    if SCHEMAS.is_file() and RESPONSES_SCHEMAS.is_file():
        validator(name).validate(obj)
    else:
        sdk_adapter(name).validate_python(obj, strict=True)
