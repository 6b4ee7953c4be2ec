"""The embedded default model is rebuilt when the generator changes (no stale cached tiny model)."""

from aurora_serve.ckpt.tiny import tiny_fingerprint
from aurora_serve.engine import AuroraEngine, EngineSettings


def test_stale_tiny_model_is_rebuilt(tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text("{}")  # a leftover from an older generator, no fingerprint
    engine = AuroraEngine.__new__(AuroraEngine)  # only the model-dir resolution, no SGLang start
    engine.settings = EngineSettings(tiny_model_dir=str(tiny))
    path = engine._model_dir()
    assert (path / ".aurora-tiny-fingerprint").read_text() == tiny_fingerprint()
    assert (path / "visual_encoder" / "config.json").is_file()
    mtime = (path / "config.json").stat().st_mtime_ns
    assert engine._model_dir() == path and (path / "config.json").stat().st_mtime_ns == mtime  # reused when current
