from __future__ import annotations

import json
from pathlib import Path

import pytest

from armani.data.make_synth import write_synth

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def synth_ds(tmp_path_factory) -> Path:
    """A small SynthFashion set shared by the read-only tests."""
    return write_synth(tmp_path_factory.mktemp("synth") / "ds", n=240, size=48, seed=3, workers=1,
                       tokenizer_vocab=512)


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES


def write_cfg(path, model, loss=None, steps=2, batch=8):
    path.write_text(json.dumps({"model": model, "loss": loss or {},
                                "train": {"max_steps": steps, "batch_size": batch, "warmup_steps": 1,
                                          "checkpoint_every": 1, "log_every": 1}}))
    return str(path)


@pytest.fixture(scope="session")
def tiny_parents(synth_ds, tmp_path_factory):
    """A 2-step segmenter and MaskCLIP at 48 px with an 8-pixel grid (the VQGAN's factor)."""
    from armani.cli import main
    root = tmp_path_factory.mktemp("parents")
    seg = write_cfg(root / "s.json", {"image_size": 48, "channels": [4, 8]})
    clip = write_cfg(root / "m.json", {"image_size": 48, "patch": 8, "mask_width": 16, "mask_layers": 1,
                                        "mask_heads": 2, "max_text_len": 48, "text_width": 16, "text_layers": 0,
                                        "text_heads": 2, "embed_dim": 8})
    assert main(["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(root / "seg"), "--config", seg]) == 0
    assert main(["-q", "train", "maskclip", "--data", str(synth_ds), "--out", str(root / "clip"),
                 "--config", clip]) == 0
    return root


