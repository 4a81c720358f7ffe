from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from armani.cli import main
from armani.data.check import check_dataset
from armani.data.importers import (
    DEEPFASHION_MM_TABLE,
    DRESSCODE_TABLE,
    VITONHD_TABLE,
    ImportFailed,
    import_dataset,
)
from armani.formats.coco_rle import decode_coco_rle
from armani.formats.dataset import Index
from armani.formats.images import read_mask
from armani.labels import LABEL_ID, NUM_LABELS


def labels_in(ds: Path) -> set[int]:
    out: set[int] = set()
    for rec in Index(ds):
        if rec["mask"]:
            out |= set(np.unique(read_mask(ds / rec["mask"])).tolist())
    return out


def test_tables_cover_their_sources():
    assert sorted(VITONHD_TABLE) == list(range(20))
    assert sorted(DRESSCODE_TABLE) == list(range(18))
    assert sorted(DEEPFASHION_MM_TABLE) == list(range(24))


def test_vitonhd_real_samples(samples, tmp_path):
    res = import_dataset("vitonhd", samples / "vitonhd", tmp_path / "v", tokenizer_vocab=300)
    assert res.imported == 2 and res.skipped == []
    assert check_dataset(res.out).ok
    recs = list(Index(res.out))
    caps = json.loads((samples / "vitonhd" / "captions.json").read_text())
    for r in recs:
        key = r["id"].split("-")[1][:-3]
        assert r["captions"] == caps[key]
        assert r["sketch"] and (res.out / r["sketch"]).is_file()
        m = read_mask(res.out / r["mask"])
        img = Image.open(res.out / r["image"])
        assert m.shape == (img.height, img.width)
    assert LABEL_ID["body"] in labels_in(res.out)
    assert labels_in(res.out) <= {LABEL_ID[n] for n in ("background", "body", "skirt", "leg")}


def test_fashionpedia_real_samples(samples, tmp_path):
    res = import_dataset("fashionpedia", samples / "fashionpedia", tmp_path / "f", tokenizer_vocab=300)
    assert res.imported == 2
    assert check_dataset(res.out).ok
    caps = {r["id"]: r["captions"][0] for r in Index(res.out)}
    assert "dress" in caps["9813"] and "two sleeves" in caps["9813"]
    assert "shirt" in caps["10223"] and "pants" in caps["10223"] and "collar" in caps["10223"]
    present = labels_in(res.out)
    for name in ("body", "sleeve", "collar", "leg"):
        assert LABEL_ID[name] in present, name
    # Parts are painted over their garment: the dress image has sleeve pixels.
    m = read_mask(res.out / next(r for r in Index(res.out) if r["id"] == "9813")["mask"])
    assert (m == LABEL_ID["sleeve"]).sum() > 1000 and (m == LABEL_ID["body"]).sum() > 50000


def _corrupt_vitonhd(samples: Path, tmp_path: Path) -> Path:
    src = tmp_path / "viton"
    shutil.copytree(samples / "vitonhd", src)
    test = src / "test"
    # Two more copies of a good sample, then break each of the three in its own way.
    for new in ("90001_00", "90002_00"):
        for sub, ext in (("image", "jpg"), ("image-parse-v3", "png")):
            shutil.copy(test / sub / f"12419_00.{ext}", test / sub / f"{new}.{ext}")
    jpg = test / "image" / "12419_00.jpg"
    jpg.write_bytes(jpg.read_bytes()[:5000])                                   # truncated JPEG
    Image.new("P", (100, 100)).save(test / "image-parse-v3" / "90001_00.png")  # mask of the wrong size
    caps = json.loads((src / "captions.json").read_text())
    caps["90001"] = ["fine caption"]                                           # 90002: no caption
    (src / "captions.json").write_text(json.dumps(caps))
    return src


def test_corrupted_inputs_are_skipped_and_reported(samples, tmp_path):
    src = _corrupt_vitonhd(samples, tmp_path)
    res = import_dataset("vitonhd", src, tmp_path / "out", tokenizer_vocab=300)
    assert res.imported == 1
    reasons = {s["id"]: s["reason"] for s in res.skipped}
    assert set(reasons) == {"test-12419_00", "test-90001_00", "test-90002_00"}
    assert reasons["test-12419_00"].startswith("unreadable file")
    assert reasons["test-90001_00"].startswith("mask size")
    assert reasons["test-90002_00"] == "missing caption"
    report = json.loads((res.out / "import_report.json").read_text())
    assert report["imported"] == 1 and len(report["skipped"]) == 3
    assert "skipped 3" in res.summary()
    assert check_dataset(res.out).ok


