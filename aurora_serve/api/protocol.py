"""OpenAI wire models: chat completions (request, response, stream chunk), models list, errors; captions.

Field names and order follow openai-openapi's ``CreateChatCompletionRequest`` (its own block, then the shared
model-response properties) and ``CreateChatCompletionResponse``; responses validate against OpenAI's schemas.
Requests are strict (``"0.5"`` is not a number, ``true`` is not 1) and reject unknown fields the way OpenAI
does ("Unrecognized request argument"), so a misspelt extension never silently falls back to a default.

aurora-serve extensions (grouped at the end of each model, sent by OpenAI SDKs through ``extra_body``):

- ``token_kept_ratio`` (0 < ρ <= 1): share of visual tokens kept per frame by AuroraCap's token merging;
  top-level (all media of the request) or per part inside ``video_url`` / ``image_url`` (wins).
- The frame sampling of each video (README "Frame sampling"): ``num_frames`` (1..--max-frames, sampled uniformly),
  or ``fps`` (a rate over the window) capped by ``max_frames``; ``start`` / ``end`` (seconds) pick a window.
  Top-level (all videos of the request) or per ``video_url`` (wins); vLLM's ``media_io_kwargs.video`` and
  ``mm_processor_kwargs`` carry the same request-level options (``api.options`` maps them).
- ``ignore_eos``: keep generating to ``max_tokens`` (benchmarks; as in vLLM and SGLang).
- ``uuid`` on an ``image_url`` / ``video_url`` part (as in vLLM): the caller's stable id for that media. The
  processed frames are cached under it, so a later part with the same ``uuid`` may leave out ``url``: no fetch,
  no decode. The server trusts the id (same id, same media); ids are per API key.
- ``usage.visual_tokens``: visual tokens the media occupied in the prompt (frames × tokens_per_frame(ρ)), beside
  ``prompt_tokens_details.image_tokens`` / ``video_tokens`` (their split, as vLLM and SGLang report it);
  ``usage.frames``: the frames each media item actually got, in request order (an image: 1).

vLLM / SGLang request fields honoured: ``top_k``, ``min_p``, ``repetition_penalty``, ``min_tokens``, ``ignore_eos``,
``chat_template_kwargs`` (accepted; AuroraCap's template reads no variables), ``media_io_kwargs``,
``mm_processor_kwargs``, ``stream_options.continuous_usage_stats``. The other fields of their schemas are set
aside here (``foreign``) and refused by the service with a 400 that says why, unless at their default.

``POST /v1/captions`` is ours: one media item (URL or upload) + an optional prompt → a ``caption`` object,
or with ``stream`` the same ``chat.completion.chunk`` events as chat (usage always included).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from aurora_serve.api.options import FOREIGN

Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Frames = Annotated[int, Field(ge=1)]
Number = Annotated[float, Field(allow_inf_nan=False)]  # fps and seconds: ranges are MediaPolicy's to check
Omit = Field(default=None, exclude_if=lambda v: v is None)  # optional output fields: absent, not null


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- request ---------------------------------------------------------------------------------------------


MediaId = Annotated[str, Field(min_length=1, max_length=256)]


class FrameOptions(BaseModel):
    """The frame-sampling options (README "Frame sampling"), under the same names wherever they may be given:
    a video part, a chat request, a Responses video part or request. Ranges are ``MediaPolicy``'s to check."""

    num_frames: Frames | None = None
    fps: Number | None = None
    max_frames: int | None = None
    start: Number | None = None
    end: Number | None = None


class ImageURL(_Request):
    url: str | None = None  # None only with the part's uuid (media cached under it)
    detail: Literal["auto", "low", "high"] | None = None
    # extension
    token_kept_ratio: Ratio | None = None


class VideoURL(_Request, FrameOptions):
    """``fps`` and ``max_frames`` are also SGLang's own (``ChatCompletionMessageContentVideoURL``)."""

    url: str | None = None  # None only with the part's uuid
    # extension
    token_kept_ratio: Ratio | None = None


class TextPart(_Request):
    type: Literal["text"]
    text: str


class _MediaPart(_Request):
    @model_validator(mode="after")
    def _url_or_uuid(self):
        media = getattr(self, self.type)
        if (media is None or media.url is None) and self.uuid is None:
            raise ValueError(f"{self.type}.url is required (it may be left out only with a uuid of cached media)")
        return self


