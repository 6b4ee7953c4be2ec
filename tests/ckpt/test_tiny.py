"""The embedded default model is rebuilt when the generator changes (no stale cached tiny model)."""

from aurora_serve.ckpt.tiny import cached_tiny, tiny_fingerprint


def test_stale_tiny_model_is_rebuilt(tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text("{}")  # a leftover from an older generator, no fingerprint
    path = cached_tiny(tiny)
    assert (path / ".aurora-tiny-fingerprint").read_text() == tiny_fingerprint()
    assert (path / "visual_encoder" / "config.json").is_file()
    mtime = (path / "config.json").stat().st_mtime_ns
    assert cached_tiny(tiny) == path and (path / "config.json").stat().st_mtime_ns == mtime  # reused when current
