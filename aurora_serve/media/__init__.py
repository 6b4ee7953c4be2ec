"""Media: fetch bytes under limits (``fetch``), decode them into RGB frames (``decode``), CLIP-preprocess (``preprocess``)."""
