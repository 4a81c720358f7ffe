"""`armani train ... --report-to`: live dashboards through Accelerate's trackers."""
import importlib.util

import pytest
from conftest import write_cfg

from armani.cli import main

SK = {"image_size": 48, "channels": [4, 8, 8, 8], "z_channels": 8, "num_codes": 16, "code_dim": 4,
      "attention": False}


def test_tensorboard_gets_scalars_and_sample_grids(synth_ds, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = write_cfg(tmp_path / "k.json", SK, steps=4)
    run = tmp_path / "sk"
    assert main(["-q", "train", "sketch-vq", "--data", str(synth_ds), "--out", str(run), "--config", cfg,
                 "--report-to", "tensorboard"]) == 0
    events = list((run / "logs").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/l1", "lr", "items_per_s"} <= scalars
    assert [e.step for e in acc.Scalars("train/loss")][-1] == 4
    images = acc.Tags()["images"]
    assert images and acc.Images(images[0])[-1].width > 0  # the checkpoint's sample grid


def test_missing_dashboard_package_is_one_line(synth_ds, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    cfg = write_cfg(tmp_path / "k.json", SK)
    assert main(["-q", "train", "sketch-vq", "--data", str(synth_ds), "--out", str(tmp_path / "sk"), "--config", cfg,
                 "--report-to", "tensorboard"]) == 2
    assert "pip install -e '.[dashboards]'" in capsys.readouterr().err


def test_wandb_offline(synth_ds, tmp_path, monkeypatch):
    """W&B in offline mode, as on a machine without a network (skipped where wandb is not installed)."""
    pytest.importorskip("wandb")
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(k, v)
    cfg = write_cfg(tmp_path / "k.json", SK, steps=4)
    assert main(["-q", "train", "sketch-vq", "--data", str(synth_ds), "--out", str(tmp_path / "sk"), "--config", cfg,
                 "--report-to", "wandb"]) == 0
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert list((runs[0] / "files" / "media" / "images").glob("samples_*.png"))
