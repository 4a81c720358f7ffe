"""`armani tokenize`: encode a dataset once into a token folder (`armani.formats.tokens`)."""
from __future__ import annotations

import json
import logging
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import GarmentDataset, dataset_tokenizer, loader_workers
from ..errors import UserError
from ..formats.bundle import WEIGHTS, atomic_dir, sha256_file
from ..formats.dataset import read_meta
from ..formats.fsutil import check_target
from ..formats.tokens import TOKENS_FORMAT
from ..inference.image_tokens import load_image_tokenizer

log = logging.getLogger(__name__)

_KEYS = ("image", "mask", "has_mask", "text", "text_len", "sketch")


def _stack(keys: tuple[str, ...], items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in keys}


def encode_caption(tok, caption: str, max_len: int) -> tuple[np.ndarray, int, bool]:
    """`tok.encode(caption, max_len)` and whether the caption fitted whole (False: cut short)."""
    ids, k = tok.encode(caption, max_len)
    return ids, k, k < max_len or tok.count(caption) <= max_len


def tokenize_dataset(model: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                     sketch_vq: str | os.PathLike | None = None, splits: list[str] | None = None,
                     batch_size: int = 64, maskclip=None, segmenter=None, progress=None,
                     device: str | torch.device = "cpu") -> dict:
    """Write a token folder (see the module docstring); returns its tokens.json content.
    `device` "auto" encodes on CUDA when there is a GPU, reading the images with loader
    processes there; the token ids do not depend on either beyond rounding."""
    from torch.utils.data import DataLoader

    from ..inference.pipeline import resolve_device
    data, out = Path(data), Path(out)
    check_target(out, "tokens")  # before the models load: only a token folder is replaced
    meta = read_meta(data)
    dev = resolve_device(device)
    st = load_image_tokenizer(model, maskclip, segmenter, dev)
    sk = load_image_tokenizer(sketch_vq, device=dev) if sketch_vq else None
    workers = loader_workers(4) if dev.type == "cuda" else 0
    tok = st.tokenizer or dataset_tokenizer(data, meta)
    size = st.vq.cfg.image_size
    if sk is not None and sk.vq.cfg.image_size != size:
        raise UserError(f"the sketch tokenizer works at {sk.vq.cfg.image_size} px, the image tokenizer at {size}")
    available = list(meta.get("splits", {}) or {})
    splits = splits or [s for s in ("train", "val", "test", "test_holdout") if s in available]
    info = {"format": TOKENS_FORMAT, "data": str(data), "image_size": size,
            "image_grid": st.vq.cfg.grid, "image_codes": st.vq.cfg.num_codes,
            "sketch_grid": sk.vq.cfg.grid if sk else None, "sketch_codes": sk.vq.cfg.num_codes if sk else None,
            "max_text_len": st.max_text_len, "vocab_size": tok.vocab_size, "tokenizer": "tokenizer.json",
            "vqgan": {"path": str(st.path), "sha256": sha256_file(st.path / WEIGHTS)},
            "sketch-vq": {"path": str(sk.path), "sha256": sha256_file(sk.path / WEIGHTS)} if sk else None,
            "fusion_caption": "first", "splits": {}}
    cut = 0  # captions longer than the text block, cut short (the model never sees their end)
    with atomic_dir(out, "tokens") as tmp:
        for split in splits:
            ds = GarmentDataset(data, split, image_size=size, tokenizer=tok, max_text_len=st.max_text_len,
                                augment=False, caption="first")
            n = len(ds)
            grid2 = st.vq.cfg.grid ** 2
            img = np.zeros((n, grid2), np.uint16)
            skt = np.zeros((n, sk.vq.cfg.grid ** 2), np.uint16) if sk else None
            caps_n = max((len(ds.index[i]["captions"]) for i in range(n)), default=1)
            text = np.zeros((n, caps_n, st.max_text_len), np.int32)
            tlen = np.zeros((n, caps_n), np.int16)
            loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                collate_fn=partial(_stack, _KEYS))
            start = 0
            for batch in loader:
                rows = list(range(start, start + len(batch["image"])))
                start += len(rows)
                batch = {k: v.to(dev) for k, v in batch.items()}
                masks = batch["mask"].clone()
                masks[~batch["has_mask"]] = 0
                idx = st.encode(batch["image"], batch["text"], batch["text_len"], masks, batch["has_mask"])
                img[rows] = idx.flatten(1).cpu().numpy().astype(np.uint16)
                if sk is not None:
                    skt[rows] = sk.encode(batch["sketch"] * 2 - 1).flatten(1).cpu().numpy().astype(np.uint16)
                for r, i in enumerate(rows):
                    for c, cap in enumerate(ds.index[i]["captions"]):
                        text[i, c], tlen[i, c], whole = encode_caption(tok, cap, st.max_text_len)
                        cut += not whole
                if progress:
                    progress(len(rows))
            np.save(tmp / f"{split}.image.npy", img)
            if skt is not None:
                np.save(tmp / f"{split}.sketch.npy", skt)
            np.save(tmp / f"{split}.text.npy", text)
            np.save(tmp / f"{split}.text_len.npy", tlen)
            info["splits"][split] = n
        info["captions_cut"] = cut
        if cut:
            log.warning("%d captions are longer than the %d tokens the image tokenizer's MaskCLIP reads and were "
                        "cut short; train MaskCLIP with a larger model.max_text_len to keep them whole",
                        cut, st.max_text_len)
        tok.save(tmp / "tokenizer.json")
        (tmp / "tokens.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
