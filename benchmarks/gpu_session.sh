#!/usr/bin/env bash
# What issue 4 needs from a lent GPU, in as few device calls as possible. The device machine runs this in the
# repository root with its own python3 (torch + triton; no sglang, no venv, no network):
#
#   bash benchmarks/gpu_session.sh [tests] [resources] [tome] [sweep] [vision] [e2e_hf]
#   # no argument: all but sweep and e2e_hf
#
# Stages: `tests` runs tests/kernels natively on CUDA (not the interpreter); `resources` is the compiler's
# report with the device's own Triton (benchmarks.kernel_resources); `tome` runs benchmarks.bench_tome; `sweep`
# times bench_tome's launch-configuration variants (fp16, F in {1, 8}); `vision` runs benchmarks.bench_vision;
# `e2e_hf` runs benchmarks.bench_e2e_hf (the full-size model through the transformers API, random weights:
# ~14 GB of GPU memory and a few minutes, so it runs only when named).
# Each runs as `python -m` from the repository root, which puts the root on sys.path: aurora_serve and the
# benchmarks package import from the checkout with nothing installed and no PYTHONPATH. Everything lands under
# $OUT (the device tool's return folder; here benchmarks/results/gpu-session when OUT is unset): env.txt, one log
# per stage, the benchmark JSON. The last lines printed are a summary, because the device tool returns only the
# end of the output.
# GPU_SESSION_SMOKE=1 runs the same stages on a CPU machine (kernel tests in the interpreter, benchmarks with
# --smoke): it checks this script, not the kernels' speed; tests/benchmarks runs it that way.
set -uo pipefail

PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/gpu-session}
mkdir -p "$OUT"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests resources tome vision)
smoke=()
[ "${GPU_SESSION_SMOKE:-0}" = 1 ] && smoke=(--smoke)

{
    date -u +%FT%TZ
    git rev-parse HEAD 2>/dev/null || echo "no git checkout"
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not on this machine"; fi
    "$PY" - <<'PY'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
try:
    import triton
    print("triton", triton.__version__)
except ImportError as exc:
    print("triton: not importable:", exc)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, "SMs", p.multi_processor_count, "memory GiB", round(p.total_memory / 2**30, 1))
PY
} > "$OUT/env.txt" 2>&1
tail -n 3 "$OUT/env.txt"

device=$("$PY" -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "_") if torch.cuda.is_available() else "cpu")')
summary=()
failed=0
for stage in "${stages[@]}"; do
    start=$SECONDS
    case $stage in
        tests)
            "$PY" -m pytest -q -p no:cacheprovider -rs tests/kernels > "$OUT/kernel_tests.log" 2>&1
            rc=$?
            line=$(tail -n 1 "$OUT/kernel_tests.log") ;;
        resources)
            "$PY" -m benchmarks.kernel_resources --out "$OUT/kernel_resources_$device.json" > "$OUT/kernel_resources.log" 2>&1
            rc=$?
            line=$(grep -c ' 0/0 ' "$OUT/kernel_resources.log" | sed 's/$/ kernel configurations without spills/') ;;
        tome)
            "$PY" -m benchmarks.bench_tome "${smoke[@]}" --out "$OUT/bench_tome_$device.json" > "$OUT/bench_tome.log" 2>&1
            rc=$?
            line=$(grep -A4 '"worst"' "$OUT/bench_tome.log" | tr -s ' \n' ' ') ;;
        sweep)
            "$PY" -m benchmarks.bench_tome "${smoke[@]}" --sweep --frames 1 8 --dtypes fp16 --layers 0 15 --no-compile \
                --out "$OUT/bench_tome_sweep_$device.json" > "$OUT/bench_tome_sweep.log" 2>&1
            rc=$?
            line=$(grep '^sweep:' "$OUT/bench_tome_sweep.log") ;;
        vision)
            "$PY" -m benchmarks.bench_vision "${smoke[@]}" --out "$OUT/bench_vision_$device.json" > "$OUT/bench_vision.log" 2>&1
            rc=$?
            line=$(grep -E '^(triton|reference) +0\.2 ' "$OUT/bench_vision.log" | tr -s ' \n' ' ') ;;
        e2e_hf)
            "$PY" -m benchmarks.bench_e2e_hf "${smoke[@]}" --out "$OUT/bench_e2e_hf_$device.json" > "$OUT/bench_e2e_hf.log" 2>&1
            rc=$?
            line=$(grep -E '^(triton|reference) +0\.2 |^target:' "$OUT/bench_e2e_hf.log" | tr -s ' \n' ' ') ;;
        *)
            echo "unknown stage $stage (expected tests, resources, tome, sweep, vision or e2e_hf)" >&2
            exit 2 ;;
    esac
    [ "$rc" -ne 0 ] && failed=1
    summary+=("$stage: exit $rc in $((SECONDS - start)) s; $line")
done

echo "--- gpu_session on $device; logs and JSON in $OUT"
for s in "${summary[@]}"; do echo "$s"; done
exit $failed
