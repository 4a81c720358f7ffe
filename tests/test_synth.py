from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from armani.data.make_synth import write_synth
from armani.data.synth import DEFAULT_HOLDOUT, make_sample, parse_holdout
from armani.data.vocab import CATEGORIES, COLORS, PATTERNS, parts_named
from armani.formats.dataset import Index
from armani.formats.images import read_image, read_mask
from armani.labels import LABEL_ID, LABELS, NUM_LABELS, PALETTE, SMALL_PARTS


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_vocabulary_sizes():
    assert NUM_LABELS == 15 and LABELS[0] == "background" and len(PALETTE) == 15
    assert len(set(PALETTE)) == 15
    assert len(CATEGORIES) >= 10 and len(COLORS) >= 10
    assert {"solid", "striped", "dotted", "checked"} <= set(PATTERNS)
    for part in ("sleeve", "collar", "hood", "button", "zipper", "pocket", "waistband", "cuff", "logo"):
        assert part in LABEL_ID


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a = write_synth(tmp_path / "a", n=300, size=32, seed=7, workers=1, tokenizer_vocab=300)
    b = write_synth(tmp_path / "b", n=300, size=32, seed=7, workers=2, tokenizer_vocab=300)
    c = write_synth(tmp_path / "c", n=300, size=32, seed=8, workers=1, tokenizer_vocab=300)
    da, db, dc = tree_digest(a), tree_digest(b), tree_digest(c)
    assert da == db
    assert da["index.jsonl"] != dc["index.jsonl"]
    assert da["images/00000/0000000.png"] != dc["images/00000/0000000.png"]


def test_mask_caption_consistency(synth_ds):
    for rec in Index(synth_ds):
        mask = read_mask(synth_ds / rec["mask"])
        present = {LABELS[i] for i in np.unique(mask)} - {"background"}
        cat = rec["attributes"]["category"]
        for cap in rec["captions"]:
            named = parts_named(cap, cat)
            assert named <= present, (rec["id"], cap, named - present)
        detailed = parts_named(rec["captions"][0], cat)
        assert detailed == present, (rec["id"], rec["captions"][0], present - detailed)
        assert len(set(rec["captions"])) == len(rec["captions"]) >= 4


def test_captions_use_synonyms_and_counts(synth_ds):
    text = " ".join(c for rec in Index(synth_ds) for c in rec["captions"]).lower()
    for word in (" zip ", "zipper", " tee", "t-shirt", " buttons", "two pockets", " jumper", "sweater"):
        assert word in text, word


def test_holdout_never_in_train(synth_ds):
    seen_holdout = 0
    for rec in Index(synth_ds):
        present = {LABELS[i] for i in np.unique(read_mask(synth_ds / rec["mask"]))}
        combo = any(c == rec["attributes"]["category"] and p in present for c, p in DEFAULT_HOLDOUT)
        assert combo == (rec["split"] == "test_holdout"), rec["id"]
        seen_holdout += combo
    assert seen_holdout > 0
    meta = json.loads((synth_ds / "dataset.json").read_text())
    assert meta["synth"]["holdout"] == [f"{c}:{p}" for c, p in DEFAULT_HOLDOUT]
    assert len(DEFAULT_HOLDOUT) >= 4


def test_holdout_is_configurable():
    assert parse_holdout("none") == ()
    assert parse_holdout("t-shirt:zipper,coat:hood") == (("t-shirt", "zipper"), ("coat", "hood"))
    with pytest.raises(ValueError):
        parse_holdout("t-shirt:wings")
    with pytest.raises(ValueError):
        parse_holdout("spacesuit:zipper")
    splits = {make_sample(0, i, 32, holdout=())["split"] for i in range(150)}
    assert "test_holdout" not in splits


def test_small_parts_are_small_and_images_not_flat():
    shares: dict[str, list[float]] = {p: [] for p in SMALL_PARTS + ("body",)}
    for i in range(150):
        s = make_sample(1, i, 64)
        garment = (s["mask"] > 0).sum()
        for p in shares:
            n = (s["mask"] == LABEL_ID[p]).sum()
            if n:
                shares[p].append(n / garment)
        img = s["image"].astype(np.float32)
        body = s["mask"] == LABEL_ID["body"]
        if body.sum() > 50 and s["attributes"]["pattern"] == "solid":
            assert img[body].std(axis=0).mean() > 1.0  # shading and texture, not a flat fill
        bg = img[s["mask"] == 0]
        assert bg.mean() > 180  # light studio background
    for p in SMALL_PARTS:
        assert shares[p], p
        assert np.mean(shares[p]) < 0.12, (p, np.mean(shares[p]))
    assert min(np.mean(shares[p]) for p in ("button", "zipper", "logo")) < 0.05
    assert np.mean(shares["body"]) > 0.4


def test_files_match_records(synth_ds):
    rec = Index(synth_ds, "train")[0]
    img, mask = read_image(synth_ds / rec["image"]), read_mask(synth_ds / rec["mask"])
    assert img.shape == (48, 48, 3) and mask.shape == (48, 48)
    s = make_sample(3, int(rec["id"]), 48)
    assert np.array_equal(s["image"], img) and np.array_equal(s["mask"], mask)
    assert s["captions"] == rec["captions"]


def test_mask_is_the_majority_of_each_image_pixel():
    from armani.data.synth import downsample_labels
    lab = np.array([[1, 1, 2, 3], [1, 2, 3, 2], [7, 0, 5, 5], [0, 0, 5, 1]], np.uint8)
    assert downsample_labels(lab).tolist() == [[1, 3], [0, 5]]  # ties go to the part drawn on top
