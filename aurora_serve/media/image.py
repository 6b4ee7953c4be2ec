"""Image decoding with Pillow: one upright RGB frame, formats from an allow-list, size checked from the
header before any pixel is decoded, typed errors."""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media.budget import DecodeBudget
from aurora_serve.media.source import Source, check_size, file_arg

# What we decode. Pillow knows more, some of which reach beyond it (EPS runs Ghostscript) or are rarely seen
# outside exploits; an image in another format is a 415.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers MPO (multi-picture) files


def decode_image(source: Source, *, budget: DecodeBudget | None = None,
                 transform: Callable[[np.ndarray | Image.Image], np.ndarray] | None = None) -> np.ndarray:
    """Decode an image into ``(1, H, W, 3)`` uint8 RGB, EXIF orientation applied (first frame if animated),
    or ``transform`` of its upright RGB ``Image`` (no full-size array is made then).

    Raises UnsupportedMediaError (not a format in ``FORMATS``), MediaTooLargeError (over ``MAX_SIDE`` /
    ``MAX_PIXELS`` or the request's pixel budget, checked from the header before decoding) or MediaError
    (truncated or corrupt).
    """
    try:
        with Image.open(file_arg(source), formats=FORMATS) as image:
            check_size(*image.size, what="the image", max_pixels=budget.max_frame_pixels if budget else None)
            if budget is not None:
                budget.claim_pixels(image.size[0] * image.size[1])
            upright = ImageOps.exif_transpose(image).convert("RGB")
            out = transform(upright) if transform is not None else np.asarray(upright)
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"the image is too large to decode ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError(f"the data is not an image format this server reads ({', '.join(FORMATS)})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's truncated / corrupt data errors
        raise MediaError(f"the image could not be decoded; it is corrupt or truncated ({exc})") from exc
    return out[None]


def sniff_kind(source: Source) -> str:
    """'image' when Pillow recognises the header as one of ``FORMATS`` (it reads only the first bytes), else
    'video': the one place a media item's kind is decided from its content (never from a name)."""
    try:
        with Image.open(file_arg(source), formats=FORMATS):
            return "image"
    except Image.DecompressionBombError:
        return "image"  # still an image: decode_image reports it as too large
    except (OSError, ValueError):  # OSError includes UnidentifiedImageError
        return "video"
