"""``batch --server`` against a real ``aurora-serve serve`` (same tiny weights as the session engine): the rows
the in-process run writes, the same greedy captions, a corrupt file as an error row.

Only ``num_frames`` / ``token_kept_ratio`` rows here: the server takes ``fps``, ``max_frames``, ``start`` and
``end`` once the HTTP half of issue 13 lands (window and rate rows are then worth a test of their own)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from aurora_serve import Captioner
from aurora_serve.batch.inputs import tasks_of
from aurora_serve.batch.job import execute, open_job
from aurora_serve.batch.outputs import read_rows
from aurora_serve.batch.remote import ServerBackend
from aurora_serve.batch.runner import Skipped, select
from tests.batch.conftest import OPTIONS
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]  # a second engine starts
KEY = "sk-batch-test"


@pytest.fixture(scope="module")
def server(tiny_xtuner, tmp_path_factory):
    with ServerProcess(["--model-path", str(tiny_xtuner), "--api-key", KEY, "--max-frames", "16"],
                        tmp_path_factory.mktemp("logs") / "server.log") as proc:
        yield proc


def test_server_mode_writes_the_rows_an_in_process_run_writes(server, engine, media, tmp_path):
    table = tmp_path / "rows.jsonl"
    table.write_text("".join(f'{{"path": "{media / p}", "num_frames": {n}, "token_kept_ratio": {r}}}\n'
                             for p, n, r in [("a.mp4", 3, 0.5), ("sub/b.mp4", 2, 0.2), ("d.jpg", 2, 0.5),
                                             ("broken.mp4", 2, 0.5)]))
    options = replace(OPTIONS, input=str(table), output=str(tmp_path / "served.parquet"), server=server.base,
                      api_key=KEY)
    source, done = open_job(options)
    skipped = Skipped()
    backend = ServerBackend(server.base, KEY, options.engine.media, options.fetch, options.sampling)
    summary = asyncio.run(execute(options, source, select(tasks_of(source, options.defaults), done, None, skipped),
                                  skipped, backend))
    assert summary["exit_status"] == 0 and summary["rows"] == 4 and summary["errors"] == 1
    served = {r["path"].rsplit("/", 1)[-1]: r for r in read_rows(options.output)}
    assert served["broken.mp4"]["error"]["type"] in ("invalid_media", "unsupported_media")
    with Captioner(engine=engine, max_tokens=6) as captioner:
        local = captioner.caption([{"path": str(media / p), "num_frames": n, "token_kept_ratio": r}
                                   for p, n, r in [("a.mp4", 3, 0.5), ("sub/b.mp4", 2, 0.2), ("d.jpg", 2, 0.5)]])
    for mine in local:
        theirs = served[mine["path"].rsplit("/", 1)[-1]]
        assert theirs["id"] == mine["id"]  # the same ids, so either mode resumes the other's output
        for column in ("caption", "frames", "visual_tokens", "prompt_tokens", "completion_tokens", "token_kept_ratio"):
            assert theirs[column] == mine[column], column
    assert served["a.mp4"]["model"] == "auroracap" and served["a.mp4"]["frames"] == 3
