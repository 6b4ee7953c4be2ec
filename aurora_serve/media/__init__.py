"""Media: fetch bytes under limits (``fetch``, ``addresses``, ``local``), decode them into RGB frames
(``decode``), CLIP-preprocess (``preprocess``)."""
