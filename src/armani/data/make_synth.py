"""Writing a SynthFashion dataset to disk, in parallel and deterministically."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..formats.dataset import DatasetWriter, dataset_meta
from ..formats.images import encode_mask_png, encode_png_rgb, write_bytes
from .synth import DEFAULT_HOLDOUT, make_sample
from .tokenizer import train_bpe

log = logging.getLogger(__name__)
CHUNK = 128


def _rel(kind: str, index: int) -> str:
    # 1000 files per folder keeps directories small at any dataset size.
    return f"{kind}/{index // 1000:05d}/{index:07d}.png"


def _render_chunk(args) -> list[dict]:
    tmp, seed, size, holdout, start, stop = args
    records = []
    for i in range(start, stop):
        s = make_sample(seed, i, size, holdout)
        img_rel, mask_rel = _rel("images", i), _rel("masks", i)
        for rel, data in ((img_rel, encode_png_rgb(s["image"])), (mask_rel, encode_mask_png(s["mask"]))):
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(p, data)
        records.append({"id": f"{i:07d}", "split": s["split"], "image": img_rel, "captions": s["captions"],
                        "mask": mask_rel, "attributes": s["attributes"], "source": "synthfashion"})
    return records


def write_synth(out: str | os.PathLike, n: int, size: int = 64, seed: int = 0,
                holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT, workers: int | None = None,
                overwrite: bool = False, tokenizer_vocab: int | None = 2048,
                progress: Callable[[int], None] | None = None) -> Path:
    """Render `n` samples into a new dataset folder `out`; returns its path.

    Output bytes depend only on (n, size, seed, holdout): every sample has its own seeded
    random stream, and records are written in index order whatever `workers` is.
    """
    if n < 1:
        raise UserError("n must be at least 1")
    if not 16 <= size <= 1024:
        raise UserError("size must be between 16 and 1024 pixels")
    workers = workers or min(os.cpu_count() or 1, 8)
    with DatasetWriter(out, overwrite=overwrite) as w:
        jobs = [(str(w.tmp), seed, size, holdout, a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
        captions: list[str] = []
        if workers > 1 and len(jobs) > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=_worker_init) as pool:
                chunks = pool.imap(_render_chunk, jobs)
                _collect(chunks, w, captions, progress)
        else:
            _collect(map(_render_chunk, jobs), w, captions, progress)
        meta = dataset_meta("synthfashion", [size, size], "synthfashion",
                            synth={"n": n, "size": size, "seed": seed,
                                   "holdout": [f"{c}:{p}" for c, p in holdout]})
        extra = {}
        if tokenizer_vocab:
            extra["tokenizer.json"] = train_bpe(captions, vocab_size=tokenizer_vocab).to_str()
            meta["tokenizer"] = "tokenizer.json"
        return w.commit(meta, extra)


def _worker_init() -> None:
    """A render worker takes SIGTERM's default action (the pool stops its workers with it; the
    command line's handler, inherited through fork, would turn it into an exception that the
    worker's exit path can hang on) and leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collect(chunks, w: DatasetWriter, captions: list[str], progress) -> None:
    for records in chunks:
        for r in records:
            w.add(r)
            if r["split"] == "train":
                captions.extend(r["captions"])
        if progress:
            progress(len(records))
