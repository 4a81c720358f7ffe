"""The token folder: a dataset encoded once into token ids for stage 2 (`armani tokenize`).

All arrays are `.npy`, read with allow_pickle=False:

    tokens.json                  format, grids, codebook sizes, splits and their sizes, the
                                 bundles used ("vqgan", "sketch-vq": path + sha256), the
                                 caption tokenizer file
    tokenizer.json               the caption tokenizer (the stage-1 bundle's = MaskCLIP's)
    {split}.image.npy            (N, h*w) uint16  stage-1 codes, row-major over the latent grid
    {split}.sketch.npy           (N, hs*ws) uint16 sketch codes (when a sketch tokenizer was given)
    {split}.text.npy             (N, C, L) int32  caption token ids, C captions per sample
    {split}.text_len.npy         (N, C) int16     caption lengths (0: no caption in that slot)

Row i of every array is sample i of the dataset split. Image codes are computed with
fusion (eq. 9) on the sample's first caption (for SynthFashion the detailed one, which
names every part), without augmentation.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import MissingInput, UserError

TOKENS_FORMAT = "armani-tokens/1"
LEGACY_KEYS = {"image_model": "vqgan", "sketch_model": "sketch-vq"}


def read_token_info(root: str | os.PathLike) -> dict:
    """A token folder's tokens.json, checked; reads no arrays."""
    p = Path(root) / "tokens.json"
    if not p.is_file():
        raise MissingInput(f"{root} is not a token folder (no tokens.json); make one with `armani tokenize`")
    info = json.loads(p.read_text())
    if info.get("format") != TOKENS_FORMAT:
        raise UserError(f"{root}: unknown token format {info.get('format')!r}")
    for old, new in LEGACY_KEYS.items():  # folders written before the models' keys were their roles
        if old in info:
            info.setdefault(new, info.pop(old))
    return info


class TokenSet:
    """Read access to one split of a token folder."""

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        self.root = Path(root)
        self.info = read_token_info(root)
        if split not in self.info["splits"]:
            raise UserError(f"{root} has no split {split!r}; it has {', '.join(self.info['splits'])}")
        self.split = split

        def load(name):
            f = self.root / f"{split}.{name}.npy"
            return np.load(f, allow_pickle=False) if f.is_file() else None
        self.image, self.sketch = load("image"), load("sketch")
        self.text, self.text_len = load("text"), load("text_len")
        info = self.info
        for name, arr, size in (("image", self.image, info.get("image_codes")),
                                ("sketch", self.sketch, info.get("sketch_codes")),
                                ("text", self.text, info.get("vocab_size"))):
            if arr is not None and arr.size and size is not None and not 0 <= int(arr.min()) <= int(arr.max()) < size:
                raise UserError(f"{self.root}: {split}.{name}.npy has ids outside [0, {size}) (the folder is damaged "
                                "or mixes models; tokenize again)")

    def __len__(self) -> int:
        return int(self.image.shape[0])
