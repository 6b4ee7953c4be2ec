"""Unit: how a request that fails validation is worded (``app._validation_message``), on pydantic's real errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aurora_serve.api.routes import _validation_message
from aurora_serve.api.protocol import ChatCompletionRequest


def worded(body: dict):
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as e:
        return _validation_message(e.errors(include_url=False), body)
    raise AssertionError("the body validated")


def with_part(part) -> dict:
    return {"model": "auroracap", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}


@pytest.mark.parametrize("part, param, words", [
    # a malformed part is reported as that part, not as "content should be a valid string"
    ({"type": "video_url"}, "messages.0.content.1", "video_url.url is required"),
    ({"type": "video_url", "uuid": ""}, "messages.0.content.1.uuid", "at least 1 character"),
    ({"type": "video_url", "video_url": {"url": "x", "num_frame": 2}}, "messages.0.content.1.video_url.num_frame",
     "Unrecognized request argument"),
    ({"type": "image_url", "image_url": {"url": "x", "token_kept_ratio": 2}},
     "messages.0.content.1.image_url.token_kept_ratio", "less than or equal to 1"),
    ({"type": "text"}, "messages.0.content.1.text", "Field required"),
])
def test_part_errors_name_the_part(part, param, words):
    error = worded(with_part(part))
    assert error.param == param and words in error.message, (error.param, error.message)
    assert "valid string" not in error.message


def test_top_level_errors_keep_their_names():
    error = worded({"messages": [{"role": "user", "content": "hi"}]})
    assert (error.param, error.message) == ("model", "model: Field required")
    error = worded({"model": "auroracap", "messages": [{"role": "user", "content": "hi"}], "temprature": 1})
    assert error.param == "temprature" and error.message.startswith("Unrecognized request argument")
    error = worded({"model": "auroracap", "messages": [{"role": "user", "content": 5}]})
    assert error.param.startswith("messages.0.content")


def test_without_the_body_the_location_is_kept_whole():
    try:
        ChatCompletionRequest.model_validate(with_part({"type": "video_url"}))
    except ValidationError as e:
        error = _validation_message(e.errors(include_url=False))
    assert error.param.startswith("messages.0.content.")
