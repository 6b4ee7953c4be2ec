"""SGLang 0.5.23 on a CPU-only machine: the two compatibility pieces.

SGLang's CPU engine (``SGLANG_USE_CPU_ENGINE=1``) runs on a CPU torch build once two things are fixed:

1. ``torchvision`` from PyPI is a CUDA build; on CPU torch its ``_C`` extension fails to load and
   ``import torchvision`` then dies registering fake kernels for ``torchvision::nms``. The import hook in
   :mod:`torchvision_hook` defines the two operator schemas first (only when torch has no CUDA).
2. Two SGLang modules do ``from sgl_kernel import ..._cpu`` unconditionally, and no CPU build of
   ``sgl_kernel`` is published. The stub package in ``sgl_kernel/`` provides pure-PyTorch versions of those
   symbols and a loud ``NotImplementedError`` for everything else. It registers nothing under
   ``torch.ops.sgl_kernel``: SGLang's AMX paths check for ``torch.ops.sgl_kernel.convert_weight_packed`` and
   stay off while it is absent, so every layer takes its pure-torch ``forward_native`` path.

Activation: ``scripts/make_env.sh`` copies this folder into the lean CPU virtual environment as
``aurora_cpu_compat`` and writes ``aurora_cpu_compat.pth`` (see :mod:`boot`). A ``.pth`` file runs in every
interpreter, including SGLang's spawned scheduler and detokenizer processes. The GPU install route
(``pip install ".[gpu]"``) never installs it, and :mod:`boot` re-checks at start-up, so on a CUDA machine
nothing here is active.
"""
