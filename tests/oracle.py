"""The parity oracle for the SGLang path: AuroraCap through the transformers API (``aurora_serve.hf``).

One oracle, not two: this file used to hold a hand-rolled plain-PyTorch pipeline; it is now the transformers
API, with upstream ``inference.py`` semantics (one placeholder per frame, frames separated by a space, BOS on
the first chunk only, greedy decoding, stop at EOS). It shares the vision tower, projector, preprocessing and
prompt expansion with the server — each tested on its own (against HF CLIP, a float64 merge, transformers'
CLIPImageProcessor, and an independent statement of the upstream tokenization in tests/hf/test_processing.py)
— and nothing of SGLang: the LLM is transformers' ``LlamaForCausalLM`` under ``GenerationMixin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aurora_serve.hf import AuroraForConditionalGeneration, AuroraProcessor

Media = tuple[str, np.ndarray, float]  # (kind "image" | "video", frames (F, H, W, 3) uint8, token_kept_ratio)


class Oracle:
    def __init__(self, model_dir: str | Path):
        self.processor = AuroraProcessor.from_pretrained(model_dir)
        self.model = AuroraForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
        self.tokenizer = self.processor.tokenizer

    @torch.no_grad()
    def generate(self, prompt: str, media: list[Media], max_new_tokens: int) -> tuple[list[int], int]:
        """Greedy ids and the prompt length the LLM saw, for one user turn: the media (in order, each at its
        own ρ) then the instruction ``prompt``, in AuroraCap's chat template."""
        parts = [{"type": kind} for kind, _, _ in media] + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True)
        images = [frames[0] for kind, frames, _ in media if kind == "image"]
        videos = [frames for kind, frames, _ in media if kind == "video"]
        inputs = self.processor(images=images or None, videos=videos or None, text=text, return_tensors="pt",
                                num_frames=max(len(frames) for _, frames, _ in media))  # frames come sampled
        ratios = [rho for _, _, rho in media]
        # the reference merge, whatever the device: the engine's Triton kernel is what this checks
        out = self.model.generate(**inputs, token_kept_ratio=ratios, max_new_tokens=max_new_tokens, do_sample=False,
                                  merge_backend="reference")
        _, mask, _ = self.model.expand_inputs(inputs["input_ids"], inputs["attention_mask"],
                                              inputs["pixel_values"].shape[0], ratios, inputs["frames_per_media"])
        return out[0, inputs["input_ids"].shape[1]:].tolist(), int(mask.sum())
