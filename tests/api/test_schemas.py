"""The validator the API tests use rejects what OpenAI's clients would: both its forms, schemas and SDK types."""

from __future__ import annotations

import copy

import jsonschema
import pydantic
import pytest

from tests.api import schemas

GOOD = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "auroracap",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "a cat", "refusal": None}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
BROKEN = [
    ("no choices", lambda o: o.pop("choices")),
    ("created as text", lambda o: o.update(created="1")),
    ("unknown finish reason", lambda o: o["choices"][0].update(finish_reason="done")),
    ("usage without totals", lambda o: o["usage"].pop("total_tokens")),
]


def _forms():
    yield "sdk", lambda obj: schemas.sdk_adapter("CreateChatCompletionResponse").validate_python(obj, strict=True)
    if schemas.SCHEMAS.is_file():
        yield "schema", lambda obj: schemas.validator("CreateChatCompletionResponse").validate(obj)


@pytest.mark.parametrize("form", [name for name, _ in _forms()])
def test_accepts_a_completion_and_rejects_broken_ones(form):
    check = dict(_forms())[form]
    check(copy.deepcopy(GOOD))
    for what, breaks in BROKEN:
        obj = copy.deepcopy(GOOD)
        breaks(obj)
        with pytest.raises((jsonschema.ValidationError, pydantic.ValidationError)):
            check(obj)
            pytest.fail(f"{form} accepted a completion with {what}")


def test_error_and_model_list_fallbacks():
    schemas.sdk_adapter("ErrorResponse").validate_python(
        {"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}, strict=True)
    with pytest.raises(pydantic.ValidationError):
        schemas.sdk_adapter("ErrorResponse").validate_python({"message": "bad"}, strict=True)
    schemas.sdk_adapter("ListModelsResponse").validate_python(
        {"object": "list", "data": [{"id": "auroracap", "object": "model", "created": 0, "owned_by": "aurora-serve"}]},
        strict=True)
    with pytest.raises(pydantic.ValidationError):
        schemas.sdk_adapter("ListModelsResponse").validate_python({"object": "list", "data": [{"id": 1}]}, strict=True)
