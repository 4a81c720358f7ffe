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
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..labels import LABELS, PALETTE
from .fsutil import (
    acquire_lock,
    atomic_write_text,
    check_target,
    drop_staging,
    inside,
    install_dir,
    release_lock,
    staging_dir,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "armani-dataset"
FORMAT_VERSION = 1
RECORD_KEYS = ("id", "split", "image", "captions", "mask", "attributes", "source")
OPTIONAL_KEYS = ("sketch",)
SPLITS = ("train", "val", "test", "test_holdout")
MAX_CAPTION_WORDS = 400  # the paper's filter (appendix A)
MAX_CAPTION_CHARS = 2000
PATH_KEYS = ("image", "mask", "sketch")


class DatasetError(UserError):
    """A dataset on disk is missing, malformed or inconsistent."""


def validate_record(rec: Any, root: str | os.PathLike | None = None) -> list[str]:
    """What is wrong with one `index.jsonl` record (empty when nothing): string `id`, `split`
    and `image`; `captions` a non-empty list of non-empty strings within the word and
    character caps; `mask` and `sketch` a string or null; every path relative and, with
    `root`, inside the dataset (no absolute path, no `..`, no symlink leading out)."""
    if not isinstance(rec, dict):
        return ["not a JSON object"]
    out = []
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        return [f"missing keys {missing}"]
    for key in ("id", "split", "image"):
        if not isinstance(rec[key], str) or not rec[key]:
            out.append(f"{key} must be a non-empty string, got {type(rec[key]).__name__}")
    caps = rec["captions"]
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
        out.append("captions must be a non-empty list of non-empty strings")
    elif any(len(c.split()) > MAX_CAPTION_WORDS for c in caps):
        out.append(f"caption over {MAX_CAPTION_WORDS} words")
    elif any(len(c) > MAX_CAPTION_CHARS for c in caps):
        out.append(f"caption over {MAX_CAPTION_CHARS} characters")
    for key in ("mask", "sketch"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            out.append(f"{key} must be a string or null")
    base = Path(root) if root is not None else None
    for key in PATH_KEYS:
        rel = rec.get(key)
        if not isinstance(rel, str) or not rel:
            continue
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts or "\\" in rel or "\x00" in rel:
            out.append(f"{key} path {rel!r} must be relative and inside the dataset")
        elif base is not None and not inside(base / p, base):
            out.append(f"{key} path {rel!r} leads outside the dataset (a symlink)")
    return out


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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: must hold a JSON object, not a {type(meta).__name__}")
    if not isinstance(meta.get("version", 0), int):
        raise DatasetError(f"{path}: version must be a whole number, got {meta['version']!r}")
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
        self.dropped: list[str] = []  # "line N: why" for every record left out as malformed
        with open(self.path, "rb") as f:
            pos = 0
            for n, line in enumerate(f, 1):
                if line.strip():
                    rec, why = _parse(line)
                    why = why or "; ".join(validate_record(rec, self.root))
                    if why:
                        self.dropped.append(f"line {n}: {why}")
                    elif (want is None or rec["split"] in want) and (where is None or where(rec)):
                        offsets.append(pos)
                pos += len(line)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.dropped:
            log.warning("%s: %d malformed record(s) left out (%s%s); `armani data check` lists them",
                        self.path, len(self.dropped), self.dropped[0], ", ..." if len(self.dropped) > 1 else "")
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


def _parse(line: bytes) -> tuple[dict | None, str | None]:
    """A line's record, or None and why (bad JSON, not UTF-8, not an object)."""
    try:
        rec = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:
        return None, f"invalid JSON ({e})"
    return (rec, None) if isinstance(rec, dict) else (None, "not a JSON object")


def iter_records(root: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, record or None, parse error or None) for every non-empty line."""
    with open(Path(root) / "index.jsonl", "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec, why = _parse(line)
            yield n, rec, why


class DatasetWriter:
    """Builds a dataset in `<out>.staging-*` and swaps it in for `out` on `commit()` (an
    earlier dataset at `out` is removed only once the new one is in place; see `fsutil`).
    `out` must be new, an empty folder or, with `overwrite`, a dataset: anything else is
    refused before anything is written. The target's lock is held from here to the end, so a
    second writer of the same `out` is refused at once (`fsutil.Busy`).

    Used as a context manager: leaving the block by an exception removes the partial
    folder, so nothing half-written is left behind.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out)
        self.tmp = None
        acquire_lock(self.out)
        self._locked = True
        try:
            check_target(self.out, "dataset", replace=overwrite, flag="--overwrite", error=DatasetError)
            self.tmp = staging_dir(self.out)
            self.overwrite = overwrite
            self._index = open(self.tmp / "index.jsonl", "w")
        except BaseException:
            if self.tmp is not None:
                drop_staging(self.tmp)
            self._unlock()
            raise
        self.counts: dict[str, int] = {}

    def path(self, rel: str) -> Path:
        p = self.tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, record: dict) -> None:
        problems = validate_record(record, self.tmp)
        if problems:
            raise UserError(f"record {record.get('id')!r}: {'; '.join(problems)}")
        self._index.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.counts[record["split"]] = self.counts.get(record["split"], 0) + 1

    def commit(self, meta: dict, extra_files: dict[str, str] | None = None) -> Path:
        self._index.close()
        meta = dict(meta, splits=dict(sorted(self.counts.items())), num_samples=sum(self.counts.values()))
        write_meta(self.tmp, meta)
        for name, text in (extra_files or {}).items():
            atomic_write_text(self.tmp / name, text)
        try:
            return install_dir(self.tmp, self.out)
        finally:
            self._unlock()

    def abort(self) -> None:
        if not self._index.closed:
            self._index.close()
        drop_staging(self.tmp)
        self._unlock()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            release_lock(self.out)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not committed: an exception, or a writer that never finished
            self.abort()
