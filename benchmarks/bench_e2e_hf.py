"""Benchmark: AuroraCap end to end through the transformers API (``aurora_serve.hf``) at full size: ViT-H/14-378
(32 layers, 31 run) + projector + the 7B Llama of Vicuna-7B-v1.5-16k, random weights, fp16 or bf16, on CUDA.

For 8 frames at ρ ∈ {1.0, 0.5, 0.2, 0.1}, with the merge step on the Triton kernel and on the PyTorch reference:

- ``vision``: vision tower + projector (``get_media_features``);
- ``prefill``: the LLM over the widened prompt (embeddings with the features spliced in), last logits only;
- ``ttft``: time to first token, ``generate(max_new_tokens=1)`` from the processor's outputs on the device.

Then decode tokens/s at batch 1 and 16 (ρ 0.2, ``auto`` merge): ``generate`` of N tokens (EOS ignored), timed
from the first step's logits to the last step's. Target (GPU): vision + prefill at ρ 0.2 at least 3x faster than at ρ 1.0
(8 × 171 = 1.4k vs 8 × 729 = 5.8k visual tokens).

Frames are synthesised as tensors and the prompt is AuroraCap's 8-frame prompt as token ids (auroracap.md §7.1,
one placeholder per frame): no tokenizer, no PyAV, no Pillow, no SGLang.

    python -m benchmarks.bench_e2e_hf                      # CUDA, fp16
    python -m benchmarks.bench_e2e_hf --dtype bf16 --decode-tokens 128
    python -m benchmarks.bench_e2e_hf --smoke              # tiny shape on CPU, seconds (checks the script)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import LogitsProcessor, LogitsProcessorList

from aurora_serve.hf import AuroraConfig, AuroraForConditionalGeneration
from aurora_serve.hf.loading import default_dtype

from .bench_vision import DTYPES, RATIOS, environment, time_median
from .provenance import REPO, git_state

PLACEHOLDER = 0  # Vicuna's <unk>: the xtuner layout's placeholder
# "USER: <image> … <image>\nDescribe the video in detail. ASSISTANT:" with 8 frames (auroracap.md §7.1)
HEAD, SEP = [1, 3148, 1001, 29901, 29871], 259
TAIL = [29871, 13, 4002, 29581, 278, 4863, 297, 9493, 29889, 319, 1799, 9047, 13566, 29901]
TARGET_SPEEDUP_0_2 = 3.0
SMOKE_TEXT = {"vocab_size": 32000, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4}
SMOKE_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}


def build_model(smoke: bool, device: torch.device, dtype: torch.dtype) -> AuroraForConditionalGeneration:
    """Random weights, initialised on ``device`` directly (the 7B model is ~13.5 GB in fp16)."""
    config = AuroraConfig()
    if smoke:
        text, vision = config.text_config.to_dict(), config.vision_config.to_dict()
        config = AuroraConfig(text_config={**text, **SMOKE_TEXT}, vision_config={**vision, **SMOKE_VISION})
    config.image_token_index = PLACEHOLDER
    with torch.device(device), default_dtype(dtype):
        model = AuroraForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval().requires_grad_(False)


def prompt_inputs(model, frames: int, batch: int, device: torch.device, dtype: torch.dtype) -> dict:
    """The processor's outputs for ``batch`` copies of an ``frames``-frame video prompt, on the device."""
    ids = HEAD + [PLACEHOLDER, SEP] * (frames - 1) + [PLACEHOLDER] + TAIL
    size = model.vision_spec.image_size
    input_ids = torch.tensor([ids] * batch, device=device)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "pixel_values": torch.randn(batch * frames, 3, size, size, device=device, dtype=dtype),
            "frames_per_media": torch.full((batch,), frames, device=device)}


def measure_prefill(model, inputs: dict, rho: float, backend: str, reps: int, device: torch.device) -> dict:
    """Vision, LLM prefill and TTFT (median seconds) for one ρ and merge backend."""
    pixels, frames = inputs["pixel_values"], inputs["frames_per_media"]
    wide, mask, _ = model.expand_inputs(inputs["input_ids"], inputs["attention_mask"], pixels.shape[0], rho, frames)
    with torch.inference_mode():
        embeds = model.embed_inputs(wide, mask, model.get_media_features(pixels, rho, frames, backend))
    assert torch.isfinite(embeds).all(), "non-finite embeddings: the random weights overflowed"

    def vision():
        with torch.inference_mode():
            model.get_media_features(pixels, rho, frames, backend)

    def prefill():
        with torch.inference_mode():
            model.language_model(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=1)

    def ttft():
        model.generate(**inputs, token_kept_ratio=rho, merge_backend=backend, max_new_tokens=1, do_sample=False)

    times = {name: time_median(fn, device, reps) for name, fn in (("vision", vision), ("prefill", prefill), ("ttft", ttft))}
    return {"backend": backend, "token_kept_ratio": rho, "tokens_per_frame": model.tokens_per_frame(rho),
            "prompt_tokens": int(mask.sum()), "vision_ms": times["vision"] * 1e3,
            "prefill_ms": times["prefill"] * 1e3, "vision_plus_prefill_ms": (times["vision"] + times["prefill"]) * 1e3,
            "ttft_ms": times["ttft"] * 1e3}


