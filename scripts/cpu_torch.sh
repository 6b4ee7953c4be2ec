#!/usr/bin/env bash
# Where make_env.sh gets the lock's CPU-only torch (torch==X+cpu), which PyPI does not carry:
#
#   bash scripts/cpu_torch.sh PIP LOCK     # PIP: the new venv's pip; LOCK: requirements-cpu.lock.txt
#
# If this machine's own pip configuration resolves the pin (our machines: a local find-links directory; a mirror
# elsewhere), nothing is installed here and the lock install finds torch the same way. Otherwise torch alone is
# installed from PyTorch's CPU index (AURORA_TORCH_INDEX_URL overrides it), before the lock, which then sees it
# satisfied: that index never serves any other package of the lock. The check is a dry run (a local wheel is only
# read), and its output is dropped: on a machine without the wheel, pip's "no matching distribution" is expected.
set -euo pipefail

PIP="$1"
LOCK="$2"
INDEX="${AURORA_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
PIN="$(grep -m1 -E '^torch==' "$LOCK")" || { echo "cpu_torch: no torch== line in $LOCK" >&2; exit 1; }

if "$PIP" install -q --dry-run --no-deps "$PIN" >/dev/null 2>&1; then
  exit 0
fi
echo "make_env: this machine's pip configuration has no $PIN; installing it from $INDEX" >&2
"$PIP" install -q --no-deps --index-url "$INDEX" "$PIN"
