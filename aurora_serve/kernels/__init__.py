"""Token-merging kernels: the PyTorch reference (``tome_ref``), the Triton kernels (``tome``), the dispatch."""

# Torch-free, so the settings can offer the choices without importing torch.
MERGE_BACKENDS = ("auto", "triton", "reference")
