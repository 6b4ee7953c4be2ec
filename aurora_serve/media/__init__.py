"""Media: fetch bytes under limits (``fetch``, ``addresses``, ``local``), the request's media item (``item``),
decode them into RGB frames (``decode``), CLIP-preprocess (``preprocess``)."""

# Torch- and PyAV-free, so the settings can offer the choices without importing the decoders.
VIDEO_BACKENDS = ("pyav", "decord")  # decord is an optional dependency
