"""``POST /v1/responses`` and ``GET /v1/models/{id}`` with the real ``openai`` SDK against the real server.

Every request body the SDK sends (standard parts only) is checked against OpenAI's ``CreateResponse`` schema, and
every response object and stream event against ``Response`` / ``ResponseStreamEvent`` / ``Model``
(../shared/reference/openai-responses-schemas.json; tests/api/schemas.py).
"""

from __future__ import annotations

import json

import openai
import pytest

from aurora_serve.model.token_count import tokens_per_frame
from tests.api.schemas import validate
from tests.support.clips import data_url

pytestmark = pytest.mark.engine
MODEL = "auroracap"
EVENTS = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
CLOSING = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


@pytest.fixture(scope="module")
def sent(openai_client):
    """The JSON bodies the SDK sends, recorded from its own HTTP client."""
    bodies: list[dict] = []
    def hook(request):
        if request.method == "POST":
            bodies.append(json.loads(request.content))

    openai_client._client.event_hooks["request"].append(hook)
    yield bodies
    openai_client._client.event_hooks["request"].remove(hook)


def created(openai_client, sent, **kwargs):
    raw = openai_client.responses.with_raw_response.create(model=MODEL, **kwargs)
    body = json.loads(raw.http_response.text)
    validate("Response", body)
    return raw.parse(), body


def test_string_input(openai_client, sent):
    resp, body = created(openai_client, sent, input="Describe a sunset.", max_output_tokens=16,
                         instructions="You caption videos.", metadata={"run": "a"})
    validate("CreateResponse", sent[-1])
    assert resp.object == "response" and resp.id.startswith("resp_") and resp.model == MODEL
    assert resp.status in ("completed", "incomplete") and resp.output_text == resp.output[0].content[0].text
    assert resp.instructions == "You caption videos." and resp.metadata == {"run": "a"} and body["store"] is False
    assert resp.usage.input_tokens > 0 and resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert body["usage"]["visual_tokens"] == 0 and body["usage"]["frames"] == []


def test_image_and_video_parts_with_our_options(openai_client, sent, media_dir):
    image = data_url((media_dir / "still.jpg").read_bytes(), "image/jpeg")
    content = [{"type": "input_image", "image_url": image, "detail": "auto"},
               {"type": "input_text", "text": "What is this?"}]
    resp, body = created(openai_client, sent, input=[{"role": "user", "content": content}], max_output_tokens=16,
                         extra_body={"token_kept_ratio": 0.5})
    validate("CreateResponse", {k: v for k, v in sent[-1].items() if k != "token_kept_ratio"})
    assert body["usage"]["visual_tokens"] == tokens_per_frame(0.5) and body["usage"]["frames"] == [1]
    assert body["usage"]["input_tokens_details"]["image_tokens"] == tokens_per_frame(0.5)
    video = {"type": "input_video", "video_url": f"file://{media_dir / 'indexed.mp4'}", "fps": 1, "start": 1,
             "end": 4, "token_kept_ratio": 0.2}
    resp, body = created(openai_client, sent, max_output_tokens=16, extra_body={"num_frames": 8},
                         input=[{"role": "user", "content": [video, {"type": "input_text", "text": "Describe."}]}])
    assert body["usage"]["frames"] == [3]  # the part's 1 fps over [1, 4) wins over the request's num_frames
    assert resp.usage.input_tokens > body["usage"]["visual_tokens"] == 3 * tokens_per_frame(0.2)


def test_the_same_text_as_chat(openai_client):
    """One job builder serves both APIs: the same prompt gives the same greedy text."""
    messages = [{"role": "system", "content": "You caption videos."}, {"role": "user", "content": "Hello"}]
    chat = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16)
    resp = openai_client.responses.create(model=MODEL, instructions="You caption videos.", input="Hello",
                                          max_output_tokens=16)
    assert resp.output_text == chat.choices[0].message.content
    assert resp.usage.input_tokens == chat.usage.prompt_tokens


def test_streaming_events(openai_client, sent, media_dir):
    video = {"type": "input_video", "video_url": f"file://{media_dir / 'clip.mp4'}", "num_frames": 2}
    stream = openai_client.responses.create(model=MODEL, stream=True, max_output_tokens=16, input=[
        {"role": "user", "content": [video, {"type": "input_text", "text": "Describe."}]}])
    events = list(stream)
    for event in events:
        validate("ResponseStreamEvent", event.model_dump(mode="json", exclude_unset=True))
    kinds = [e.type for e in events]
    deltas = kinds[len(EVENTS):kinds.index("response.output_text.done")]
    assert kinds[:len(EVENTS)] == EVENTS and deltas and set(deltas) == {"response.output_text.delta"}
    assert kinds[-4:-1] == CLOSING and kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == text == events[-4].text
    assert final.usage.output_tokens <= 16 and final.usage.model_extra["frames"] == [2]


def test_sdk_stream_helper_and_incomplete(openai_client):
    """The SDK's own stream helper; a cut at max_output_tokens ends as OpenAI's does (``response.incomplete``)."""
    with openai_client.responses.stream(model=MODEL, input="Tell me a story.", max_output_tokens=16) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    resp = openai_client.responses.create(model=MODEL, input="Tell me a story.", max_output_tokens=2,
                                          extra_body={"ignore_eos": True})
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage.output_tokens == 2


@pytest.mark.parametrize("kwargs, param", [
    ({"tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools"),
    ({"background": True}, "background"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"conversation": "conv_123"}, "conversation"),
    ({"reasoning": {"effort": "high"}}, "reasoning"),
    ({"text": {"format": {"type": "json_object"}}}, "text"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"input": [{"type": "function_call_output", "call_id": "c1", "output": "42"}]}, "input.0.type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}, "input.0.content.0.type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]},
     "input.0.content.0.file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_video", "video_url": "file:///x.mp4", "fps": 0}]}]},
     "input.0.content.0.fps"),
    ({"extra_body": {"temprature": 1}}, "temprature"),
])
def test_refusals_name_the_field(openai_client, kwargs, param):
    kwargs = {"input": "hi", **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        openai_client.responses.create(model=MODEL, max_output_tokens=16, **kwargs)
    assert err.value.param == param, err.value.message
    validate("ErrorResponse", err.value.body if "error" in err.value.body else {"error": err.value.body})


def test_store_is_accepted_but_nothing_is_stored(openai_client):
    resp = openai_client.responses.create(model=MODEL, input="hi", max_output_tokens=16, store=True)
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.responses.retrieve(resp.id)
    assert "stores no responses" in err.value.message


def test_models_retrieve(openai_client):
    raw = openai_client.models.with_raw_response.retrieve(MODEL)
    validate("Model", json.loads(raw.http_response.text))
    assert raw.parse().id == MODEL and raw.parse().object == "model"
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.models.retrieve("gpt-4o")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(model="gpt-4o", input="hi")
