#!/usr/bin/env bash
# Build (or reuse) the lean CPU environment and point ./.venv at it.
#
# The venv lives outside the clone, keyed by a hash of the lock file, the CPU compatibility files and this
# script, so every clone and CI run on the machine shares one build. It is built in place at its final
# path (venvs are not relocatable) and marked complete only after an import smoke test passes; a venv
# without the marker is deleted and rebuilt. Override the cache root with AURORA_ENV_CACHE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
KEY="$(cat requirements-cpu.lock.txt scripts/make_env.sh $(find aurora_serve/cpu_compat -name '*.py' | sort) \
        | sha256sum | cut -c1-16)"
CACHE="${AURORA_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aurora-serve}"
VENV="$CACHE/venv-py$PYVER-$KEY"
MARK="$VENV/.aurora-env-complete"

if [[ ! -f "$MARK" ]]; then
  echo "make_env: building $VENV (cache miss)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
  # torch's +cpu build is not on PyPI: from this machine's pip configuration if it has it, else PyTorch's index.
  bash scripts/cpu_torch.sh "$VENV/bin/pip" requirements-cpu.lock.txt
  "$VENV/bin/pip" install -q --no-deps -r requirements-cpu.lock.txt 2> >(grep -v "is ignored: it is neither" >&2)
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  rm -rf "$SITE/aurora_cpu_compat"
  cp -r aurora_serve/cpu_compat "$SITE/aurora_cpu_compat"
  printf '%s\n' "import aurora_cpu_compat.boot as _b; _b.activate()" > "$SITE/aurora_cpu_compat.pth"
  SGLANG_USE_CPU_ENGINE=1 "$VENV/bin/python" - <<'PYEOF'
import torch, torchvision  # noqa: F401  (torchvision must import on CPU torch through the hook)
import sglang.srt.models.llama, sglang.srt.entrypoints.engine  # noqa: F401
import sglang.srt.multimodal.processors.base_processor, sglang.srt.managers.mm_utils  # noqa: F401
import sglang.srt.mem_cache.allocation  # noqa: F401  (needs the sgl_kernel CPU stub)
import av, fastapi, prometheus_client, pytest  # noqa: F401
assert torch.version.cuda is None, "the lean env must hold the CPU torch build"
print("make_env: smoke import ok, torch", torch.__version__)
PYEOF
  touch "$MARK"
else
  echo "make_env: reusing $VENV" >&2
fi

# The project itself, editable, on top (cheap; re-run each time so the venv points at this checkout).
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . 2> >(grep -v "is ignored: it is neither" >&2)
ln -sfn "$VENV" .venv
echo "make_env: .venv -> $VENV" >&2
