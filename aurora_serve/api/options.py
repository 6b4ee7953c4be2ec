"""The request options beyond OpenAI's own fields, as a chat request may spell them: where the frame-sampling
options may sit and which wins, vLLM's and SGLang's sampling extras, and the vLLM / SGLang fields this server
knows but does not implement (each refused, unless at its default, with the reason).

Frame sampling (``num_frames``, ``fps``, ``max_frames``, ``start``, ``end``; README "Frame sampling"):

- Request level, for every video of the request, from three places that must agree: our top-level fields;
  vLLM's ``media_io_kwargs.video`` (``num_frames``, ``fps``); the HF-processor keys of ``mm_processor_kwargs``
  (``num_frames``, ``fps``, ``max_frames``; ``do_sample_frames: true`` accepted). One option given twice with
  different values is a 400 naming the second place; any other key is a 400 naming it.
- Part level (``video_url``, SGLang's ``fps`` / ``max_frames`` included) wins over the request: a part's count
  rule (``num_frames`` or ``fps``) replaces the request's rule whole; ``max_frames``, ``start``, ``end`` and
  ``token_kept_ratio`` win key by key. ``MediaPolicy.item`` then checks each value and applies the defaults,
  naming each option where it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.item import SAMPLING_OPTIONS

ITEM = ("token_kept_ratio", *SAMPLING_OPTIONS)  # what a request may set on a media item
MEDIA_IO_VIDEO = ("num_frames", "fps")  # vLLM's VideoMediaIO keys this server can honour
MM_PROCESSOR = ("num_frames", "fps", "max_frames")  # the HF video processors' sampling keys


@dataclass(frozen=True)
class Options:
    """Item options given by a request: each value and where it sits in the request (for errors)."""

    values: dict[str, Any] = field(default_factory=dict)
    places: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, obj: Any, prefix: str = "", names: tuple[str, ...] = ITEM) -> "Options":
        """The options ``obj`` (a model or a dict) sets, named ``prefix.name``."""
        get = obj.get if isinstance(obj, dict) else lambda name: getattr(obj, name, None)
        values = {name: get(name) for name in names if get(name) is not None}
        return cls(values, {name: f"{prefix}.{name}" if prefix else name for name in values})

    def over(self, base: "Options") -> "Options":
        """These options (a part's) over ``base`` (the request's): a count rule replaces the other whole."""
        values, places = dict(base.values), dict(base.places)
        if "num_frames" in self.values or "fps" in self.values:
            for name in ("num_frames", "fps"):
                values.pop(name, None)
                places.pop(name, None)
        return Options({**values, **self.values}, {**places, **self.places})

    def merged(self, other: "Options") -> "Options":
        """Both sets of request-level options; one option given twice must have one value."""
        for name, value in other.values.items():
            if name in self.values and self.values[name] != value:
                raise InvalidRequestError(
                    f"{other.places[name]} ({value!r}) conflicts with {self.places[name]} ({self.values[name]!r}); "
                    "give each sampling option once", param=other.places[name], code="conflicting_options")
        return Options({**self.values, **other.values}, {**self.places, **other.places})


def request_options(req: Any) -> Options:
    """A chat request's item options for all its media: top-level, ``media_io_kwargs``, ``mm_processor_kwargs``."""
    options = Options.of(req)
    for modality, kwargs in (req.media_io_kwargs or {}).items():
        where = f"media_io_kwargs.{modality}"
        if modality not in ("video", "image"):
            raise InvalidRequestError(f"{where}: AuroraCap takes images and videos only", param=where,
                                      code="unsupported_parameter")
        known = MEDIA_IO_VIDEO if modality == "video" else ()
        _only(kwargs, known, where, "an image is always one frame" if modality == "image" else "")
        options = options.merged(Options.of(kwargs, where, known))
    kwargs = req.mm_processor_kwargs or {}
    if kwargs.get("do_sample_frames", True) is not True:
        raise InvalidRequestError("mm_processor_kwargs.do_sample_frames must be true: this server always samples "
                                  "frames from the video itself", param="mm_processor_kwargs.do_sample_frames",
                                  code="unsupported_parameter")
    _only({k: v for k, v in kwargs.items() if k != "do_sample_frames"}, MM_PROCESSOR, "mm_processor_kwargs", "")
    return options.merged(Options.of(kwargs, "mm_processor_kwargs", MM_PROCESSOR))


def _only(kwargs: dict, known: tuple[str, ...], where: str, why: str) -> None:
    for key in kwargs:
        if key not in known:
            honoured = f"the keys honoured here are {', '.join(known)}" if known else why
            raise InvalidRequestError(f"{where}.{key} is not supported ({honoured})", param=f"{where}.{key}",
                                      code="unsupported_parameter")


def sampling_extras(req: Any, max_new_tokens: int) -> dict[str, Any]:
    """vLLM's / SGLang's sampling extras as SGLang's sampling parameters (ranges checked by the protocol)."""
    out: dict[str, Any] = {}
    if req.top_k is not None:
        out["top_k"] = -1 if req.top_k in (-1, 0) else req.top_k  # vLLM's 0 and SGLang's -1 both mean "off"
    for name in ("min_p", "repetition_penalty"):
        if getattr(req, name) is not None:
            out[name] = getattr(req, name)
    if req.min_tokens:
        if req.min_tokens > max_new_tokens:
            raise InvalidRequestError(f"min_tokens ({req.min_tokens}) is over the most tokens this request may "
                                      f"generate ({max_new_tokens})", param="min_tokens")
        out["min_new_tokens"] = req.min_tokens
    return out


