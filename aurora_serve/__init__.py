"""aurora-serve: AuroraCap (video/image detailed captioning with token merging) on SGLang."""

__version__ = "0.1.0"
__all__ = ["Captioner"]


def __getattr__(name: str):
    # Lazy: importing aurora_serve (every command does) must not load torch or SGLang.
    if name == "Captioner":
        from aurora_serve.batch.captioner import Captioner

        return Captioner
    raise AttributeError(f"module 'aurora_serve' has no attribute {name!r}")
