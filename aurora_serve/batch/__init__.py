"""Caption a dataset: ``aurora-serve batch`` and the ``Captioner`` Python API.

The folder is the pipeline, one stage per module:

  inputs.py    INPUT → raw rows, streamed (a directory, a list of paths/URLs, CSV/TSV/JSONL/Parquet)
  tasks.py     a raw row → a ``Task``: its id, options, shard; a video → its windows (pure functions)
  captioner.py a task → an output row on the in-process engine; ``Captioner``, the Python API
  remote.py    the same against a running aurora-serve (``--server``, the openai client)
  runner.py    bounded in-flight requests, resume, signals; progress.py draws the bar and the log lines
  outputs.py   the output directory: atomic chunk files (JSONL or Parquet), the ids already there
  ray_job.py   the same job as a Ray Data pipeline (``--ray``)

Nothing here is imported by ``aurora_serve`` itself until asked for (``from aurora_serve import Captioner``).
"""