# --- vLLM and SGLang chat fields this server does not implement -------------------------------------------

_CONSTRAINED = "constrained (guided / structured) decoding is not supported"
_TEMPLATE = "AuroraCap's prompt is upstream's fixed Vicuna template"
_MEDIA = "send num_frames / fps / max_frames / start / end (README: Frame sampling)"
# field → (values that change nothing and pass, why anything else is refused)
FOREIGN: dict[str, tuple[tuple, str]] = {
    # vLLM (vllm/entrypoints/openai/chat_completion/protocol.py, ChatCompletionRequest)
    "use_beam_search": ((None, False), "beam search is not supported"),
    "best_of": ((None, 1), "best_of > 1 is not supported"),
    "length_penalty": ((None, 1.0), "length_penalty belongs to beam search, which is not supported"),
    "stop_token_ids": ((None, []), "stop_token_ids is not supported; send stop strings"),
    "include_stop_str_in_output": ((None, False), "include_stop_str_in_output is not supported"),
    "skip_special_tokens": ((None, True), "special tokens are always skipped"),
    "spaces_between_special_tokens": ((None, True), "special tokens are always skipped"),
    "truncate_prompt_tokens": ((None,), "prompts are never truncated: one over the context length is a 400"),
    "truncation_side": ((None,), "prompts are never truncated: one over the context length is a 400"),
    "prompt_logprobs": ((None,), "logprobs are not supported"),
    "logprob_token_ids": ((None,), "logprobs are not supported"),
    "return_tokens_as_token_ids": ((None, False), "logprobs are not supported"),
    "allowed_token_ids": ((None, []), "allowed_token_ids is not supported"),
    "bad_words": ((None, []), "bad_words is not supported"),
    "logits_processors": ((None, []), "custom logits processors are not supported"),
    "echo": ((None, False), "echo is not supported"),
    "add_generation_prompt": ((None, True), _TEMPLATE + ": it always ends with the assistant's turn"),
    "continue_final_message": ((None, False), _TEMPLATE + ": it always ends with the assistant's turn"),
    "add_special_tokens": ((None, False), _TEMPLATE + ": it adds its own special tokens"),
    "documents": ((None, []), _TEMPLATE + ": it takes no documents"),
    "chat_template": ((None,), _TEMPLATE),
    "structured_outputs": ((None,), _CONSTRAINED),
    "guided_json": ((None,), _CONSTRAINED),
    "guided_regex": ((None,), _CONSTRAINED),
    "guided_choice": ((None,), _CONSTRAINED),
    "guided_grammar": ((None,), _CONSTRAINED),
    "guided_decoding_backend": ((None,), _CONSTRAINED),
    "guided_whitespace_pattern": ((None,), _CONSTRAINED),
    "priority": ((None, 0), "request priorities are not supported"),
    "request_id": ((None,), "request_id is not supported: the server names each request itself"),
    "cache_salt": ((None,), "cache_salt is not supported (media uuids are already scoped per API key)"),
    "kv_transfer_params": ((None,), "disaggregated prefill is not supported"),
    "vllm_xargs": ((None, {}), "vllm_xargs is not supported"),
    "thinking_token_budget": ((None,), "AuroraCap is not a reasoning model"),
    "include_reasoning": ((None, True), "AuroraCap is not a reasoning model"),
    # SGLang (python/sglang/srt/entrypoints/openai/protocol.py, ChatCompletionRequest)
    "regex": ((None,), _CONSTRAINED),
    "ebnf": ((None,), _CONSTRAINED),
    "json_schema": ((None,), _CONSTRAINED),
    "stop_regex": ((None,), "stop_regex is not supported; send stop strings"),
    "no_stop_trim": ((None, False), "no_stop_trim is not supported"),
    "lora_path": ((None,), "LoRA adapters are not supported"),
    "session_params": ((None,), "sessions are not supported"),
    "separate_reasoning": ((None, True), "AuroraCap is not a reasoning model"),
    "stream_reasoning": ((None, True), "AuroraCap is not a reasoning model"),
    "return_hidden_states": ((None, False), "hidden states are not returned"),
    "custom_logit_processor": ((None,), "custom logits processors are not supported"),
    "custom_params": ((None,), "custom logits processors are not supported"),
    "video_config": ((None, {}), _MEDIA),
    "images_config": ((None, {}), "an image is one 378-px frame; images_config is not supported"),
    "max_dynamic_patch": ((None,), "AuroraCap takes whole 378-px frames, no tiling"),
    "min_dynamic_patch": ((None,), "AuroraCap takes whole 378-px frames, no tiling"),
    "use_audio_in_video": ((None, False), "AuroraCap takes no audio"),
}


def check_foreign(foreign: dict[str, Any]) -> None:
    """Refuse every vLLM / SGLang field that is set to something this server would not honour."""
    for name, value in foreign.items():
        passes, why = FOREIGN[name]
        if not any(value == ok and isinstance(value, bool) == isinstance(ok, bool) for ok in passes):
            raise InvalidRequestError(f"{name}={value!r} is refused: {why}", param=name, code="unsupported_parameter")
