from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from armani.data.check import check_dataset
from armani.formats.dataset import (
    DatasetError,
    DatasetWriter,
    Index,
    dataset_meta,
    read_meta,
)
from armani.formats.images import encode_mask_png, write_bytes


def test_index_random_access_and_split_filter(synth_ds):
    full = Index(synth_ds)
    train, holdout = Index(synth_ds, "train"), Index(synth_ds, "test_holdout")
    meta = read_meta(synth_ds)
    assert len(full) == meta["num_samples"] == 240
    assert len(train) == meta["splits"]["train"] and len(holdout) == meta["splits"]["test_holdout"]
    assert full.offsets.dtype == np.int64 and full.offsets.shape == (240,)
    lines = (synth_ds / "index.jsonl").read_text().splitlines()
    assert full[17] == json.loads(lines[17])
    assert all(r["split"] == "train" for r in train)
    clone = pickle.loads(pickle.dumps(train))  # DataLoader workers get a copy without the file handle
    assert clone[3] == train[3]


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out) as w:
            w.add({"id": "a", "split": "train", "image": "x.png", "captions": ["c"], "mask": None,
                   "attributes": None, "source": "t"})
            raise RuntimeError("interrupted")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with DatasetWriter(out) as w:
        w.add({"id": "a", "split": "train", "image": "x.png", "captions": ["c"], "mask": None,
               "attributes": None, "source": "t"})
        w.commit(dataset_meta("t", None, "t"))
    assert (out / "index.jsonl").is_file() and [p.name for p in tmp_path.iterdir()] == ["ds"]
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(out)


def test_read_meta_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a dataset"):
        read_meta(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="format"):
        read_meta(tmp_path)


def test_check_passes_then_finds_each_fault(synth_ds, tmp_path):
    assert check_dataset(synth_ds).ok
    bad = tmp_path / "bad"
    shutil.copytree(synth_ds, bad)
    recs = [json.loads(line) for line in (bad / "index.jsonl").read_text().splitlines()]
    img0 = bad / recs[0]["image"]
    img0.write_bytes(img0.read_bytes()[: len(img0.read_bytes()) // 2])          # truncated image
    write_bytes(bad / recs[1]["mask"], encode_mask_png(np.zeros((10, 12), np.uint8)))  # wrong size
    recs[2]["captions"] = []                                                       # missing caption
    recs[3]["captions"] = ["word " * 401]                                          # over 400 words
    recs[4]["id"] = recs[5]["id"]                                                  # duplicate id
    write_bytes(bad / recs[6]["mask"], encode_mask_png(np.full((48, 48), 40, np.uint8)))  # bad label
    (bad / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + "{not json\n")
    rep = check_dataset(bad)
    assert not rep.ok
    text = "\n".join(rep.errors)
    for needle in ("unreadable image", "mask is 12x10", "captions must be a non-empty list", "over 400 words",
                   "duplicate id", "label 40", "line 241"):
        assert needle in text, needle
    assert len(rep.errors) == 7


def _copy_ds(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_hostile_records_are_reported_and_left_out(synth_ds, tmp_path):
    import json as _json

    from armani.data.check import check_dataset
    from armani.formats.dataset import Index
    ds = _copy_ds(synth_ds, tmp_path / "ds")
    lines = (ds / "index.jsonl").read_bytes().splitlines(keepends=True)
    good = _json.loads(lines[0])
    (tmp_path / "secret.png").write_bytes((ds / good["image"]).read_bytes())
    (ds / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    bad = [dict(good, id="up", image="../secret.png"), dict(good, id="abs", image=str(tmp_path / "secret.png")),
           dict(good, id="link", image="images/link.png"), dict(good, id=["a", "list"]),
           dict(good, id="int", image=5), dict(good, id="str", captions="a red dress"),
           dict(good, id="split", split=["train"])]
    extra = [(_json.dumps(r) + "\n").encode() for r in bad] + [b"\xff\xfe not utf-8\n", b"{not json\n"]
    (ds / "index.jsonl").write_bytes(b"".join(lines) + b"".join(extra))
    rep = check_dataset(ds)  # never a traceback
    n = len(lines)
    for k, why in enumerate(["must be relative", "must be relative", "leads outside the dataset", "id must be",
                             "image must be", "captions must be", "split must be", "not UTF-8", "invalid JSON"]):
        assert any(f"line {n + k + 1}" in e and why in e for e in rep.errors), (k, why, rep.errors[-12:])
    idx = Index(ds)
    assert len(idx) == n and len(idx.dropped) == len(extra)
    assert all(r["id"] not in ("up", "abs", "link") for r in idx)


def test_bad_dataset_json_is_one_error(synth_ds, tmp_path):
    from armani.data.check import check_dataset
    ds = _copy_ds(synth_ds, tmp_path / "ds")
    meta = json.loads((ds / "dataset.json").read_text())
    for bad, why in ((dict(meta, version="2"), "version must be a whole number"), ([1, 2], "must hold a JSON object")):
        (ds / "dataset.json").write_text(json.dumps(bad))
        rep = check_dataset(ds)
        assert any(why in e for e in rep.errors), rep.errors
