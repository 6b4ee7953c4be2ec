"""`aurora-serve caption` end to end (subprocess, real engine), layouts, conversion, hub resolution, load errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from aurora_serve.ckpt.layout import detect_layout, llava_view, resolve_model_dir, sglang_overrides, write_xtuner_from_hf
from aurora_serve.errors import ModelLoadError
from aurora_serve.media.decode import load_frames
from aurora_serve.model.token_count import tokens_per_frame
from tests.support.clips import make_video
from tests.oracle import Oracle
from tests.support.checkpoints import hf_fork_copy, projector_keys_swapped

CLI = [sys.executable, "-m", "aurora_serve"]


def caption(model: Path | str, media: Path, *extra: str, env=None) -> subprocess.CompletedProcess:
    cmd = CLI + ["caption", "--model-path", str(model), "--visual-input", str(media), "--prompt", "Describe the video in detail.",
                 "--num-frm", "4", "--token-kept-ratio", "0.2", "--temperature", "0", "--top-p", "1",
                 "--max-new-tokens", "10", "--device", "cpu", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.engine
@pytest.mark.parametrize("variant", ["hf", "hf-fork"])
def test_caption_json_on_hf_layout_matches_oracle_on_xtuner_layout(tiny_xtuner, tiny_hf, tmp_path, variant):
    model = tiny_hf if variant == "hf" else hf_fork_copy(tiny_hf, tmp_path / "fork")
    video = tmp_path / "v.mp4"
    make_video(video, frames=25, seed=40)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = caption(model, video, "--json", env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp.glob("aurora-llava-view-*"))  # the fork's config view is removed at shutdown
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    oracle = Oracle(tiny_xtuner)
    frames = load_frames(str(video), "video", 4)
    ids, prompt_len = oracle.generate("Describe the video in detail.", [("video", frames, 0.2)], 10)
    assert got["visual_tokens"] == 4 * tokens_per_frame(0.2)
    assert got["prompt_tokens"] == prompt_len
    assert got["completion_tokens"] == len(ids)
    # Upstream prints tokenizer.decode(ids); SGLang detokenizes incrementally (a leading space may differ).
    assert got["caption"] == oracle.tokenizer.decode(ids, skip_special_tokens=True).strip()


@pytest.mark.engine
def test_missing_and_unexpected_keys_are_named(tiny_xtuner, tmp_path):
    broken = projector_keys_swapped(tiny_xtuner, tmp_path / "broken")
    video = tmp_path / "v.mp4"
    make_video(video, frames=5, seed=41)
    proc = caption(broken, video)
    assert proc.returncode != 0
    assert "projector.linear_2.bias" in proc.stderr and "model.9.weight" in proc.stderr


def test_llava_view_of_the_fork_layout(tiny_hf, tmp_path):
    assert llava_view(tiny_hf) is None  # model_type llava: SGLang reads the checkpoint itself
    fork = hf_fork_copy(tiny_hf, tmp_path / "fork")
    view = llava_view(fork)
    try:
        config = json.loads((view / "config.json").read_text())
        assert config["model_type"] == "llava"
        assert config == {**json.loads((fork / "config.json").read_text()), "model_type": "llava"}
        assert {p.name for p in view.iterdir()} == {p.name for p in fork.iterdir()}
        for p in fork.iterdir():
            if p.name != "config.json":
                assert (view / p.name).resolve() == p.resolve()
        assert json.loads((fork / "config.json").read_text())["model_type"] == "aurora"  # the original is untouched
        # The -200 sentinel is no vocabulary id: the placeholder comes from the tokenizer's <image>.
        from transformers import AutoTokenizer

        want = AutoTokenizer.from_pretrained(str(fork)).convert_tokens_to_ids("<image>")
        assert sglang_overrides(fork, "hf", {})["aurora"]["image_token_id"] == want
    finally:
        shutil.rmtree(view)


def test_convert_round_trip_keeps_every_tensor(tiny_xtuner, tmp_path):
    hf, back = tmp_path / "hf", tmp_path / "back"
    assert subprocess.run(CLI + ["convert", "--from", "xtuner", "--to", "hf", str(tiny_xtuner), str(hf)]).returncode == 0
    assert detect_layout(hf) == "hf"
    write_xtuner_from_hf(hf, back)
    assert detect_layout(back) == "xtuner"
    for sub in ("", "projector"):
        a, b = load_file(str(tiny_xtuner / sub / "model.safetensors")), load_file(str(back / sub / "model.safetensors"))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    va = load_file(str(tiny_xtuner / "visual_encoder" / "model.safetensors"))
    vb = load_file(str(back / "visual_encoder" / "model.safetensors"))
    assert set(va) - set(vb) == {"pos_emb"}  # the upstream alias is dropped, nothing else


def test_hub_id_resolves_offline_from_a_local_cache(tiny_xtuner, tmp_path):
    """A hub id goes through huggingface_hub; with HF_HUB_OFFLINE the local cache answers (no network)."""
    cache = tmp_path / "hub"
    commit = "0" * 40
    snap = cache / "models--wchai--AuroraCap-tiny" / "snapshots" / commit
    shutil.copytree(tiny_xtuner, snap)
    (cache / "models--wchai--AuroraCap-tiny" / "refs").mkdir()
    (cache / "models--wchai--AuroraCap-tiny" / "refs" / "main").write_text(commit)
    path = resolve_model_dir("wchai/AuroraCap-tiny", cache_dir=str(cache), offline=True)
    assert path == snap and detect_layout(path) == "xtuner"
    with pytest.raises(ModelLoadError, match="wchai/not-cached"):
        resolve_model_dir("wchai/not-cached", cache_dir=str(cache), offline=True)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not an AuroraCap checkpoint"):
        detect_layout(tmp_path)
    with pytest.raises(ModelLoadError, match="neither a local directory nor a hub id"):
        resolve_model_dir("./does/not/exist")


def test_triton_merge_backend_on_cpu_is_refused_before_the_engine_starts(tmp_path):
    from aurora_serve.config import ModelRuntime
    from aurora_serve.engine import AuroraEngine, EngineSettings

    with pytest.raises(ModelLoadError, match="needs a CUDA device"):
        AuroraEngine(EngineSettings(model_path=str(tmp_path), device="cpu", runtime=ModelRuntime(merge_backend="triton")))


def test_make_tiny_is_deterministic_by_seed(tmp_path):
    from aurora_serve.ckpt.tiny import make_tiny

    a, b, c = make_tiny(tmp_path / "a", seed=3), make_tiny(tmp_path / "b", seed=3), make_tiny(tmp_path / "c", seed=4)
    wa, wb, wc = (load_file(str(p / "visual_encoder" / "model.safetensors")) for p in (a, b, c))
    k = "vision_model.encoder.layers.31.mlp.fc2.weight"
    assert (wa[k] == wb[k]).all() and not (wa[k] == wc[k]).all()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    cfg = json.loads((a / "visual_encoder" / "config.json").read_text())
    assert (cfg["image_size"], cfg["patch_size"], cfg["num_hidden_layers"]) == (378, 14, 32)