def test_strict_fails_and_leaves_nothing(samples, tmp_path):
    src = _corrupt_vitonhd(samples, tmp_path)
    out = tmp_path / "strict"
    with pytest.raises(ImportFailed, match="--strict"):
        import_dataset("vitonhd", src, out, strict=True)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert main(["-q", "data", "import", "--format", "vitonhd", "--src", str(src), "--out", str(out),
                 "--strict"]) == 2


def _save_labels(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def test_dresscode_layout(samples, tmp_path):
    src = tmp_path / "dc"
    viton_img = samples / "vitonhd" / "test" / "image" / "03191_00.jpg"
    w, h = Image.open(viton_img).size
    for cat, key, label in (("upper_body", "000001", 4), ("dresses", "020001", 7), ("lower_body", "013001", 6)):
        (src / cat / "images").mkdir(parents=True)
        shutil.copy(viton_img, src / cat / "images" / f"{key}_0.jpg")
        lm = np.zeros((h // 2, w // 2), np.uint8)  # half size, same aspect: accepted and resized
        lm[100:300, 100:250] = label
        lm[300:310, 100:250] = 8  # belt
        _save_labels(src / cat / "label_maps" / f"{key}_4.png", lm)
    _save_labels(src / "upper_body" / "im_sketch" / "000001_1.png", np.zeros((h, w), np.uint8))
    bad = np.zeros((h, w), np.uint8)
    bad[0, 0] = 42  # not a Dress Code label
    _save_labels(src / "lower_body" / "label_maps" / "013001_4.png", bad)
    (src / "fine_captions.json").write_text(json.dumps({
        "000001": ["white t-shirt", "short sleeves"], "020001": ["red dress"], "013001": ["blue jeans"]}))
    res = import_dataset("dresscode", src, tmp_path / "out", tokenizer_vocab=300)
    assert res.imported == 2
    assert [s["reason"].split(":")[0] for s in res.skipped] == ["label out of range"]
    recs = {r["id"]: r for r in Index(res.out)}
    assert recs["upper_body-000001"]["captions"] == ["white t-shirt, short sleeves", "white t-shirt",
                                                     "short sleeves"]
    assert recs["upper_body-000001"]["sketch"]
    m = read_mask(res.out / recs["dresses-020001"]["mask"])
    assert m.shape == (h, w) and set(np.unique(m)) == {0, LABEL_ID["body"], LABEL_ID["waistband"]}
    assert check_dataset(res.out).ok


def test_deepfashion_mm_layout(samples, tmp_path):
    src = tmp_path / "dfmm"
    (src / "images").mkdir(parents=True)
    img = samples / "vitonhd" / "test" / "image" / "12419_00.jpg"
    w, h = Image.open(img).size
    names = ["WOMEN-Tees_Tanks-id_00000001-01_1_front", "MEN-Denim-id_00000002-01_7_additional"]
    for i, stem in enumerate(names):
        shutil.copy(img, src / "images" / f"{stem}.jpg")
        seg = np.zeros((h, w), np.uint8)
        seg[200:600, 200:500] = (1, 5)[i]
        seg[600:620, 200:500] = 10
        seg[50:150, 300:400] = 14  # face -> background
        _save_labels(src / "segm" / f"{stem}_segm.png", seg)
    long_caption = " ".join(["cotton"] * 401)
    (src / "captions.json").write_text(json.dumps({
        f"{names[0]}.jpg": "The tank top has no sleeves. It is made of cotton.",
        f"{names[1]}.jpg": long_caption}))
    res = import_dataset("deepfashion-mm", src, tmp_path / "out", tokenizer_vocab=300)
    assert res.imported == 1 and res.skipped[0]["reason"] == "caption over 400 words"
    rec = next(iter(Index(res.out)))
    assert set(np.unique(read_mask(res.out / rec["mask"]))) == {0, LABEL_ID["body"], LABEL_ID["waistband"]}


def test_folder_layout(tmp_path):
    src = tmp_path / "folder"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(src / "images" / f"g{i}.png")
    (src / "images" / "g0.txt").write_text("a green coat\na long green coat with a belt\n")
    (src / "captions.jsonl").write_text(json.dumps({"image": "g1.png", "caption": "a pink dress"}) + "\n"
                                        + json.dumps({"image": "g2.png", "captions": ["   "]}) + "\n")
    _save_labels(src / "masks" / "g0.png", np.full((40, 30), LABEL_ID["body"]))
    _save_labels(src / "masks" / "g1.png", np.full((40, 30), NUM_LABELS + 3))
    res = import_dataset("folder", src, tmp_path / "out", tokenizer_vocab=300)
    reasons = {s["id"]: s["reason"].split(":")[0] for s in res.skipped}
    assert reasons == {"g1": "label out of range", "g2": "empty caption", "g3": "missing caption"}
    rec = next(iter(Index(res.out)))
    assert rec["captions"] == ["a green coat", "a long green coat with a belt"]
    assert (read_mask(res.out / rec["mask"]) == LABEL_ID["body"]).all()


def test_max_side_downscales(samples, tmp_path):
    res = import_dataset("vitonhd", samples / "vitonhd", tmp_path / "v", max_side=128, tokenizer_vocab=300)
    for r in Index(res.out):
        img = Image.open(res.out / r["image"])
        assert max(img.size) == 128
        assert read_mask(res.out / r["mask"]).shape == (img.height, img.width)


def _rle_compress(runs: list[int]) -> str:
    """Independent encoder for the COCO string format, used to test the decoder."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_coco_rle_decoding():
    rng = np.random.default_rng(1)
    m = rng.random((23, 17)) < 0.3
    flat = m.T.reshape(-1)  # column-major
    runs, cur, n = [], False, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    assert np.array_equal(decode_coco_rle(runs, 23, 17), m)
    assert np.array_equal(decode_coco_rle(_rle_compress(runs), 23, 17), m)


def test_unknown_source_is_a_clear_error(tmp_path, capsys):
    assert main(["-q", "data", "import", "--format", "vitonhd", "--src", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "source folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["-q", "data", "import", "--format", "vitonhd", "--src", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 2


def test_hostile_sources_skip_their_sample(tmp_path):
    """A FIFO among the images (it would hang a reader), a caption file symlinked out of SRC,
    and captions that are one string, carry control characters or run to 200 KB."""
    import os
    src = tmp_path / "folder"
    (src / "images").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(src / "images" / f"g{i}.png")
    os.mkfifo(src / "images" / "z.png")
    secret = tmp_path / "secret.txt"
    secret.write_text("the system's password file\n")
    (src / "images" / "g0.txt").symlink_to(secret)
    (src / "images" / "g1.txt").write_text("a red\x00 dress\x1b[31m with a collar\n")
    (src / "images" / "g2.txt").write_text("x" * 200_000 + "\n")
    (src / "captions.jsonl").write_text(json.dumps({"image": "g3.png", "captions": "a blue coat"}) + "\n"
                                        + json.dumps({"image": "g4.png", "captions": {"a": 1}}) + "\n")
    res = import_dataset("folder", src, tmp_path / "out", tokenizer_vocab=300)
    reasons = {s["id"]: s["reason"] for s in res.skipped}
    assert reasons["z"].startswith("not a regular file")
    assert reasons["g0"].startswith("symlink leaves SRC")
    assert reasons["g2"] == "caption over 2000 characters"
    assert reasons["g4"].startswith("captions must be text")
    caps = {r["id"]: r["captions"] for r in Index(res.out)}
    assert caps == {"g1": ["a red dress [31m with a collar"], "g3": ["a blue coat"]}
    assert "password" not in (res.out / "index.jsonl").read_text()


def test_one_bad_annotation_skips_only_its_sample(tmp_path):
    from armani.data import importers
    good = importers.Candidate("good", tmp_path / "a.png", ["a dress"])
    bad = importers.Candidate("bad", tmp_path / "b.png", ["a coat"], mask=lambda hw: [][3])  # a malformed polygon
    for c in (good, bad):
        Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(c.image)
    importers.FORMATS["_two"] = lambda src: iter([good, bad])
    try:
        res = import_dataset("_two", tmp_path, tmp_path / "out", tokenizer_vocab=300)
    finally:
        del importers.FORMATS["_two"]
    assert res.imported == 1 and res.skipped[0]["reason"].startswith("bad mask annotation: IndexError")
