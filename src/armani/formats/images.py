"""Reading and writing images and label maps. Strict reads (for import and check) go
through Pillow, which refuses truncated files; masks are palette PNGs of label ids."""
from __future__ import annotations

import io
import os
from contextlib import contextmanager

import cv2
import numpy as np
from PIL import Image

from ..labels import NUM_LABELS, flat_palette

# The most pixels any reader decodes (about 8,000 x 6,000): the header is read first, so a
# small file claiming a huge image (a decompression bomb) is refused before any memory is used.
MAX_PIXELS = 48_000_000


class BadFile(Exception):
    """A file that cannot be used: unreadable, truncated, wrong size, bad labels."""


def _check_size(im: Image.Image, path) -> None:
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise BadFile(f"image {os.fspath(path)} is {w} x {h}, over the {MAX_PIXELS:,}-pixel limit")


@contextmanager
def _as_bad_file(path: str | os.PathLike, what: str = "image"):
    """Pillow's errors while reading `path`, as one BadFile that names the file."""
    try:
        yield
    except FileNotFoundError:
        raise BadFile(f"missing file {path}") from None
    except Image.DecompressionBombError as e:
        raise BadFile(f"image {os.fspath(path)} is over the {MAX_PIXELS:,}-pixel limit ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadFile(f"unreadable {what} {os.fspath(path)}: {e}") from None


def check_pixels(path: str | os.PathLike) -> None:
    """Raise BadFile when the image header of `path` declares more than MAX_PIXELS pixels."""
    with _as_bad_file(path), Image.open(path) as im:
        _check_size(im, path)


def read_image_strict(path: str | os.PathLike) -> np.ndarray:
    """Decode an image fully (raising BadFile on truncation or garbage) -> (H, W, 3) uint8 RGB."""
    with _as_bad_file(path), Image.open(path) as im:
        _check_size(im, path)  # from the header, before decoding
        im.load()
        return np.asarray(im.convert("RGB"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Fast decode for training -> (H, W, 3) uint8 RGB."""
    check_pixels(path)
    arr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if arr is None:
        return read_image_strict(path)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """A single-channel label PNG (palette or grey) -> (H, W) integer ids, no colour mapping."""
    with _as_bad_file(path, "label map"), Image.open(path) as im:
        _check_size(im, path)  # from the header, before decoding
        im.load()
        if im.mode not in ("P", "L", "I", "I;16"):
            raise BadFile(f"label map {os.fspath(path)} has mode {im.mode}, expected one channel")
        return np.asarray(im)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """An armani mask -> (H, W) uint8 label ids, checked to be in range."""
    m = read_label_map(path)
    if m.size and int(m.max()) >= NUM_LABELS:
        raise BadFile(f"mask {os.fspath(path)} has label {int(m.max())} >= {NUM_LABELS}")
    return m.astype(np.uint8, copy=False)


def encode_png_rgb(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise BadFile("PNG encoding failed")
    return buf.tobytes()


def encode_mask_png(mask: np.ndarray) -> bytes:
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(flat_palette())
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