class ImagePart(_MediaPart):
    type: Literal["image_url"]
    image_url: ImageURL | None = None
    # extension
    uuid: MediaId | None = None


class VideoPart(_MediaPart):
    type: Literal["video_url"]
    video_url: VideoURL | None = None
    # extension
    uuid: MediaId | None = None


ContentPart = Annotated[Union[TextPart, ImagePart, VideoPart], Field(discriminator="type")]


class ChatMessage(_Request):
    role: Literal["developer", "system", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Request):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None
    continuous_usage_stats: bool | None = None  # vLLM's: the usage so far on every chunk


class ChatCompletionRequest(_Request, FrameOptions):
    """OpenAI's request; fields this server cannot honour are accepted here and refused by the service
    with a 400 that names them (so the message says *unsupported*, not *unknown*)."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    modalities: list[str] | None = None
    reasoning_effort: str | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2, allow_inf_nan=False)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2, allow_inf_nan=False)] | None = None
    web_search_options: dict[str, Any] | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    store: bool | None = None
    stream: bool | None = False
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    n: int | None = None
    prediction: dict[str, Any] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    service_tier: str | None = None
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    verbosity: str | None = None
    # --- vLLM / SGLang sampling and template fields (see the module docstring) ---
    top_k: Annotated[int, Field(ge=-1)] | None = None  # -1 or 0: off (vLLM and SGLang spellings)
    min_p: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0, le=2, allow_inf_nan=False)] | None = None
    min_tokens: Annotated[int, Field(ge=0)] | None = None
    ignore_eos: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    media_io_kwargs: dict[str, dict[str, Any]] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    # --- aurora-serve extensions (see the module docstring; the frame options come from FrameOptions) ---
    token_kept_ratio: Ratio | None = None
    _foreign: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _set_aside_foreign(cls, data, handler):
        """vLLM's and SGLang's other fields are kept for the service to refuse by name, with a reason; a
        field no schema knows stays pydantic's "Unrecognized request argument"."""
        foreign = {k: data[k] for k in FOREIGN if k in data} if isinstance(data, dict) else {}
        model = handler({k: v for k, v in data.items() if k not in foreign} if foreign else data)
        model._foreign = foreign
        return model

    @property
    def foreign(self) -> dict[str, Any]:
        return self._foreign


class CaptionRequest(_Request, FrameOptions):
    """``POST /v1/captions`` as JSON (multipart carries the same fields as form fields plus ``file``)."""

    url: str | None = None  # required unless a file is uploaded (multipart)
    prompt: str | None = None
    token_kept_ratio: Ratio | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    stream: bool | None = False


# --- responses -------------------------------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0
    image_tokens: int = 0  # as vLLM and SGLang report them (guidellm reads both)
    video_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    # extensions: visual tokens the media occupied in the prompt (included in prompt_tokens), and the frames
    # each media item actually got, in request order (an image: 1)
    visual_tokens: int = 0
    frames: list[int] = Field(default_factory=list)


FinishReason = Literal["stop", "length"]


class ResponseMessage(BaseModel):
    content: str | None
    refusal: str | None = None
    role: Literal["assistant"] = "assistant"


class Choice(BaseModel):
    finish_reason: FinishReason
    index: int = 0
    message: ResponseMessage
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    choices: list[Choice]
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage


class Delta(BaseModel):
    content: str | None = Omit
    role: Literal["assistant"] | None = Omit


class ChunkChoice(BaseModel):
    delta: Delta
    finish_reason: FinishReason | None = None
    index: int = 0
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: Usage | None = None  # sent (null, then the totals) only with stream_options.include_usage


class Caption(BaseModel):
    """``POST /v1/captions`` JSON answer (streams use ``ChatCompletionChunk``)."""

    id: str
    object: Literal["caption"] = "caption"
    created: int
    model: str
    caption: str
    finish_reason: FinishReason
    kind: Literal["image", "video"]  # decided from the bytes, never from a name
    token_kept_ratio: float
    num_frames: int  # frames actually sampled (the rule over the video: README "Frame sampling"); 1 for an image
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "aurora-serve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo
