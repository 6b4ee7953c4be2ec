"""Settings: flags over AURORA_* variables over defaults; unknown variables and bad values are errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aurora_serve.config import OPTIONS, ServerSettings, parse_settings
from tests.conftest import REPO


def test_defaults_and_engine_settings():
    s = parse_settings([], environ={})
    assert s == ServerSettings()
    e = s.engine
    assert e.model_path is None and e.enable_sglang_metrics is False and e.media.max_frames == 64


def test_flag_beats_env_beats_default():
    env = {"AURORA_PORT": "9001", "AURORA_API_KEY": "a, b", "AURORA_ENABLE_SGLANG_METRICS": "yes",
           "AURORA_ALLOW_MEDIA_HOSTS": "127.0.0.1/32,media.internal", "AURORA_MAX_FRAMES": "32"}
    s = parse_settings(["--port", "9002", "--api-key", "c", "--api-key", "d"], environ=env)
    assert s.port == 9002 and s.api_key == ("c", "d")
    assert s.engine.enable_sglang_metrics is True and s.engine.media.max_frames == 32
    assert s.allow_media_hosts == ("127.0.0.1/32", "media.internal")
    assert parse_settings(["--no-enable-sglang-metrics"], environ=env).engine.enable_sglang_metrics is False
    argv = ["--model-path", "/m", "--sglang-args", '{"chunked_prefill_size": 512}']
    e = parse_settings(argv, environ={}).engine
    assert e.model_path == "/m" and e.sglang_args == {"chunked_prefill_size": 512}


def test_backends_reach_the_engine():
    e = parse_settings([], environ={"AURORA_MERGE_BACKEND": "reference", "AURORA_DECODE_BACKEND": "decord"}).engine
    assert (e.runtime.merge_backend, e.runtime.decode_backend) == ("reference", "decord")
    e = parse_settings(["--merge-backend", "triton"], environ={"AURORA_MERGE_BACKEND": "reference"}).engine
    assert (e.runtime.merge_backend, e.runtime.decode_backend) == ("triton", "pyav")


@pytest.mark.parametrize("argv, env", [
    ([], {"AURORA_PROT": "1"}),                      # unknown variable
    ([], {"AURORA_MAX_FRAMES": "many"}),             # bad value in the environment
    (["--default-token-kept-ratio", "0"], {}),       # ρ must be in (0, 1]
    (["--default-token-kept-ratio", "nan"], {}),
    (["--max-frames", "0"], {}),
    (["--max-frames", "4", "--default-num-frames", "8"], {}),
    (["--allowed-local-media-path", "/does/not/exist"], {}),
    (["--sglang-args", "[1]"], {}),
    (["--device", "tpu"], {}),
    ([], {"AURORA_MERGE_BACKEND": "cuda"}),
    (["--decode-backend", "opencv"], {}),
    (["--bogus"], {}),
])
def test_invalid_settings_exit_2(argv, env, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv, environ=env)
    assert exc.value.code == 2
    assert capsys.readouterr().err


def test_foreign_aurora_variables_are_tolerated():
    foreign = {"AURORA_CPU_COMPAT": "0", "AURORA_ENV_CACHE": "/tmp/x", "AURORA_TORCH_INDEX_URL": "https://mirror/whl"}
    assert parse_settings([], environ=foreign) == ServerSettings()


def test_help_documents_every_option_and_its_variable():
    out = subprocess.run([sys.executable, "-m", "aurora_serve", "serve", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for name, _, _ in OPTIONS:
        assert "--" + name.replace("_", "-") in text and "AURORA_" + name.upper() in text
