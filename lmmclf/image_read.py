"""The one image reader: a file in, the upright RGB pixels every stage and backend uses out.

Every stage that looks at pixels (the describe backends, embed, fine-tuning, prediction, the
dataset check) reads through :func:`read_image`, so the LMM and CLIP always see the same image.

The rule, in order:

1. **Open.** An image with more pixels than Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` fails (a
   decompression bomb: Pillow only warns between one and two times the limit; here that is a
   failure too). An animation (GIF, APNG, WebP) gives its first frame (``seek(0)``).
2. **Upright.** An EXIF orientation tag of 2 to 8 is applied (``ImageOps.exif_transpose``):
   phone photos are stored sideways and tagged. No tag, or a tag of 1 (or an invalid value),
   changes nothing.
3. **To RGB**, by the file's mode:

   ========================================  ===================================================
   mode                                      rule
   ========================================  ===================================================
   RGB, L, 1, P without transparency, CMYK,  ``convert("RGB")``, as before this reader existed
   YCbCr, LAB, HSV, RGBX (anything else)
   RGBA, LA, PA, RGBa, and P, L or RGB with  composited over white (:data:`BACKGROUND`): a
   a ``transparency`` entry                  transparent pixel is white, half-transparent is
                                             blended; fully opaque images come out exactly as
                                             ``convert("RGB")``
   I;16, I;16B, I;16L, I;16N, I, F           grey scaled from 16 bits to 8: ``v * 255 / 65535``
                                             rounded half up, after clipping to [0, 65535], by
                                             the mode's range, never the image's own maximum
                                             (65535 -> 255, 32768 -> 128)
   ========================================  ===================================================

Before this reader every stage called ``convert("RGB")`` on the file as stored. Compared with
that, only three things change, and only for the images they concern: EXIF-rotated images are
turned upright, transparent pixels become white instead of whatever colour hid under them, and
16-bit grey is scaled instead of clipped at 255 (which made it almost white). Every other image
decodes to the same bytes as before, so descriptions and embeddings cached from it stay valid.
:attr:`ReadImage.changed` says whether an image is one of the three; the dataset fingerprint
gives such an image its own kind (``image/read-2``), so its cached results are redone instead of
mixed with the new ones (:mod:`lmmclf.datasets.fingerprint`).

A file that cannot be read (missing, empty, not an image, truncated, corrupt, too many pixels)
raises :class:`~lmmclf.errors.ImageReadError` naming the file; each caller makes that image's
failure of it and goes on with the others.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lmmclf.errors import ImageReadError

# Rule 1 was a plain convert("RGB"); rule 2 is this module's. Images whose pixels differ under
# rule 2 get the fingerprint kind image/read-2.
READ_RULE = 2
BACKGROUND = (255, 255, 255)  # what transparency is composited over: white, as browsers show a page
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_ORIENTATION = 0x0112
# Pillow warns (DecompressionBombWarning) through the process-wide warnings filters: turning that
# one warning into an error for the duration of an open must not race another thread's open.
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ReadImage:
    """An image as every stage sees it.

    Args:
        pixels: the upright RGB image, decoded.
        format: the file's format as Pillow names it (``PNG``, ``JPEG``, ...).
        mode: the file's own mode (``RGB``, ``P``, ``I;16``, ...).
        turned: an EXIF orientation was applied.
        changed: the pixels differ from the file's plain ``convert("RGB")`` (turned upright,
            transparency over white, 16-bit grey scaled).
    """

    pixels: Image.Image
    format: str | None
    mode: str
    turned: bool
    changed: bool


def read_image(path) -> ReadImage:
    """Read ``path`` by the module's rule.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated, corrupt or too large.
    """
    with _open(path) as image:
        try:
            image.seek(0)  # an animation: its first frame
            image.load()
            _check_pixels(path, image.size)
            upright, turned = _upright(image)
            pixels, converted = _to_rgb(upright)
        except ImageReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for one bad file
            raise _decode_error(path, exc) from exc
        return ReadImage(pixels, image.format, image.mode, turned, turned or converted)


def read_rgb(path) -> Image.Image:
    """The upright RGB pixels of ``path`` (:func:`read_image`)."""
    return read_image(path).pixels


def check_image(path) -> ReadImage:
    """Read ``path`` after Pillow's own container checks (``Image.verify``: chunk CRCs, structure).

    The dataset check uses it: an image fails it whenever it failed the check that came before
    this reader (``verify`` then a full decode), so the set of usable images does not shrink or
    grow under an existing dataset.

    Raises:
        ImageReadError: as :func:`read_image`, or the container is damaged.
    """
    with _open(path) as image:
        try:
            image.verify()
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for one bad file
            raise _decode_error(path, exc) from exc
    return read_image(path)


def _open(path) -> Image.Image:
    """``Image.open`` with the decompression-bomb warning made an error; failures named."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(path, _too_many()) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, _unidentified(path)) from exc
    except OSError as exc:
        if exc.errno is not None:  # the file system's failure: missing, a folder, no permission
            raise ImageReadError(path, f"cannot be read ({exc.strerror or exc})") from exc
        raise _decode_error(path, exc) from exc  # Pillow's: a header cut short or malformed
    except Exception as exc:  # noqa: BLE001 - a malformed header raises SyntaxError, ValueError...
        raise _decode_error(path, exc) from exc


def _check_pixels(path, size: tuple[int, int]) -> None:
    # again after the open: a frame or a limit set after opening must not pass unchecked
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageReadError(path, f"{size[0]}x{size[1]} is {size[0] * size[1]} pixels, {_LIMIT_TEXT.format(limit=limit)}")


_LIMIT_TEXT = "over Pillow's limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS), a guard against decompression bombs"


def _too_many() -> str:
    return f"too many pixels: {_LIMIT_TEXT.format(limit=Image.MAX_IMAGE_PIXELS)}"


def _unidentified(path) -> str:
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    return "not an image file Pillow can read"


def _decode_error(path, exc: Exception) -> ImageReadError:
    detail = str(exc).strip() or type(exc).__name__
    return ImageReadError(path, f"cannot decode image: {detail}")


def _upright(image: Image.Image) -> tuple[Image.Image, bool]:
    """The image turned by its EXIF orientation, and whether it was turned."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - an EXIF block Pillow cannot parse: the pixels are still good
        orientation = 1
    if orientation not in range(2, 9):  # none, upright, or a value no camera writes: as stored
        return image, False
    return ImageOps.exif_transpose(image), True


def _to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """RGB by the mode rule, and whether that differs from ``convert("RGB")``."""
    if image.mode in _SIXTEEN_BIT:
        return _scale_to_8_bits(image), True
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        # fully opaque: compositing changes nothing, and the image decodes as it always did
        changed = rgba.getchannel("A").getextrema()[0] < 255
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB"), changed
    return (image.copy() if image.mode == "RGB" else image.convert("RGB")), False


def _scale_to_8_bits(image: Image.Image) -> Image.Image:
    """16-bit grey (I;16 family, or I / F holding 16-bit values) to RGB, by the mode's range."""
    values = np.asarray(image)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0)
        grey = np.floor(np.clip(values, 0, 65535) * 255.0 / 65535.0 + 0.5)
    else:
        grey = (np.clip(values.astype(np.int64), 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
