"""Benchmarks: each module prints and saves numbers (JSON under results/ with the command, commit and device).

Run them as modules from the repository root, e.g. ``.venv/bin/python -m benchmarks.bench_tome --smoke``: the
root is then on sys.path, so they import ``aurora_serve`` (and each other, relatively) without path edits.
"""
