"""The quickstart's CPU profile: stage configs that fit together, and bf16 only where it pays."""
from __future__ import annotations

import pytest
import torch

from armani.config import stage_configs
from armani.models.maskclip import MaskCLIPConfig
from armani.models.transformer import TransformerConfig
from armani.models.vqgan import VQGANConfig
from armani.recipes import profiles
from armani.recipes.profiles import PROFILES, stage_overrides, write_stage_config

STAGES = ("segmenter", "maskclip", "vqgan", "sketch-vq", "transformer")


def test_default_profile_is_consistent(tmp_path, monkeypatch):
    """64 px, MaskCLIP's patch grid = the VQGAN's latent grid, 8 x 8 image and sketch tokens,
    a 48-token text block, the sketch through the aligned inputs only: stage 2's sequence is
    177 positions, and the model builds."""
    monkeypatch.setattr(profiles, "cpu_has_amx", lambda: False)
    conf = {k: write_stage_config(tmp_path, k, k, stage_overrides("default", k), 64) for k in STAGES}
    clip = stage_configs("maskclip", conf["maskclip"], MaskCLIPConfig)[0]
    vq = stage_configs("vqgan", conf["vqgan"], VQGANConfig)[0]
    sk = stage_configs("sketch-vq", conf["sketch-vq"], VQGANConfig)[0]
    assert clip.patch == vq.factor == 8 and vq.grid == 8 and sk.grid == 8
    tf = stage_configs("transformer", conf["transformer"], TransformerConfig)[0]
    full = TransformerConfig(**{**tf.__dict__, "text_len": clip.max_text_len, "image_len": vq.grid ** 2,
                                "sketch_len": sk.grid ** 2})
    assert tf.aligned and not tf.sketch_in_sequence
    assert clip.max_text_len == 48 and full.seq_len == 177
    from armani.models.transformer import CrossModalTransformer
    assert CrossModalTransformer(full).sketch_cell.max() == sk.grid ** 2 - 1


@pytest.mark.parametrize("cuda,amx,want", [(False, True, "bf16"), (False, False, "auto"), (True, True, "auto")])
def test_stage_one_in_bf16_only_on_a_cpu_with_amx(monkeypatch, cuda, amx, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(profiles, "cpu_has_amx", lambda: amx)
    got = {k: stage_overrides("default", k).get("train", {}).get("mixed_precision", "auto") for k in STAGES}
    assert got == {**dict.fromkeys(STAGES, "auto"), "vqgan": want}
    assert "mixed_precision" not in PROFILES["default"]["vqgan"]["train"]  # the table itself is untouched
    assert stage_overrides("gpu", "vqgan") == PROFILES["gpu"]["vqgan"]


def test_cpu_has_amx_answers_without_raising(monkeypatch):
    assert isinstance(profiles.cpu_has_amx(), bool)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert profiles.cpu_has_amx() is False
