"""Seeded fuzzing of what reads user files: `data check`, `Index` and the training dataset on
mutated records, the folder importer on mutated sources, bundle and pipeline loading on
mutated files. Properties: no traceback (only the documented error types), no hang (each case
under an alarm), nothing written outside the output folder."""
import json
import random
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from armani.data.check import check_dataset
from armani.data.dataset import GarmentDataset
from armani.data.importers import ImportFailed, import_dataset
from armani.formats.dataset import DatasetError, Index
from armani.inference.pipeline import load, shipped_model

CASES = 40
VALUES = [None, 0, -1, 3.5, True, "", "x", "../../etc/passwd", "/etc/passwd", "images/../../x.png", [], ["a"],
          [1, 2], {}, {"a": None}, "\u202e\x00\x1b", "word " * 500, "y" * 5000]


@contextmanager
def bounded(seconds: int = 20):
    def fail(*_):
        raise TimeoutError("hang")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _mutate_line(rng: random.Random, line: bytes) -> bytes:
    how = rng.randrange(5)
    if how == 0:
        return line[: rng.randrange(len(line))] + b"\n"                  # torn
    if how == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\n"  # garbage
    rec = json.loads(line)
    key = rng.choice(sorted(rec))
    if how == 2:
        del rec[key]
    else:
        rec[key] = rng.choice(VALUES)
    return (json.dumps(rec) + "\n").encode()


@pytest.mark.slow
def test_fuzz_records(synth_ds, tmp_path):
    rng = random.Random(0)
    base = (synth_ds / "index.jsonl").read_bytes().splitlines(keepends=True)
    meta = json.loads((synth_ds / "dataset.json").read_text())
    for case in range(CASES):
        ds = tmp_path / f"ds{case}"
        shutil.copytree(synth_ds, ds)
        lines = list(base)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(lines))
            lines[i] = _mutate_line(rng, lines[i])
        (ds / "index.jsonl").write_bytes(b"".join(lines))
        if rng.random() < 0.2:
            bad = dict(meta, **{rng.choice(sorted(meta)): rng.choice(VALUES)})
            (ds / "dataset.json").write_text(json.dumps(bad))
        with bounded():
            rep = check_dataset(ds)
            assert isinstance(rep.errors, list)
            try:
                idx = Index(ds, "train")
                items = GarmentDataset(ds, "train", image_size=32, max_text_len=16)
                for j in range(min(4, len(idx))):
                    items[j]
            except DatasetError:
                pass
        shutil.rmtree(ds)


def test_fuzz_folder_import(tmp_path):
    rng = random.Random(1)
    for case in range(CASES // 2):
        work = tmp_path / f"c{case}"
        src = work / "src"
        (src / "images").mkdir(parents=True)
        (src / "masks").mkdir()
        for i in range(4):
            p = src / "images" / f"g{i}.png"
            kind = rng.randrange(4)
            if kind == 0:
                p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))))
            else:
                Image.fromarray(np.full((16 + i, 16, 3), rng.randrange(256), np.uint8)).save(p)
                if kind == 1:
                    p.write_bytes(p.read_bytes()[: rng.randrange(8, 60)])
            cap = rng.choice([b"a red dress\n", b"", b"\xff\xfe\x00 bad bytes", b"word " * 600, b"a coat\x00\x07\n"])
            (src / "images" / f"g{i}.txt").write_bytes(cap)
            if rng.random() < 0.5:
                m = src / "masks" / f"g{i}.png"
                if rng.random() < 0.5:
                    Image.fromarray(np.full((16 + i, 16), rng.randrange(40), np.uint8), mode="L").save(m)
                else:
                    m.write_bytes(b"\x89PNG garbage")
        before = sorted(p.relative_to(work) for p in work.rglob("*"))
        with bounded():
            try:
                import_dataset("folder", src, work / "out", tokenizer_vocab=300)
            except ImportFailed:
                pass
        after = sorted(p.relative_to(work) for p in work.rglob("*") if not p.relative_to(work).parts[0] == "out")
        assert after == before, "wrote outside the output folder"


def test_fuzz_pipeline_files(tmp_path):
    rng = random.Random(2)
    src = shipped_model()
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.suffix in (".json", ".safetensors"))
    for case in range(CASES // 2):
        pipe = tmp_path / f"p{case}"
        shutil.copytree(src, pipe)
        f = pipe / rng.choice(files)
        data = f.read_bytes()
        how = rng.randrange(3)
        if how == 0:
            f.write_bytes(data[: rng.randrange(len(data))])
        elif how == 1:
            b = bytearray(data)
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(min(len(b), 400))] = rng.randrange(256)
            f.write_bytes(bytes(b))
        elif f.suffix == ".json":
            doc = json.loads(data)
            target = doc.get("config", doc) if isinstance(doc.get("config"), dict) else doc
            target[rng.choice(sorted(target))] = rng.choice(VALUES + [10**6, 4096])
            f.write_text(json.dumps(doc))
        with bounded():
            try:
                load(pipe)
            except (ValueError, FileNotFoundError):
                pass
        shutil.rmtree(pipe)


@pytest.mark.parametrize("value", ["../segmenter", "/tmp"])
def test_fuzz_component_paths(tmp_path, value):
    pipe = tmp_path / "p"
    shutil.copytree(shipped_model(), pipe)
    meta = json.loads((pipe / "armani.json").read_text())
    meta["components"]["maskclip"] = value
    (pipe / "armani.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="inside the pipeline"):
        load(Path(pipe))
