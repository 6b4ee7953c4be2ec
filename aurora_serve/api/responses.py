"""``POST /v1/responses`` (OpenAI's Responses API), the request side: its wire model, what is refused, and its
conversion to the chat request that ``JobBuilder`` already serves (one path to the engine).

``input`` is a string (one user message) or a list of messages (``EasyInputMessage`` / ``InputMessage``, and an
assistant's earlier output message) whose content is a string or parts: ``input_text``, ``input_image``
(``image_url``: an http(s), ``data:`` or ``file://`` URL), assistant ``output_text``, and our extension
``input_video`` (``video_url`` plus the per-video options of a chat ``video_url``: ``num_frames``, ``fps``,
``max_frames``, ``start``, ``end``, ``token_kept_ratio``; and ``uuid``, as on chat parts). Request-level options
come through ``extra_body``, as on chat.

Honoured: ``model``, ``input``, ``instructions`` (a system message first), ``max_output_tokens``, ``temperature``,
``top_p``, ``stream``, ``metadata`` (echoed). Accepted with no effect: ``store`` (nothing is stored, whatever it
says: the response reports ``store: false`` and ``GET /v1/responses/{id}`` is a 404), ``user``,
``safety_identifier``, ``prompt_cache_*``, ``service_tier``, ``parallel_tool_calls``, ``max_tool_calls``,
``stream_options``, ``text.verbosity``, and the defaults of what is refused otherwise. Refused with a 400 naming
the field (``REFUSED``): tools, a forced tool choice, background mode, stored-response features
(``previous_response_id``, ``conversation``, ``prompt``, ``context_management``), ``include``, reasoning,
structured output, ``truncation: auto``, logprobs, moderation, files, and input items other than messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from aurora_serve.api.engine_request import ChatPaths
from aurora_serve.api.options import ITEM, Options
from aurora_serve.api.protocol import ChatCompletionRequest, FrameOptions, MediaId, Ratio
from aurora_serve.errors import InvalidRequestError


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Sampled(_Request):
    # extensions, as on a chat part
    token_kept_ratio: Ratio | None = None
    uuid: MediaId | None = None


class InputText(_Request):
    type: Literal["input_text"]
    text: str
    prompt_cache_breakpoint: dict[str, Any] | None = None


class InputImage(_Sampled):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None


class InputVideo(_Sampled, FrameOptions):
    """Our extension: a video part, shaped like ``input_image``."""

    type: Literal["input_video"]
    video_url: str | None = None


class InputFile(BaseModel):
    model_config = ConfigDict(extra="allow")  # refused whole, whatever it holds
    type: Literal["input_file"]


class OutputText(_Request):
    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(_Request):
    type: Literal["refusal"]
    refusal: str


Part = Annotated[Union[InputText, InputImage, InputVideo, InputFile, OutputText, Refusal], Field(discriminator="type")]


class Message(_Request):
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class OtherItem(BaseModel):
    """Any other input item (a tool call, its output, an item reference, reasoning): refused by its type."""

    model_config = ConfigDict(extra="allow")
    type: str


def _item_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "message" if kind in (None, "message") else "other"


InputItem = Annotated[Union[Annotated[Message, Tag("message")], Annotated[OtherItem, Tag("other")]],
                      Discriminator(_item_kind)]


class CreateResponse(_Request, FrameOptions):
    """OpenAI's ``CreateResponse`` (field names as published), plus our extensions at the end."""

    model: str
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    text: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    store: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    context_management: list[Any] | None = None
    max_tool_calls: int | None = None
    top_logprobs: int | None = None
    moderation: dict[str, Any] | None = None
    # --- aurora-serve extensions (as on chat; the frame options come from FrameOptions) ---
    token_kept_ratio: Ratio | None = None
    ignore_eos: bool | None = None


