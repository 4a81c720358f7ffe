from __future__ import annotations

import json
import shutil

from PIL import Image

from armani.cli import main
from armani.formats.dataset import Index
from armani.formats.images import read_mask


def _cfg(path, model: dict, steps: int = 3, batch: int = 8):
    path.write_text(json.dumps({"model": model, "train": {"max_steps": steps, "batch_size": batch,
                                                         "warmup_steps": 1, "checkpoint_every": 2,
                                                         "log_every": 1}}))
    return str(path)


def test_segmenter_train_eval_and_fill_masks(synth_ds, tmp_path, capsys):
    cfg = _cfg(tmp_path / "s.json", {"image_size": 32, "channels": [4, 8]})
    run = tmp_path / "seg"
    assert main(["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(run), "--config", cfg]) == 0
    assert (run / "model" / "config.json").is_file()
    # The 48 px data at a 32 px model: said in one line, not silently.
    assert "images of" in (err := capsys.readouterr().err) and "are 48 x 48 px; this model trains at 32 px" in err
    assert main(["-q", "eval", "segmenter", "--model", str(run), "--data", str(synth_ds),
                 "--json", str(tmp_path / "seg.json")]) == 0
    rep = json.loads((tmp_path / "seg.json").read_text())
    assert 0 <= rep["miou"] <= 1 and set(rep["iou_per_label"]) >= {"button", "zipper", "pocket", "logo"}
    # A dataset without masks gets predicted ones, at the image's own size.
    ds = tmp_path / "nomask"
    shutil.copytree(synth_ds, ds)
    lines = [json.loads(x) for x in (ds / "index.jsonl").read_text().splitlines()]
    for r in lines[:5]:
        r["mask"] = None
    (ds / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["-q", "data", "masks", str(ds), "--model", str(run)]) == 0
    recs = list(Index(ds))
    assert all(r["mask"] for r in recs) and recs[0]["mask_source"].startswith("segmenter:")
    assert read_mask(ds / recs[0]["mask"]).shape == (48, 48)
    assert recs[5]["mask"] == lines[5]["mask"]  # existing masks untouched
    assert main(["-q", "data", "check", str(ds)]) == 0


def test_maskclip_train_eval_align(synth_ds, tmp_path, capsys):
    model = {"image_size": 48, "patch": 8, "mask_width": 32, "mask_layers": 1, "mask_heads": 2,
             "max_text_len": 48, "text_width": 32, "text_layers": 1, "text_heads": 2, "embed_dim": 16}
    cfg = _cfg(tmp_path / "m.json", model, steps=3, batch=16)
    for flag, name in (([], "tok"), (["--global"], "glob")):
        assert main(["-q", "train", "maskclip", "--data", str(synth_ds), "--out", str(tmp_path / name),
                     "--config", cfg] + flag) == 0
    bundle = json.loads((tmp_path / "tok" / "model" / "config.json").read_text())
    assert bundle["kind"] == "maskclip" and bundle["config"]["loss"] == "tokenwise"
    assert (tmp_path / "tok" / "model" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "glob" / "model" / "config.json").read_text())["config"]["loss"] == "global"
    capsys.readouterr()
    assert main(["-q", "eval", "alignment", "--model", str(tmp_path / "tok"), "--baseline", str(tmp_path / "glob"),
                 "--data", str(synth_ds), "--split", "train", "--max-samples", "40",
                 "--json", str(tmp_path / "al.json")]) == 0
    rep = json.loads((tmp_path / "al.json").read_text())
    for key in ("pointing_accuracy", "pointing_chance", "pointing_per_part", "recall_at_1", "recall_at_5"):
        assert key in rep
    assert 0 < rep["pointing_chance"] < 1 and rep["retrieval_pool"] == 40
    assert sum(rep["pointing_words"].values()) > 20 and "baseline" in rep
    assert "pointing_accuracy" in capsys.readouterr().out
    rec = next(iter(Index(synth_ds, "train")))
    out = tmp_path / "fig.png"
    assert main(["-q", "align", "--model", str(tmp_path / "tok"), "--image", str(synth_ds / rec["image"]),
                 "--mask", str(synth_ds / rec["mask"]), "--text", rec["captions"][0], "--out", str(out)]) == 0
    assert Image.open(out).size[1] > 160
    assert main(["-q", "align", "--model", str(tmp_path / "tok"), "--image", str(synth_ds / rec["image"]),
                 "--mask", str(synth_ds / rec["mask"]), "--text", " ", "--out", str(out)]) == 2


def test_train_errors_are_clear(synth_ds, tmp_path, capsys):
    assert main(["-q", "train", "segmenter", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a dataset" in capsys.readouterr().err
    assert main(["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(tmp_path / "r"),
                 "--config", "nonexistent-preset"]) == 2
    assert "presets: cpu, large" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"widths": [1]}}))
    assert main(["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(tmp_path / "r"),
                 "--config", str(bad)]) == 2
    assert "unknown SegmenterConfig keys: widths" in capsys.readouterr().err
    assert main(["-q", "eval", "segmenter", "--model", str(tmp_path / "none"), "--data", str(synth_ds)]) == 2


def test_cpu_preset_text_sides(synth_ds):
    from armani.train.registry import make_task
    tokenwise, _ = make_task("maskclip", synth_ds)
    pooled, _ = make_task("maskclip", synth_ds, {"model": {"loss": "global"}})
    assert tokenwise.model_config.text_layers == 0 and tokenwise.model_config.loss == "tokenwise"
    assert pooled.model_config.text_layers == 2 and pooled.model_config.loss == "global"
