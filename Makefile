# Two commands do all set-up on a fresh machine: `make serve` (the main job) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: env serve test caption clean-env

env:
	@bash scripts/make_env.sh

# `python -m` from the checkout, not .venv/bin/aurora-serve: the cached env is shared by every clone on the
# machine and its editable install points at whichever clone ran `make env` last; the checkout's own package
# comes first on sys.path this way.

# The main job: serve AuroraCap (the embedded tiny model unless AURORA_MODEL_PATH is set).
serve: env
	$(PY) -m aurora_serve serve

# One-shot caption of the shared sample video through the SGLang engine.
caption: env
	$(PY) -m aurora_serve caption --visual-input ../shared/media/xU25MMA2N4aVtYay.mp4 \
	  --prompt "Describe the video in detail." --num-frm 8 --token-kept-ratio 0.2 --max-new-tokens 32

test: env
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

clean-env:
	rm -rf $(VENV)
