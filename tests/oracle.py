"""A plain-PyTorch AuroraCap with upstream ``inference.py`` semantics — the parity oracle for the SGLang path.

Independent of SGLang: Hugging Face ``LlamaForCausalLM`` for the LLM, the upstream tokenization (split the
expanded prompt on ``<image>``, first chunk with BOS, ``-200`` between chunks), one frame's features spliced
at each ``-200``, greedy decoding with a KV cache, stop at EOS. It shares only the vision tower and the
media/preprocessing code with the server (each tested on its own against HF CLIP, a float64 merge and
transformers' CLIPImageProcessor).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from aurora_serve.model.spec import VisionConfig
from aurora_serve.model.token_count import merge_r
from aurora_serve.model.vision import AuroraProjector, AuroraVisionTower

IMAGE_TOKEN_INDEX = -200  # upstream sentinel


def _load_dir(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


class Oracle:
    def __init__(self, model_dir: str | Path):
        model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if (model_dir / "visual_encoder").is_dir():  # xtuner layout
            text_cfg = json.loads((model_dir / "config.json").read_text())
            vis_cfg = json.loads((model_dir / "visual_encoder" / "config.json").read_text())
            llm_w = _load_dir(model_dir)
            vis_w = {k[len("vision_model."):]: v for k, v in _load_dir(model_dir / "visual_encoder").items() if k.startswith("vision_model.")}
            proj = _load_dir(model_dir / "projector")
            proj_w = {"linear_1.weight": proj["model.0.weight"], "linear_1.bias": proj["model.0.bias"],
                      "linear_2.weight": proj["model.2.weight"], "linear_2.bias": proj["model.2.bias"]}
        else:  # HF layout
            cfg = json.loads((model_dir / "config.json").read_text())
            text_cfg, vis_cfg = cfg["text_config"], cfg["vision_config"]
            w = _load_dir(model_dir)
            llm_w = {k[len("language_model."):]: v for k, v in w.items() if k.startswith("language_model.")}
            vis_w = {k[len("vision_tower.vision_model."):]: v for k, v in w.items() if k.startswith("vision_tower.")}
            proj_w = {k[len("multi_modal_projector."):]: v for k, v in w.items() if k.startswith("multi_modal_projector.")}
        self.vision_cfg = VisionConfig.from_dict(vis_cfg)
        self.vision = AuroraVisionTower(self.vision_cfg).eval()
        own = self.vision.state_dict()
        self.vision.load_state_dict({k: v for k, v in vis_w.items() if k in own}, strict=True)
        self.projector = AuroraProjector(self.vision_cfg.hidden_size, text_cfg["hidden_size"]).eval()
        self.projector.load_state_dict(proj_w, strict=True)
        self.llm = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in text_cfg.items() if k != "architectures"})).eval()
        self.llm.load_state_dict(llm_w, strict=True)

    def tokenize(self, prompt: str) -> list[int]:
        """Upstream: split on ``<image>``; first chunk with special tokens, others without; -200 between."""
        ids: list[int] = []
        chunks = prompt.split("<image>")
        for i, chunk in enumerate(chunks):
            ids += self.tokenizer.encode(chunk, add_special_tokens=(i == 0)) if (chunk or i == 0) else []
            if i < len(chunks) - 1:
                ids.append(IMAGE_TOKEN_INDEX)
        return ids

    @torch.no_grad()
    def encode_frames(self, pixels: torch.Tensor, token_kept_ratio: float) -> torch.Tensor:
        """pixels ``[F, 3, S, S]`` → projected features ``[F, n, hidden]``."""
        v = self.vision_cfg
        r = merge_r(token_kept_ratio, v.image_size, v.patch_size, v.num_hidden_layers)
        return self.projector(self.vision(pixels, r, merge_backend="reference"))

    @torch.no_grad()
    def generate(self, text: str, media: list[tuple[torch.Tensor, float]], max_new_tokens: int) -> tuple[list[int], int]:
        """Greedy ids and the prompt length.

        ``text`` is the upstream string (one ``<image>`` per frame); ``media`` lists ``(pixels [F,3,S,S], ρ)``
        per item, in placeholder order — items may use different ratios.
        """
        ids = self.tokenize(text)
        feats = [f for pixels, rho in media for f in self.encode_frames(pixels, rho)]
        if ids.count(IMAGE_TOKEN_INDEX) != len(feats):
            raise ValueError(f"{ids.count(IMAGE_TOKEN_INDEX)} placeholders for {len(feats)} frames")
        embed = self.llm.get_input_embeddings()
        pieces, frame = [], 0
        for tid in ids:
            if tid == IMAGE_TOKEN_INDEX:
                pieces.append(feats[frame])
                frame += 1
            else:
                pieces.append(embed(torch.tensor([tid])))
        inputs = torch.cat(pieces).unsqueeze(0)
        out = self.llm(inputs_embeds=inputs, use_cache=True)
        past, generated = out.past_key_values, []
        for _ in range(max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            generated.append(nxt)
            if nxt == self.tokenizer.eos_token_id:
                break
            out = self.llm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
        return generated, inputs.shape[1]
