"""benchmarks/gpu_session.sh, the one-call GPU run of issue 4, in its CPU smoke mode and on a Python that cannot
import sglang (as on the device machine): every stage runs, writes its log and JSON, and the summary reports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The device machine has torch and triton but no sglang, no web stack and no PyAV: refuse those imports.
NOT_ON_THE_DEVICE = ("sglang", "sgl_kernel", "fastapi", "uvicorn", "av", "decord", "schemathesis")
BLOCKER = """
import sys
class _NotOnTheDevice:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is not installed on the device machine")
sys.meta_path.insert(0, _NotOnTheDevice())
"""


def run_session(tmp_path: Path, *stages: str, python: str = sys.executable,
                blocked: tuple[str, ...] = NOT_ON_THE_DEVICE) -> subprocess.CompletedProcess:
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    env = {**os.environ, "GPU_SESSION_SMOKE": "1", "OUT": str(tmp_path / "out"), "PYTHON": python,
           "PYTHONPATH": str(tmp_path / "block")}
    return subprocess.run(["bash", "benchmarks/gpu_session.sh", *stages], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_all_stages_run_without_sglang(tmp_path):
    proc = run_session(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    summary = proc.stdout.splitlines()[-4:]
    assert [line.split(":")[0] for line in summary] == ["tests", "resources", "tome", "vision"]
    assert all(": exit 0 in " in line for line in summary), summary
    assert "passed" in summary[0] and "failed" not in summary[0]
    assert "python" in (out / "env.txt").read_text()
    tome = json.loads((out / "bench_tome_cpu.json").read_text())
    assert tome["results"] and set(tome["worst"]) == {"speedup_vs_reference", "copy_bandwidth_fraction", "layer_share"}
    assert all(row["input_sets"] >= 1 for row in tome["results"])
    vision = json.loads((out / "bench_vision_cpu.json").read_text())
    assert [row["token_kept_ratio"] for row in vision["agreement"]] == [1.0, 0.5, 0.2, 0.1]
    assert "18 kernel configurations without spills" in summary[1]
    assert "reference 0.2 171 " in summary[3]  # tokens per frame at ρ = 0.2


def test_e2e_hf_stage_runs_without_sglang_av_or_pillow(tmp_path):
    """The transformers-API benchmark synthesises frames and token ids: it needs neither a decoder nor Pillow
    (which the device machine may lack)."""
    proc = run_session(tmp_path, "e2e_hf", blocked=NOT_ON_THE_DEVICE + ("PIL",))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = proc.stdout.splitlines()[-1]
    assert summary.startswith("e2e_hf: exit 0 in ") and "reference 0.2 171 " in summary, summary
    report = json.loads((tmp_path / "out" / "bench_e2e_hf_cpu.json").read_text())
    assert [(r["backend"], r["token_kept_ratio"]) for r in report["rows"]] == [("reference", rho) for rho in (1.0, 0.5, 0.2, 0.1)]
    # one frame in smoke mode: F + 18 = 19 text tokens (auroracap.md §7.1) and one span
    assert [r["prompt_tokens"] for r in report["rows"]] == [19 + n for n in (729, 388, 171, 109)]
    assert [d["batch"] for d in report["decode"]] == [1, 2] and all(d["tokens_per_s"] > 0 for d in report["decode"])
    assert report["env"]["command"].endswith("-m benchmarks.bench_e2e_hf --smoke --out " + str(tmp_path / "out" / "bench_e2e_hf_cpu.json"))


def test_a_failing_stage_fails_the_session(tmp_path):
    proc = run_session(tmp_path, "tome", python="false")  # every python3 call exits 1
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith("tome: exit 1 in ")


def test_an_unknown_stage_is_refused(tmp_path):
    proc = run_session(tmp_path, "nonsense")
    assert proc.returncode == 2 and "unknown stage nonsense" in proc.stderr


def test_bench_tome_kernel_columns_under_the_interpreter(tmp_path):
    """bench_tome's GPU-only paths (Triton and v1 columns, their speed-ups, the JSON) run under the interpreter."""
    out = tmp_path / "tome.json"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_tome", "--smoke", "--smoke-kernels", "--sweep",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    from benchmarks.bench_tome import SWEEP

    assert set(report["sweep"]) == set(SWEEP) and all(v["median_time_vs_default"] > 0 for v in report["sweep"].values())
    rows = report["results"]
    assert rows and all(r["triton_ms"] > 0 and r["triton_v1_ms"] > 0 and r["speedup_vs_v1"] > 0 for r in rows)
    assert all(r["rows_close_to_reference"] == 1.0 for r in rows)  # fp32, fixed seed: same plan as the reference
    refused = subprocess.run([sys.executable, "-m", "benchmarks.bench_tome", "--smoke-kernels"], cwd=REPO,
                             env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "needs --smoke and TRITON_INTERPRET=1" in refused.stderr
