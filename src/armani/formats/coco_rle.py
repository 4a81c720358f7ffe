"""COCO's run-length encoded masks (Fashionpedia's segmentations): alternating runs of 0s
and 1s over the image in column-major order, as a list of counts or in COCO's compressed
string form (6-bit characters from "0", each run a difference to the run two before).
"""
from __future__ import annotations

import numpy as np


def decode_coco_rle(counts, h: int, w: int) -> np.ndarray:
    """COCO run-length encoding (list or compressed string) -> (h, w) bool mask."""
    if isinstance(counts, str):
        runs, s, i = [], counts.encode(), 0
        while i < len(s):
            x = k = 0
            while True:
                c = s[i] - 48
                x |= (c & 0x1F) << (5 * k)
                i += 1
                k += 1
                if not c & 0x20:
                    if c & 0x10:
                        x |= -1 << (5 * k)
                    break
            if len(runs) > 2:
                x += runs[-2]
            runs.append(x)
    else:
        runs = list(counts)
    flat = np.zeros(h * w, bool)
    pos, val = 0, False
    for r in runs:
        if val:
            flat[pos:pos + r] = True
        pos += r
        val = not val
    return flat.reshape(w, h).T  # column-major
