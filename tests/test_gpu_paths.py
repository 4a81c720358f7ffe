"""The GPU code paths, run where CI runs: on the CPU."""
import json
import os
import subprocess
import sys

from conftest import REPO


def test_gpu_benchmark_runs_its_code_paths_on_the_cpu(tmp_path):
    """benchmarks/gpu.py --small: the training and sampling measurements the GPU run makes,
    on a tiny model, writing the JSON the results page takes its figures from."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--small", "--no-compile",
                        "--json", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["small"] and rep["train"]["eager"]["samples_per_s"] > 0
    assert [(s["batch"], s["guidance"], s["decode"]) for s in rep["sampling"]] == [
        (b, g, d) for b in (2, 4) for g in (1.0, 3.0) for d in ("cache", "static")]
    assert all(s["images_per_s"] > 0 for s in rep["sampling"])


def test_gpu_quickstart_profile_is_consistent(tmp_path, monkeypatch):
    """The `gpu` profile (picked by `--profile auto` when there is a CUDA device) writes
    stage configs that fit together: 128 px, MaskCLIP's patch grid = the VQGAN's latent grid
    (eq. 9), 16 x 16 image and sketch tokens, so stage 2 sees the paper's 834 positions; and
    every model builds from them."""
    import torch

    from armani.config import stage_configs
    from armani.models.maskclip import MaskCLIP, MaskCLIPConfig
    from armani.models.segmenter import Segmenter, SegmenterConfig
    from armani.models.transformer import TransformerConfig
    from armani.models.vqgan import VQGANConfig, VQModel
    from armani.recipes.profiles import PROFILES, resolve_profile, write_stage_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile("auto") == "gpu" and resolve_profile("default") == "default"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto") == "default"

    prof = PROFILES["gpu"]
    size = prof["settings"]["size"]
    conf = {k: write_stage_config(tmp_path, k, k, prof[k], size)
            for k in ("segmenter", "maskclip", "vqgan", "sketch-vq", "transformer")}
    seg = stage_configs("segmenter", conf["segmenter"], SegmenterConfig)[0]
    clip = stage_configs("maskclip", conf["maskclip"], MaskCLIPConfig)[0]
    vq = stage_configs("vqgan", conf["vqgan"], VQGANConfig)[0]
    sk = stage_configs("sketch-vq", conf["sketch-vq"], VQGANConfig)[0]
    assert seg.image_size == clip.image_size == vq.image_size == sk.image_size == 128
    assert clip.patch == vq.factor and vq.grid == sk.grid == 16
    tf = stage_configs("transformer", conf["transformer"], TransformerConfig)[0]
    assert TransformerConfig(**{**tf.__dict__, "text_len": 64, "image_len": vq.grid ** 2,
                                "sketch_len": sk.grid ** 2}).seq_len == 834
    for model in (Segmenter(seg), MaskCLIP(clip), VQModel(vq)):
        assert sum(p.numel() for p in model.parameters()) > 0
    # Every stage has a cap, and the caps together bound a run on a slow GPU.
    assert sum(prof[k]["train"]["max_minutes"] for k in conf) <= 17
