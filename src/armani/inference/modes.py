"""The generation modes of the paper (which conditions a sample is drawn from) and the
partial image's chest band. No torch here: the command line reads these at start-up."""
from __future__ import annotations

MODES = ("text", "text+sketch", "text+partial", "sketch", "partial")


def chest_band(size: int) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) of a band across the chest: a quarter of a size x size image, as
    the partial images of training keep about a quarter of the token grid."""
    return (0, size // 4, size, size // 2)
