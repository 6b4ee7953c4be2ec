"""Property-based fuzzing of every operation in /openapi.json (schemathesis): no input yields a 5xx.

Bounded (``--max-examples`` per operation, fixed seed). Skipped, with the reason, where schemathesis is
not installed (it is a test-only dependency; see the lock file).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.api.conftest import API_KEY
from tests.conftest import REPO

pytestmark = [pytest.mark.engine,
              pytest.mark.skipif(importlib.util.find_spec("schemathesis") is None,
                                 reason="schemathesis is not installed (test-only dependency)")]
MAX_EXAMPLES = int(os.environ.get("AURORA_TEST_FUZZ_EXAMPLES", "25"))


def test_no_input_yields_a_server_error(server, tmp_path):
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", server.base + "/openapi.json",
           "--checks", "not_a_server_error", "--max-examples", str(MAX_EXAMPLES), "--seed", "0",
           "--workers", "1", "--request-timeout", "120", "--generation-database", "none", "--no-color",
           "--header", f"Authorization: Bearer {API_KEY}", "--report", "junit",
           "--report-junit-path", str(tmp_path / "junit.xml")]
    # cwd: schemathesis keeps a cache directory (.schemathesis/) in its working directory
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "Traceback" not in server.log_tail(10**7)
