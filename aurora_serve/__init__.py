"""aurora-serve: AuroraCap (video/image detailed captioning with token merging) on SGLang."""

__version__ = "0.1.0"
