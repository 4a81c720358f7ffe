"""Training data that is partly unreadable: decompression bombs refused from the header,
bad samples skipped and counted up to max_bad_fraction, a dataset that fails its fast check
refused before training."""
import json
import shutil
import struct
import zlib

import pytest
from conftest import write_cfg

from armani.cli import main
from armani.formats.images import (
    MAX_PIXELS,
    BadFile,
    read_image,
    read_image_strict,
    read_label_map,
)

SEG = {"image_size": 48, "channels": [4, 8]}


def _png_header_only(path, w, h):
    """A 60-byte PNG that claims w x h pixels (its data is missing)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_every_reader_refuses_a_bomb_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 12000, 12000)  # under Pillow's own bomb limit, over ours
    assert 12000 * 12000 > MAX_PIXELS
    for reader in (read_image, read_image_strict, read_label_map):
        with pytest.raises(BadFile, match="over the"):
            reader(bomb)


def _damaged_copy(synth_ds, tmp_path, how: str):
    ds = tmp_path / "ds"
    shutil.copytree(synth_ds, ds)
    recs = [json.loads(line) for line in (ds / "index.jsonl").read_text().splitlines()]
    first = next(r for r in recs if r["split"] == "train")
    if how == "garbage":
        (ds / first["image"]).write_bytes(b"not an image at all")
    else:
        (ds / first["image"]).unlink()
    return ds


def test_a_bad_sample_is_skipped_and_counted(synth_ds, tmp_path):
    ds = _damaged_copy(synth_ds, tmp_path, "garbage")
    cfg = json.loads(open(write_cfg(tmp_path / "s.json", SEG, steps=12, batch=16)).read())
    cfg["train"]["max_bad_fraction"] = 0.05
    (tmp_path / "s.json").write_text(json.dumps(cfg))
    assert main(["-q", "train", "segmenter", "--data", str(ds), "--out", str(tmp_path / "run"),
                 "--config", str(tmp_path / "s.json")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 12 and rows[-1]["bad_samples"] == 1


def test_too_many_bad_samples_stop_with_a_message(synth_ds, tmp_path, capsys):
    ds = _damaged_copy(synth_ds, tmp_path, "garbage")
    cfg = write_cfg(tmp_path / "s.json", SEG, steps=12, batch=16)  # default max_bad_fraction 0.001
    assert main(["-q", "train", "segmenter", "--data", str(ds), "--out", str(tmp_path / "run"), "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert "samples unreadable" in err and "max_bad_fraction" in err


def test_training_checks_the_dataset_first(synth_ds, tmp_path, capsys):
    ds = _damaged_copy(synth_ds, tmp_path, "missing")
    cfg = write_cfg(tmp_path / "s.json", SEG, steps=2)
    assert main(["-q", "train", "segmenter", "--data", str(ds), "--out", str(tmp_path / "run"), "--config", cfg]) == 2
    assert "fails `armani data check --fast`" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_after_a_torn_log_line(synth_ds, tmp_path):
    cfg = write_cfg(tmp_path / "s.json", SEG, steps=2)
    run = tmp_path / "run"
    args = ["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(run), "--config", cfg]
    assert main(args) == 0
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.5')  # killed mid-write
    assert main(args + ["--resume", "--max-steps", "3"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
