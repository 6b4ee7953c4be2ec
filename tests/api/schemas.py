"""Validate our wire objects against OpenAI's own schemas (../shared/reference/openai-chat-schemas.json).

The file is OpenAPI 3.1 that still uses the 3.0 keyword ``nullable: true``; as the file's own comment says,
it must be read as "or null": each such schema becomes ``anyOf: [schema, {"type": "null"}]`` (and an enum
gains null). A copy of the file is looked up beside the repo (../shared), so tests skip without it.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "openai-chat-schemas.json"


def _denullable(node):
    if isinstance(node, list):
        return [_denullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _denullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return {"anyOf": [node, {"type": "null"}]}
    return node


@lru_cache(maxsize=1)
def _document() -> dict:
    if not SCHEMAS.is_file():
        pytest.skip(f"OpenAI schemas not available at {SCHEMAS} (../shared is absent)")
    return _denullable(json.loads(SCHEMAS.read_text()))


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    resource = DRAFT202012.create_resource(copy.deepcopy(_document()))
    registry = Registry().with_resource("urn:openai", resource)
    return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=registry)


def validate(name: str, obj) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a valid ``name`` (e.g. "ErrorResponse")."""
    validator(name).validate(obj)
