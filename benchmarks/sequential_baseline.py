"""The sequential, batch-1, plain-PyTorch AuroraCap pipeline of upstream ``inference.py`` (perf_ratios' baseline).

PyAV decode from frame 0 up to the last sampled frame (``decode_video(strategy="sequential")``, the reference
reader's way), CLIP preprocessing, vision tower + projector, one frame's features spliced at each frame's span,
Hugging Face ``LlamaForCausalLM`` prefill and a greedy loop with its KV cache — the pieces of the transformers
API (``aurora_serve.hf``, also the parity oracle), stage by stage, independent of SGLang. Greedy to exactly ``max_tokens`` (no EOS stop), like the served runs' ``ignore_eos``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .loadgen import PROMPT


def baseline(model_dir: Path, items, num_frames: int, ratio: float, max_tokens: int, n: int) -> dict:
    """``n`` of ``items`` one after another, batch 1, upstream semantics (the last item warms up, uncounted);
    mean seconds per stage and CPU-seconds per request."""
    from aurora_serve.hf import AuroraForConditionalGeneration, AuroraProcessor
    from aurora_serve.media.decode import decode_video

    processor = AuroraProcessor.from_pretrained(model_dir)
    model = AuroraForConditionalGeneration.from_pretrained(model_dir)
    parts = [{"type": "video"}, {"type": "text", "text": PROMPT}]
    text = processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True)
    llm = model.language_model

    @torch.no_grad()
    def one(data: bytes) -> dict:
        t = [time.perf_counter()]
        frames = decode_video(data, num_frames, strategy="sequential")  # from frame 0, as upstream
        t.append(time.perf_counter())
        inputs = processor(videos=frames, text=text)  # CLIP preprocessing (and the prompt's few tokens)
        t.append(time.perf_counter())
        feats = model.get_media_features(inputs["pixel_values"], ratio)
        t.append(time.perf_counter())
        ids, mask, _ = model.expand_inputs(inputs["input_ids"], inputs["attention_mask"], len(frames), ratio)
        out = llm(inputs_embeds=model.embed_inputs(ids, mask, feats), use_cache=True)
        t.append(time.perf_counter())
        for _ in range(max_tokens - 1):  # greedy, ignore_eos like the served runs
            nxt = out.logits[0, -1].argmax().view(1, 1)
            out = llm(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        t.append(time.perf_counter())
        names = ("decode_sequential", "preprocess", "vision", "prefill", "decode_tokens")
        return {name: t[i + 1] - t[i] for i, name in enumerate(names)} | {"total": t[-1] - t[0]}

    one(items[-1].data)  # warm-up (allocator, first-call costs), not counted
    cpu = time.process_time()
    rows = [one(item.data) for item in items[:n]]
    total = sum(r["total"] for r in rows)
    stages = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return {"requests": len(rows), "wall_s": total, "requests_per_s": len(rows) / total,
            "output_tokens_per_s": len(rows) * max_tokens / total, "mean_stage_s": stages,
            "cpu_s_per_request": (time.process_time() - cpu) / len(rows)}


def media_floor(videos, num_frames: int) -> float:
    """Median seconds to decode (by seeking, as the server does) and CLIP-preprocess one of ``videos``: work a
    repeated request still does before the cache lookup (the cache identity hashes the decoded pixels)."""
    from aurora_serve.media.decode import decode_video
    from aurora_serve.media.preprocess import clip_preprocess

    times = []
    for video in videos:
        for _ in range(3):
            start = time.perf_counter()
            clip_preprocess(decode_video(video.data, num_frames))
            times.append(time.perf_counter() - start)
    return statistics.median(times) if times else 0.0
