"""`armani data check`: validate a dataset folder the way importers validate sources."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..formats.dataset import (
    SPLITS,
    DatasetError,
    iter_records,
    read_meta,
    validate_record,
)
from ..formats.images import BadFile, read_image_strict, read_mask
from .tokenizer import CaptionTokenizer


@dataclass
class CheckReport:
    samples: int = 0
    splits: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_dataset(root: str | os.PathLike, decode: bool = True, max_errors: int = 1000,
                  progress: Callable[[int], None] | None = None) -> CheckReport:
    """Every record well-formed, every file present and decodable, masks the image's size
    with labels in range, captions present and at most 400 words, ids unique."""
    root = Path(root)
    rep = CheckReport()
    try:
        meta = read_meta(root)
    except DatasetError as e:
        rep.errors.append(str(e))
        return rep
    if meta.get("tokenizer"):
        try:
            CaptionTokenizer.from_file(root / meta["tokenizer"])
        except Exception as e:  # noqa: BLE001 - any failure to load is a dataset error
            rep.errors.append(f"tokenizer {meta['tokenizer']}: {e}")
    if not (root / "index.jsonl").is_file():
        rep.errors.append(f"{root}: no index.jsonl")
        return rep
    ids: set[str] = set()

    def err(msg: str) -> None:
        if len(rep.errors) < max_errors:
            rep.errors.append(msg)

    for line, rec, parse_error in iter_records(root):
        if progress:
            progress(1)
        if rec is None:
            err(f"index.jsonl line {line}: {parse_error}")
            continue
        rep.samples += 1
        where = f"index.jsonl line {line} ({rec.get('id')!r})"
        problems = validate_record(rec, root)
        if problems:
            for p in problems:
                err(f"{where}: {p}")
            continue
        if rec["id"] in ids:
            err(f"{where}: duplicate id")
        ids.add(rec["id"])
        rep.splits[rec["split"]] += 1
        if rec["split"] not in SPLITS:
            rep.warnings.append(f"{where}: unusual split {rec['split']!r}")
        if not decode:
            for key in ("image", "mask", "sketch"):
                if rec.get(key) and not (root / rec[key]).is_file():
                    err(f"{where}: missing {key} file {rec[key]}")
            continue
        try:
            img = read_image_strict(root / rec["image"])
            if rec["mask"]:
                m = read_mask(root / rec["mask"])
                if m.shape != img.shape[:2]:
                    err(f"{where}: mask is {m.shape[1]}x{m.shape[0]}, image is {img.shape[1]}x{img.shape[0]}")
            if rec.get("sketch"):
                read_image_strict(root / rec["sketch"])
        except BadFile as e:
            err(f"{where}: {e}")
    if rep.samples == 0:
        rep.errors.append(f"{root}: index.jsonl has no samples")
    declared = meta.get("splits")
    if declared and dict(rep.splits) != declared:
        rep.warnings.append(f"dataset.json declares splits {declared}, index has {dict(rep.splits)}")
    return rep
