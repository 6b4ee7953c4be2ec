"""Image decoding with Pillow: one upright RGB frame, size checked from the header, typed errors."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aurora_serve.errors import MediaError, MediaTooLargeError, UnsupportedMediaError
from aurora_serve.media.source import Source, check_size, file_arg


def decode_image(source: Source) -> np.ndarray:
    """Decode an image into ``(1, H, W, 3)`` uint8 RGB, EXIF orientation applied (first frame if animated).

    Raises UnsupportedMediaError (not an image Pillow reads), MediaTooLargeError (over ``MAX_SIDE`` /
    ``MAX_PIXELS``, checked from the header before decoding) or MediaError (truncated or corrupt).
    """
    try:
        with Image.open(file_arg(source)) as image:
            check_size(*image.size, what="the image")
            upright = ImageOps.exif_transpose(image)
            rgb = np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"the image is too large to decode ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError("the data is not an image format this server reads") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's truncated / corrupt data errors
        raise MediaError(f"the image could not be decoded; it is corrupt or truncated ({exc})") from exc
    return rgb[None]


def sniff_kind(source: Source) -> str:
    """'image' when Pillow recognises the header (it reads only the first bytes), else 'video': the one
    place a media item's kind is decided from its content (never from a name)."""
    try:
        with Image.open(file_arg(source)):
            return "image"
    except Image.DecompressionBombError:
        return "image"  # still an image: decode_image reports it as too large
    except (OSError, ValueError):  # OSError includes UnidentifiedImageError
        return "video"
