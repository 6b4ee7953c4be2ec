"""The compiler's resource report for the merge kernels, no GPU needed: registers, spills and shared memory.

Compiles the three kernels of ``aurora_serve/kernels/tome.py`` with the installed Triton for an NVIDIA target
(sm_90 by default), with exactly the block sizes and warps ``launch_configs`` gives the launcher, at
AuroraCap's shapes (T = 730 at the first merge and a late-layer T, C = 1280, D = 80, r up to 22), and runs
the ``ptxas`` Triton itself uses with ``-v``. Spills are local-memory traffic in the inner loops of a kernel
meant to run at memory speed; the first version of the match kernel had 1.6 KB of them per thread.

    .venv/bin/python -m benchmarks.kernel_resources                  # sm_90, table
    .venv/bin/python -m benchmarks.kernel_resources --arch 80 --out benchmarks/results/kernel_resources_sm80.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

from aurora_serve.kernels import tome

from .provenance import command

DTYPES = ("fp16", "bf16", "fp32")  # Triton's own names for the tensors' element types
LAUNCH_KEYS = ("num_warps", "num_stages")


def signatures(dtype: str) -> dict[str, dict[str, str]]:
    """Argument types of each kernel as the launcher calls it with x, sizes and metric all in ``dtype``
    (as the model does), ints 32-bit."""
    i32 = "i32"
    return {
        "_match_kernel": {"metric_ptr": f"*{dtype}", "best_ptr": "*fp32", "match_ptr": "*i32", "T": i32,
                          "D": i32, "stride_mf": i32, "stride_mt": i32, "stride_md": i32},
        "_plan_kernel": {"best_ptr": "*fp32", "match_ptr": "*i32", "k_ptr": "*i32", "src_ptr": "*i32",
                         "dst_ptr": "*i32", "keep_ptr": "*i32", "T": i32},
        "_merge_kernel": {"x_ptr": f"*{dtype}", "size_ptr": f"*{dtype}", "src_ptr": "*i32", "dst_ptr": "*i32",
                          "keep_ptr": "*i32", "k_ptr": "*i32", "x_out_ptr": f"*{dtype}",
                          "size_out_ptr": f"*{dtype}", "T": i32, "C": i32, "width": i32, "stride_xf": i32,
                          "stride_xt": i32, "stride_sf": i32, "stride_st": i32},
    }


def compile_report(name: str, signature: dict[str, str], config: dict[str, int], arch: int) -> dict:
    """Compile one kernel for ``sm_<arch>`` and read ``ptxas -v``: registers, spill bytes, stack, shared."""
    fn = getattr(tome, name)
    constexprs = {k: v for k, v in config.items() if k not in LAUNCH_KEYS}
    options = {k: config[k] for k in LAUNCH_KEYS if k in config}
    sig = {**signature, **{k: "constexpr" for k in constexprs}}
    kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs),
                            target=GPUTarget("cuda", arch, 32), options=options)
    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / f"{name}.ptx"
        ptx.write_text(kernel.asm["ptx"])
        proc = subprocess.run([get_ptxas(arch).path, "-v", f"-arch=sm_{arch}{suffix}", str(ptx), "-o",
                               str(Path(tmp) / f"{name}.cubin")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed on {name}: {proc.stderr[-2000:]}")
    text = proc.stderr + proc.stdout
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text)
    regs = re.search(r"Used (\d+) registers", text)
    if not (spills and regs):
        raise RuntimeError(f"unexpected ptxas -v output for {name}: {text[-2000:]}")
    return {"kernel": name, "arch": f"sm_{arch}", **config, "registers": int(regs.group(1)),
            "stack_bytes": int(spills.group(1)), "spill_store_bytes": int(spills.group(2)),
            "spill_load_bytes": int(spills.group(3)), "shared_bytes": int(kernel.metadata.shared)}


def report(arch: int, tokens: list[int], channels: int, k_max: int, dtypes: list[str]) -> list[dict]:
    rows = []
    for dtype in dtypes:
        sigs = signatures(dtype)
        for num_tokens in tokens:
            for name, config in tome.launch_configs(num_tokens, channels, k_max).items():
                rows.append({"dtype": dtype, "T": num_tokens, **compile_report(name, sigs[name], config, arch)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200) or 80 (A100)")
    p.add_argument("--tokens", type=int, nargs="+", default=[730, 100], help="T of the frames (first, late layer)")
    p.add_argument("--channels", type=int, default=1280)
    p.add_argument("--k-max", type=int, default=22, help="largest tokens merged per step (r at rho = 0.01)")
    p.add_argument("--dtypes", nargs="+", default=["fp16", "bf16", "fp32"], choices=DTYPES)
    p.add_argument("--out", type=Path, help="also save JSON here")
    args = p.parse_args()
    rows = report(args.arch, args.tokens, args.channels, args.k_max, args.dtypes)
    print(f"triton {triton.__version__}, ptxas {get_ptxas(args.arch).path}")
    print(f"{'kernel':<14} {'dtype':>5} {'T':>4} {'warps':>5} {'regs':>4} {'stack':>5} {'spill st/ld':>11} {'shared':>6}")
    for r in rows:
        print(f"{r['kernel']:<14} {r['dtype']:>5} {r['T']:>4} {r['num_warps']:>5} {r['registers']:>4} "
              f"{r['stack_bytes']:>5} {r['spill_store_bytes']:>5}/{r['spill_load_bytes']:<5} {r['shared_bytes']:>6}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "kernel_resources", "command": command(),
                                        "triton": triton.__version__, "rows": rows}, indent=1) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
