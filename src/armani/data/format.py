"""The on-disk dataset format.

A dataset is a folder::

    dataset.json    format name and version, label names, palette, image size, tokenizer
    index.jsonl     one JSON record per sample (see `RECORD_KEYS`)
    images/ masks/ sketches/   the files the records point to (relative paths)
    tokenizer.json  optional, the caption tokenizer
    import_report.json         importers only: what was skipped and why

Records are read by streaming: `Index` keeps one int64 byte offset per sample and parses a
line only when it is asked for, so a million-sample index costs 8 MB, not a million
dicts. Writers build the dataset in a temporary sibling folder and rename it into place
at the end, so an interrupted run never leaves a half-written dataset behind.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..fsutil import atomic_write_text, install_dir, staging_dir
from ..labels import LABELS, PALETTE

FORMAT_NAME = "armani-dataset"
FORMAT_VERSION = 1
RECORD_KEYS = ("id", "split", "image", "captions", "mask", "attributes", "source")
OPTIONAL_KEYS = ("sketch",)
SPLITS = ("train", "val", "test", "test_holdout")
MAX_CAPTION_WORDS = 400  # the paper's filter (appendix A)


class DatasetError(Exception):
    """A dataset on disk is missing, malformed or inconsistent."""


def dataset_meta(name: str, image_size: list[int] | None, source: str, **extra: Any) -> dict:
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "name": name, "source": source,
            "labels": list(LABELS), "palette": [list(c) for c in PALETTE],
            "image_size": image_size, "tokenizer": None, **extra}


def read_meta(root: str | os.PathLike) -> dict:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{root}: not a dataset (no dataset.json); create one with "
                           "`armani data synth` or `armani data import`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: invalid JSON ({e})") from None
    if meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {meta['version']} is newer than this armani "
                           f"reads ({FORMAT_VERSION}); upgrade armani")
    if list(meta.get("labels", [])) != list(LABELS):
        raise DatasetError(f"{path}: label vocabulary differs from armani's {len(LABELS)} labels")
    return meta


def write_meta(root: str | os.PathLike, meta: dict) -> None:
    atomic_write_text(Path(root) / "dataset.json", json.dumps(meta, indent=2) + "\n")


class Index:
    """Random access to `index.jsonl` through byte offsets, optionally filtered by split."""

    def __init__(self, root: str | os.PathLike, splits: str | tuple[str, ...] | None = None,
                 where: Callable[[dict], bool] | None = None):
        self.root = Path(root)
        self.path = self.root / "index.jsonl"
        if not self.path.is_file():
            raise DatasetError(f"{self.root}: no index.jsonl")
        want = (splits,) if isinstance(splits, str) else splits
        offsets = []
        with open(self.path, "rb") as f:
            pos = 0
            for line in f:
                if line.strip():
                    rec = _parse(line)
                    if rec is not None and (want is None or rec.get("split") in want) and (where is None or where(rec)):
                        offsets.append(pos)
                pos += len(line)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._file, self._pid = None, None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> dict:
        # Opened lazily, once per process: a forked DataLoader worker must not share the parent's
        # handle, whose file offset the processes would move under each other's reads.
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = open(self.path, "rb"), os.getpid()
        self._file.seek(int(self.offsets[i]))
        return json.loads(self._file.readline())

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


def _parse(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None


def iter_records(root: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, record or None, parse error or None) for every non-empty line."""
    with open(Path(root) / "index.jsonl", "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                yield n, rec, None
            except ValueError as e:
                yield n, None, str(e)


class DatasetWriter:
    """Builds a dataset in `<out>.staging-*` and swaps it in for `out` on `commit()` (an
    earlier dataset at `out` is removed only once the new one is in place; see `fsutil`).

    Used as a context manager: leaving the block by an exception removes the partial
    folder, so nothing half-written is left behind.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise DatasetError(f"{self.out} already exists (pass --overwrite to replace it)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = staging_dir(self.out)
        self.overwrite = overwrite
        self._index = open(self.tmp / "index.jsonl", "w")
        self.counts: dict[str, int] = {}

    def path(self, rel: str) -> Path:
        p = self.tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, record: dict) -> None:
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            raise ValueError(f"record {record.get('id')!r} lacks {missing}")
        self._index.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.counts[record["split"]] = self.counts.get(record["split"], 0) + 1

    def commit(self, meta: dict, extra_files: dict[str, str] | None = None) -> Path:
        self._index.close()
        meta = dict(meta, splits=dict(sorted(self.counts.items())), num_samples=sum(self.counts.values()))
        write_meta(self.tmp, meta)
        for name, text in (extra_files or {}).items():
            atomic_write_text(self.tmp / name, text)
        return install_dir(self.tmp, self.out)

    def abort(self) -> None:
        if not self._index.closed:
            self._index.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not committed: an exception, or a writer that never finished
            self.abort()
