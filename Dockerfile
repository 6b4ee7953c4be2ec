# syntax=docker/dockerfile:1
# aurora-serve images. Two targets:
#
#   gpu (default)  CUDA base + `pip install ".[gpu]"` (sglang==0.5.23, which pins torch 2.14.1 and the CUDA 13
#                  stack). The model comes from a mounted directory (AURORA_MODEL_PATH=/models/...) or a hub id
#                  resolved into the Hugging Face cache (HF_HOME=/cache/huggingface; mount a volume there).
#       docker build -t aurora-serve:gpu .
#       docker run --gpus 1 --shm-size 16g -p 8000:8000 -v hf-cache:/cache \
#           -e AURORA_MODEL_PATH=wchai/AuroraCap-7B-VID-xtuner aurora-serve:gpu
#
#   cpu            the lean CPU environment of `make env` (requirements-cpu.lock.txt + the CPU compat shims,
#                  installed by scripts/make_env.sh itself) with the embedded tiny model baked in: anyone can
#                  try the API without a GPU (random weights: the captions are gibberish).
#       docker build --target cpu -t aurora-serve:cpu .
#       docker run -p 8000:8000 aurora-serve:cpu
#
# Configuration is the server's AURORA_* variables (aurora-serve serve --help); an unknown AURORA_* variable
# stops the server, so a typo never falls back to a default silently.

ARG CUDA_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# PyTorch's CPU wheel index: the lock pins torch==2.13.0+cpu, which PyPI does not carry (our machines find it
# through a local pip find-links directory; in the image it is downloaded from this index).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
ARG TORCH_CPU_INDEX
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AURORA_ENV_CACHE=/opt/aurora-env
WORKDIR /opt/aurora-serve
COPY requirements-cpu.lock.txt pyproject.toml README.md ./
COPY scripts scripts
COPY aurora_serve aurora_serve
# make_env.sh builds the locked venv, installs the compat shims and runs its import smoke test; torch's +cpu
# wheel is fetched first and offered to it through PIP_FIND_LINKS, exactly as on a developer machine. The lock's
# test-only and dev-tools sections (fuzzing, validators, plotting) are left out of the image.
RUN sed -i '/^# --- test-only/,$d' requirements-cpu.lock.txt \
    && torch_pin="$(grep -E '^torch==' requirements-cpu.lock.txt)" \
    && pip download --no-deps --dest /tmp/wheels --index-url "${TORCH_CPU_INDEX}" "${torch_pin}" \
    && PIP_FIND_LINKS=/tmp/wheels bash scripts/make_env.sh \
    && rm -rf /tmp/wheels \
    && .venv/bin/aurora-serve make-tiny --out /opt/aurora-serve/tiny-auroracap
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin aurora \
    && mkdir -p /cache/huggingface /models \
    && chown -R aurora:aurora /cache
ENV PATH=/opt/aurora-serve/.venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    AURORA_HOST=0.0.0.0 \
    AURORA_PORT=8000 \
    AURORA_DEVICE=cpu \
    AURORA_TINY_MODEL_DIR=/opt/aurora-serve/tiny-auroracap \
    AURORA_ENABLE_SGLANG_METRICS=1
USER 10001:10001
EXPOSE 8000
# /health is liveness (200 while loading too; 503 once the engine has failed). The tiny model loads in ~30 s.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AURORA_PORT', '8000'), timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["aurora-serve", "serve"]

# ---------------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A devel base: FlashInfer compiles some kernels at run time (nvcc). Ubuntu 24.04's python3 is 3.12 (sglang
# 0.5.23 needs >= 3.11). Package versions follow the pinned base image tag; pinning them again here would
# break each time Ubuntu publishes a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/aurora-serve
COPY pyproject.toml README.md ./
COPY aurora_serve aurora_serve
# The versions come from the project: sglang==0.5.23 pins torch, flashinfer and sglang-kernel.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ".[gpu]"
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin aurora \
    && mkdir -p /cache/huggingface /models \
    && chown -R aurora:aurora /cache
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    AURORA_HOST=0.0.0.0 \
    AURORA_PORT=8000 \
    AURORA_DEVICE=cuda \
    AURORA_TINY_MODEL_DIR=/cache/tiny-auroracap \
    AURORA_ENABLE_SGLANG_METRICS=1
USER 10001:10001
EXPOSE 8000
# A 7B checkpoint downloads and loads for minutes: the start period keeps Docker from calling that unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=900s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AURORA_PORT', '8000'), timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["aurora-serve", "serve"]