_Check = Callable[[Any], bool]
_STORED = "this server stores no responses or conversations: send the whole conversation in input"
# (field, refused when, why)
REFUSED: list[tuple[str, _Check, str]] = [
    ("tools", bool, "tools are not supported by AuroraCap"),
    ("tool_choice", lambda v: v not in (None, "none", "auto"), "tool_choice is not supported by AuroraCap"),
    ("background", bool, "background mode is not supported: this server stores no responses"),
    ("previous_response_id", lambda v: v is not None, _STORED),
    ("conversation", lambda v: v is not None, _STORED),
    ("prompt", lambda v: v is not None, "stored prompt templates are not supported"),
    ("context_management", bool, "context management is not supported"),
    ("include", bool, "include is not supported: there is no extra output data to include"),
    ("reasoning", lambda v: any(x is not None for x in (v or {}).values()), "AuroraCap is not a reasoning model"),
    ("text", lambda v: (v or {}).get("format", {"type": "text"}) != {"type": "text"}, "only text output is supported"),
    ("truncation", lambda v: v == "auto", "truncation is not supported: an input over the context length is a 400"),
    ("top_logprobs", lambda v: v not in (None, 0), "logprobs are not supported"),
    ("moderation", lambda v: v is not None, "moderation is not supported"),
]


def to_chat(body: CreateResponse) -> tuple[ChatCompletionRequest, ChatPaths]:
    """The chat request that serves ``body``, and where its messages came from (for error params)."""
    for name, refused, why in REFUSED:
        if refused(getattr(body, name)):
            raise InvalidRequestError(why, param=name, code="unsupported_parameter")
    messages: list[dict] = []
    places: list[str] = []
    if body.instructions is not None:
        messages.append({"role": "system", "content": body.instructions})
        places.append("instructions")
    items = [Message(role="user", content=body.input)] if isinstance(body.input, str) else body.input
    for k, item in enumerate(items):
        where = "input" if isinstance(body.input, str) else f"input.{k}"
        if isinstance(item, OtherItem):
            raise InvalidRequestError(f"input items of type {item.type!r} are not supported: this server takes "
                                      "messages (no tools, no stored items)", param=f"{where}.type",
                                      code="unsupported_parameter")
        content = item.content if isinstance(item.content, str) else \
            [_chat_part(part, f"{where}.content.{j}") for j, part in enumerate(item.content)]
        messages.append({"role": item.role, "content": content})
        places.append(where if isinstance(body.input, str) else f"{where}.content")
    if not any(place.startswith("input") for place in places):
        raise InvalidRequestError("input has no message", param="input")
    extensions = (*ITEM, "ignore_eos")
    chat = {"model": body.model, "messages": messages, "max_completion_tokens": body.max_output_tokens,
            "temperature": body.temperature, "top_p": body.top_p, "stream": body.stream,
            **{name: getattr(body, name) for name in extensions}}
    try:
        request = ChatCompletionRequest.model_validate({k: v for k, v in chat.items() if v is not None})
    except ValidationError as e:  # the checks above make this unreachable; never a 500 if it is not
        raise InvalidRequestError(f"input: {e.errors()[0]['msg']}", param="input") from None
    return request, ChatPaths(contents=places, options_in_part=True)


def _chat_part(part: Any, where: str) -> dict:
    """A Responses content part as the chat part it means."""
    if isinstance(part, (InputText, OutputText)):
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "text", "text": part.refusal}
    if isinstance(part, InputFile):
        raise InvalidRequestError("input_file parts are not supported: AuroraCap reads images and videos",
                                  param=f"{where}.type", code="unsupported_parameter")
    if isinstance(part, InputImage) and part.file_id is not None:
        raise InvalidRequestError("file ids are not supported (this server stores no files): send image_url",
                                  param=f"{where}.file_id", code="unsupported_parameter")
    kind, url = ("image_url", part.image_url) if isinstance(part, InputImage) else ("video_url", part.video_url)
    if url is None and part.uuid is None:
        raise InvalidRequestError(f"{kind} is required (it may be left out only with a uuid of cached media)",
                                  param=f"{where}.{kind}")
    options = Options.of(part).values  # an image part has no frame options
    out: dict = {"type": kind, kind: {"url": url, **options}}
    if part.uuid is not None:
        out["uuid"] = part.uuid
    return out
