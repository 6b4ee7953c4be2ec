"""An engine without SGLang that keeps ``AuroraEngine``'s interface, for HTTP-layer tests that need paths the
real tiny model cannot be made to take on demand (a failure after the 200, a slow or failed start) or that
must run in milliseconds (benchmark smoke tests).

It streams SGLang 0.5.23's cumulative ``text`` and ``meta_info``: "Hello world" (two tokens, ``stop``), or with
``ignore_eos`` exactly ``max_new_tokens`` words (``length``). Visual tokens are the real count for what was
asked (frames × tokens per frame at the default geometry). Words in the prompt script failures:
``raise-before`` (before the first chunk), ``raise-mid`` (after it), ``abort-mid`` (the engine aborts it).
"""

from __future__ import annotations

import asyncio
import json
import threading

from aurora_serve.config import EngineSettings
from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import MediaError
from aurora_serve.model.spec import AuroraSpec, VisionConfig


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return json.dumps(messages)


class FakeEngine:
    gate: threading.Event | None = None  # set: start-up waits for it (a slow load)
    fail_start = False  # a load that fails
    token_delay = 0.0  # seconds between streamed tokens

    def __init__(self, settings: EngineSettings):
        if FakeEngine.gate is not None:
            FakeEngine.gate.wait(10)
        if FakeEngine.fail_start:
            raise RuntimeError("no weights")
        self.settings = settings
        self.tokenizer = FakeTokenizer()
        self.context_length = 4096
        self.spec = AuroraSpec(vision=VisionConfig(), text_hidden_size=64, image_token_id=0)
        self.aborted: list[str] = []
        self._frames: dict[str, dict[str, list[int]]] = {}

    async def generate(self, req: GenerateRequest) -> dict:
        last = None
        async for last in self.stream(req):
            pass
        return last

    async def stream(self, req: GenerateRequest):
        media = self.media_items("image", req.images) + self.media_items("video", req.videos)
        visual = sum(m.sampling.most_frames * self.spec.vision.tokens_per_frame(m.token_kept_ratio) for m in media)
        self._frames[req.rid] = {k: [m.sampling.most_frames for m in media if m.kind == k] for k in ("image", "video")}
        if "raise-before" in req.prompt:
            raise MediaError("the video is corrupt")
        n = req.sampling_params.get("max_new_tokens") or 2
        words = ["word"] * n if req.sampling_params.get("ignore_eos") else ["Hello", "world"][:n]
        for i in range(1, len(words) + 1):
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            if i == 2 and "raise-mid" in req.prompt:
                raise MediaError("decoder died mid-stream")
            reason = None
            if i == 2 and "abort-mid" in req.prompt:
                reason = {"type": "abort", "message": "scheduler out of memory", "status_code": 500}
            elif i == len(words):
                reason = {"type": "length", "length": n} if len(words) == n else {"type": "stop", "matched": 2}
            meta = {"prompt_tokens": 10 + visual, "completion_tokens": i, "cached_tokens": 0,
                    "video_tokens": visual, "finish_reason": reason}
            yield {"text": " ".join(words[:i]), "output_ids": list(range(i)), "meta_info": meta}
            if reason is not None:
                return

    def media_items(self, kind, values):
        return [self.settings.media.parse(kind, v) for v in values]

    def frames_sampled(self, rid: str):
        return self._frames.pop(rid, None)

    def abort(self, rid: str) -> None:
        self.aborted.append(rid)

    def check_alive(self) -> None:
        pass

    def shutdown(self) -> None:
        pass
