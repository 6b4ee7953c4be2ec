"""Checkpoints: the two on-disk layouts, hub resolution, conversion, and the embedded tiny model."""
