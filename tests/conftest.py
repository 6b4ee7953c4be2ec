"""Shared fixtures: tiny checkpoints in both layouts and one real SGLang engine (CPU) for the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from aurora_serve.engine import register_out_of_tree

# Before collection imports sglang anywhere: SGLang reads its registration variables at import time, and the
# in-process engine of tests/engine runs on CPU.
register_out_of_tree("cpu")

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def tiny_xtuner(tmp_path_factory) -> Path:
    from aurora_serve.ckpt.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("ckpt") / "tiny-xtuner", "xtuner", seed=0)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory, tiny_xtuner) -> Path:
    from aurora_serve.ckpt.layout import write_hf_from_xtuner

    out = tmp_path_factory.mktemp("ckpt") / "tiny-hf"
    write_hf_from_xtuner(tiny_xtuner, out)  # same weights, other layout
    return out


@pytest.fixture(scope="session")
def hostile_corpus():
    """benchmarks/hostile's inputs, built once (~5 s of encoding) for the decoder's and the server's tests."""
    from benchmarks import hostile
    from tests.support.clips import make_video

    return hostile.corpus(make_video(None, frames=12))


@pytest.fixture(scope="session")
def engine(tiny_xtuner):
    """One AuroraEngine for every engine test (start-up costs ~15 s on 2 cores)."""
    from aurora_serve.engine import AuroraEngine, EngineSettings
    from aurora_serve.media.item import MediaPolicy

    eng = AuroraEngine(EngineSettings(model_path=str(tiny_xtuner), device="cpu", sglang_log_level="error",
                                      media=MediaPolicy(max_frames=16)))
    yield eng
    eng.shutdown()


@pytest.fixture(scope="session")
def run(engine):
    """Run a coroutine on the engine's event loop (SGLang's tokenizer manager lives there)."""
    return engine.engine.loop.run_until_complete


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"sample media not available at {SHARED_MEDIA} (../shared is absent in this checkout)")
    return SHARED_MEDIA