class StepClock(LogitsProcessor):
    """Records when each step's logits are ready (after a device sync), inside ``generate``."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def __call__(self, input_ids, scores):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())
        return scores


def measure_decode(model, frames: int, batch: int, new_tokens: int, reps: int, device, dtype) -> dict:
    """Generated tokens per second after the first token (ρ 0.2), EOS ignored: the time from the first step's
    logits to the last step's, over the steps between (median of ``reps`` runs after a warm-up)."""
    inputs = prompt_inputs(model, frames, batch, device, dtype)
    per_step = []
    for rep in range(reps + 1):
        clock = StepClock(device)
        model.generate(**inputs, token_kept_ratio=0.2, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, logits_processor=LogitsProcessorList([clock]))
        if rep:  # the first run warms up
            per_step.append((clock.times[-1] - clock.times[0]) / (len(clock.times) - 1))
    step = statistics.median(per_step)
    return {"batch": batch, "new_tokens": new_tokens, "ms_per_step": step * 1e3, "tokens_per_s": batch / step}


def run(args: argparse.Namespace) -> dict:
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    started = time.perf_counter()
    model = build_model(args.smoke, device, dtype)
    init_s = time.perf_counter() - started
    backends = ["reference"] if device.type == "cpu" else ["triton", "reference"]
    inputs = prompt_inputs(model, args.frames, 1, device, dtype)
    rows = [measure_prefill(model, inputs, rho, b, args.reps, device) for b in backends for rho in RATIOS]
    for row in rows:
        base = next(x for x in rows if x["backend"] == row["backend"] and x["token_kept_ratio"] == 1.0)
        row["speedup_vs_rho_1"] = base["vision_plus_prefill_ms"] / row["vision_plus_prefill_ms"]
        row["prefill_speedup_vs_rho_1"] = base["prefill_ms"] / row["prefill_ms"]
        row["ttft_speedup_vs_rho_1"] = base["ttft_ms"] / row["ttft_ms"]
    decode = [measure_decode(model, args.frames, b, args.decode_tokens, args.reps, device, dtype) for b in args.batches]
    best = max(r["speedup_vs_rho_1"] for r in rows if r["token_kept_ratio"] == 0.2 and r["backend"] == backends[0])
    env = {**environment(device), **git_state("aurora_serve", "benchmarks"), "transformers": transformers.__version__,
           "attn_implementation": model.language_model.config._attn_implementation}
    return {"env": env, "smoke": args.smoke, "dtype": args.dtype, "frames": args.frames, "reps": args.reps,
            "model_init_s": init_s, "parameters": sum(p.numel() for p in model.parameters()), "rows": rows,
            "decode": decode, "target": {"rho_0.2_vision_plus_prefill_speedup_vs_rho_1.0": TARGET_SPEEDUP_0_2},
            "target_met": None if args.smoke or device.type == "cpu" else best >= TARGET_SPEEDUP_0_2}


def print_report(report: dict) -> None:
    print(f"AuroraCap via aurora_serve.hf, {report['parameters'] / 1e9:.2f} B parameters, {report['dtype']}, "
          f"{report['frames']} frames, {report['env']['device']}, attention {report['env']['attn_implementation']}")
    print(f"{'backend':<10} {'rho':>4} {'tok/frame':>9} {'prompt':>6} {'vision':>9} {'prefill':>9} {'ttft':>9} "
          f"{'v+p vs 1.0':>10}")
    for r in report["rows"]:
        print(f"{r['backend']:<10} {r['token_kept_ratio']:>4} {r['tokens_per_frame']:>9} {r['prompt_tokens']:>6} "
              f"{r['vision_ms']:>7.1f}ms {r['prefill_ms']:>7.1f}ms {r['ttft_ms']:>7.1f}ms {r['speedup_vs_rho_1']:>9.2f}x")
    for d in report["decode"]:
        print(f"decode batch {d['batch']:>2}: {d['tokens_per_s']:8.1f} tokens/s ({d['ms_per_step']:.1f} ms/step, "
              f"{d['new_tokens']} tokens)")
    print(f"target: vision + prefill at rho 0.2 >= {TARGET_SPEEDUP_0_2}x faster than at 1.0: {report['target_met']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--smoke", action="store_true", help="tiny shape on CPU: checks the script, numbers meaningless")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/bench_e2e_hf_<device>.json on GPU)")
    args = p.parse_args()
    if args.smoke:
        args.device, args.dtype, args.reps, args.frames = "cpu", "fp32", 1, 1
        args.batches, args.decode_tokens = [1, 2], 3
    report = run(args)
    out = args.out or (None if args.device == "cpu" else
                       str(REPO / "benchmarks" / "results" / f"bench_e2e_hf_{report['env']['device'].replace(' ', '_')}.json"))
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")
        print("saved", out)
    print_report(report)


if __name__ == "__main__":
    main()
