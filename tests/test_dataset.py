from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from armani.data.dataset import IGNORE_INDEX, GarmentDataset, make_loader
from armani.data.importers import import_dataset
from armani.data.transforms import letterbox, partial_box, sketch
from armani.labels import NUM_LABELS


def test_item_shapes_and_ranges(synth_ds):
    ds = GarmentDataset(synth_ds, "train", image_size=32, max_text_len=48)
    it = ds[0]
    assert it["image"].shape == (3, 32, 32) and it["image"].dtype == torch.float32
    assert -1 <= it["image"].min() and it["image"].max() <= 1
    assert it["mask"].shape == (32, 32) and it["mask"].max() < NUM_LABELS and bool(it["has_mask"])
    assert it["text"].shape == (48,) and 2 < int(it["text_len"]) <= 48
    assert it["sketch"].shape == (1, 32, 32) and set(it["sketch"].unique().tolist()) <= {0.0, 1.0}
    assert it["sketch"].sum() > 10
    keep = it["keep"][0].bool()
    assert abs(keep.float().mean().item() - 0.25) < 0.05
    assert torch.equal(it["partial"][:, keep], it["image"][:, keep])
    assert (it["partial"][:, ~keep] == 1).all()  # white outside the kept box


def test_seeded_augmentation(synth_ds):
    a = GarmentDataset(synth_ds, "train", image_size=32, seed=5)
    b = GarmentDataset(synth_ds, "train", image_size=32, seed=5)
    for i in (0, 7):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in x)
    # Over many items, epochs change flips, crops or captions.
    changed = 0
    for i in range(20):
        x = a[i]
        a.set_epoch(1)
        y = a[i]
        a.set_epoch(0)
        changed += not (torch.equal(x["keep"], y["keep"]) and torch.equal(x["text"], y["text"]))
    assert changed > 10


def test_eval_mode_is_fixed(synth_ds):
    ds = GarmentDataset(synth_ds, "val", image_size=32, augment=False)
    first = ds.tokenizer.encode(ds.index[0]["captions"][0], ds.max_text_len)[0]
    assert np.array_equal(ds[0]["text"].numpy(), first)


def test_loader_workers_match_single_process(synth_ds):
    ds = GarmentDataset(synth_ds, "train", image_size=32, seed=1)
    b0 = next(iter(make_loader(ds, 8, workers=0, seed=3)))
    b2 = next(iter(make_loader(ds, 8, workers=2, seed=3)))
    assert b0["image"].shape == (8, 3, 32, 32)
    for k in b0:
        assert torch.equal(b0[k], b2[k]), k


def test_dataset_without_masks(tmp_path, samples):
    src = tmp_path / "f"
    (src / "images").mkdir(parents=True)
    shutil.copy(samples / "vitonhd" / "test" / "image" / "03191_00.jpg", src / "images" / "a.jpg")
    (src / "images" / "a.txt").write_text("white tee")
    out = import_dataset("folder", src, tmp_path / "ds", tokenizer_vocab=300, val_fraction=0, test_fraction=0).out
    it = GarmentDataset(out, "train", image_size=64)[0]
    assert not bool(it["has_mask"]) and (it["mask"] == IGNORE_INDEX).all()
    # Portrait images are letterboxed onto white, not stretched.
    assert (it["image"][:, :, :4] == 1).all()


def test_transforms():
    img = np.zeros((30, 60, 3), np.uint8)
    box = letterbox(img, 40)
    assert box.shape == (40, 40, 3) and (box[:10] == 255).all() and (box[10:30] == 0).all()
    rng = np.random.default_rng(0)
    for _ in range(50):
        x0, y0, x1, y1 = partial_box(rng, 64, 64)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert abs((x1 - x0) * (y1 - y0) / 4096 - 0.25) < 0.03
    sq = np.full((32, 32, 3), 255, np.uint8)
    sq[8:24, 8:24] = 0
    edges = sketch(sq)
    assert edges[8:24, 8].any() and not edges[14:18, 14:18].any()


def test_the_segmenters_data_needs_no_caption_tokenizer(synth_ds, tmp_path):
    """captions=False: no tokenizer read, no text fields, every other field as with captions."""
    import json
    plain = tmp_path / "ds"
    shutil.copytree(synth_ds, plain)
    meta = json.loads((plain / "dataset.json").read_text())
    (plain / meta.pop("tokenizer")).unlink()
    (plain / "dataset.json").write_text(json.dumps(meta))
    with_text = GarmentDataset(synth_ds, "train", image_size=32, seed=3)
    without = GarmentDataset(plain, "train", image_size=32, seed=3, captions=False)
    for i in (0, 5):
        a, b = with_text[i], without[i]
        assert set(a) - set(b) == {"text", "text_len"}
        assert all(torch.equal(a[k], b[k]) for k in b)
    with pytest.raises(ValueError, match="no tokenizer"):
        GarmentDataset(plain, "train", image_size=32)
