"""The quickstart's stage budgets (profiles) and the per-stage config files recipes write.

A profile holds, per training stage, overrides of that stage's CPU preset
(`{"model": ..., "loss": ..., "train": ...}`), the sampling settings written into the
exported model, and optionally `settings`: the dataset size and image size it is meant
for (`n`, `size`), which the quickstart uses unless `--n`/`--size` say otherwise.

`armani quickstart` picks `gpu` when PyTorch sees a CUDA device and `default` (the 2-core
CPU budget) otherwise; `--profile` overrides.
"""
from __future__ import annotations

import json
from pathlib import Path

PROFILES: dict[str, dict[str, dict]] = {
    "default": {  # steps-bound: the caps are safety nets, 2.5-7x each stage's time on 2 cores
        # The segmenter's features are stage 1's perceptual term, and 300 steps (mIoU 0.51
        # against 0.29 at 100) make it one that keeps collars, plackets and hoods.
        "segmenter": {"train": {"max_steps": 300, "max_minutes": 5, "checkpoint_every": 100}},
        # Captions of SynthFashion need at most 42 tokens: 48 positions instead of 64 shorten
        # stage 2's sequence (it takes its text block from MaskCLIP's caption length).
        "maskclip": {"model": {"max_text_len": 48},
                     "train": {"max_steps": 150, "batch_size": 32, "max_minutes": 3, "checkpoint_every": 50}},
        # Stage 1 decides the colours and the category (docs/results.md): 1,200 steps, with
        # the segmenter's perceptual term at 0.2 (it costs about 40% more a step; without it
        # the reconstructions lose the small parts that tell a shirt from a T-shirt, and the
        # judge reads 73% of their categories against 87% with it), in bf16 where the CPU has
        # AMX (`CPU_BF16`, about a seventh off a step here).
        "vqgan": {"loss": {"disc_weight": 0.0, "semantic_every": 8, "perceptual": "segmenter",
                           "perceptual_weight": 0.2},
                  "train": {"max_steps": 1200, "max_minutes": 15, "checkpoint_every": 100}},
        # 8 x 8 sketch tokens, 400 steps: at 4 x 4 and 100 steps the tokenizer drew one blob
        # for every sketch (PSNR 5.4 dB, 7% of its codes), and no sketch could shape a sample.
        "sketch-vq": {"train": {"max_steps": 400, "max_minutes": 4, "checkpoint_every": 100}},
        # The sketch reaches stage 2 through its aligned inputs only (each image token's input
        # gets the sketch token over its cell, and the partial token at it): sketch-only
        # samples follow the outline (docs/results.md, "Does each mode follow its condition?")
        # and the sequence is 177 positions (194 with a 4 x 4 sketch in it, 242 with an
        # 8 x 8 one); 1,000 steps bring the sampled categories near what stage 1 keeps, and a
        # sketch in 70% of the training sequences (the preset's 40% left sketch-only samples
        # 0.05 above text-only in silhouette IoU, 0.09 with 70%; docs/results.md). Eq. 14 on
        # every 16th step (such a step costs about 2.7 plain ones): 1,100 steps with it on
        # every 8th cost about 55 s more (from 96-step timings) and did no better on 96 garments.
        "transformer": {"model": {"width": 128, "layers": 4, "heads": 4, "aligned": True,
                                  "sketch_in_sequence": False},
                        "loss": {"semantic_every": 16, "p_sketch": 0.7},
                        "train": {"max_steps": 1000, "lr": 0.002, "warmup_steps": 30, "max_minutes": 15,
                                  "checkpoint_every": 100}},
        # Written into the exported model's armani.json: a Transformer this small spreads its
        # probability widely, and sampled tokens of neighbouring colours blend into a third
        # colour; temperature 0.5 keeps a garment's tokens to one colour (docs/results.md).
        "sampling": {"temperature": 0.5},
    },
    # One CUDA GPU: 128 px and 16 x 16 image tokens (the paper's 834-position stage-2
    # sequence), wider models and 2-6x the steps. Sized from FLOP counts to about 8 minutes
    # on one H100, under the 10 the budget allows; not yet timed on a GPU (docs/results.md).
    # Data loading at 128 px would starve the GPU from the main process: 6 loader workers.
    "gpu": {
        "settings": {"n": 8000, "size": 128},
        "segmenter": {"model": {"channels": [16, 32, 64, 128, 256]},
                      "train": {"max_steps": 600, "batch_size": 64, "max_minutes": 3, "checkpoint_every": 200,
                                "workers": 6}},
        "maskclip": {"model": {"patch": 8, "mask_width": 256, "mask_layers": 3, "mask_heads": 8,
                               "text_width": 256, "text_heads": 8, "embed_dim": 128},
                     "train": {"max_steps": 600, "batch_size": 128, "max_minutes": 3, "checkpoint_every": 200,
                               "workers": 6}},
        "vqgan": {"model": {"channels": [64, 128, 256, 256], "blocks": 1, "z_channels": 128, "num_codes": 1024,
                            "code_dim": 32},
                  "loss": {"disc_weight": 0.0, "semantic_every": 8},
                  "train": {"max_steps": 2500, "batch_size": 32, "max_minutes": 5, "checkpoint_every": 500,
                            "workers": 6}},
        "sketch-vq": {"model": {"channels": [32, 64, 128, 128], "z_channels": 64, "num_codes": 512},
                      "train": {"max_steps": 1000, "batch_size": 64, "max_minutes": 2, "checkpoint_every": 250,
                                "workers": 6}},
        # Aligned conditions as in `default` (not yet measured on a GPU); the sketch stays in the sequence.
        "transformer": {"model": {"width": 512, "layers": 8, "heads": 8, "aligned": True},
                        "train": {"max_steps": 2000, "batch_size": 64, "lr": 0.001, "warmup_steps": 150,
                                  "max_minutes": 4, "checkpoint_every": 500, "workers": 2}},
        "sampling": {"temperature": 0.7},
    },
    "tiny": {
        "segmenter": {"model": {"channels": [4, 8]}, "train": {"max_steps": 2, "batch_size": 8, "log_every": 1}},
        "maskclip": {"model": {"mask_width": 16, "mask_layers": 1, "mask_heads": 2, "text_width": 16,
                               "text_heads": 2, "embed_dim": 8},
                     "train": {"max_steps": 2, "batch_size": 8, "log_every": 1}},
        "vqgan": {"model": {"channels": [8, 8, 16, 16], "z_channels": 16, "num_codes": 32, "code_dim": 4},
                  "loss": {"disc_weight": 0.0}, "train": {"max_steps": 2, "batch_size": 8, "log_every": 1}},
        "sketch-vq": {"model": {"channels": [4, 8, 8, 8], "z_channels": 8, "num_codes": 16, "code_dim": 4},
                      "train": {"max_steps": 2, "batch_size": 8, "log_every": 1}},
        "transformer": {"model": {"width": 32, "layers": 1, "heads": 2}, "loss": {"semantic_batch": 2},
                        "train": {"max_steps": 2, "batch_size": 8, "log_every": 1}},
    },
}


#: Stages a profile trains in bf16 autocast when the CPU has AMX tile units (bf16 matrix
#: multiplies in hardware), and in fp32 on other CPUs, where bf16 is no faster.
CPU_BF16: dict[str, tuple[str, ...]] = {"default": ("vqgan",)}


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (PyTorch's own check; False where PyTorch lacks it)."""
    import torch
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check else False
    except Exception:  # noqa: BLE001 - a probe only: no AMX is the safe answer
        return False


def stage_overrides(profile: str, kind: str) -> dict:
    """The profile's overrides for stage `kind`, with bf16 autocast added when the profile
    asks for it on this machine (CPU_BF16: no CUDA device, a CPU with AMX)."""
    over = merge(PROFILES[profile].get(kind))
    if kind in CPU_BF16.get(profile, ()):
        import torch
        if not torch.cuda.is_available() and cpu_has_amx():
            over.setdefault("train", {})["mixed_precision"] = "bf16"
    return over


def merge(*layers: dict | None) -> dict:
    """Config sections laid over each other, later ones winning key by key (inputs untouched)."""
    out: dict = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            out.setdefault(section, {}).update(json.loads(json.dumps(values)))
    return out


def write_stage_config(out: Path, name: str, kind: str, over: dict, size: int) -> str:
    """`out/configs/<name>.json`: the CPU preset of `kind` with the overrides `over` (a dict of
    sections, not modified) and the image size; returns its path."""
    over = merge(over)
    if kind != "transformer":  # stage 2's sizes follow the token folder
        over.setdefault("model", {})["image_size"] = size
    over.setdefault("train", {}).setdefault("log_every", 10)
    path = Path(out) / "configs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"preset": "cpu", **over}, indent=2) + "\n")
    return str(path)


def resolve_profile(name: str) -> str:
    """`auto` -> `gpu` when PyTorch sees a CUDA device, else `default`; other names as given."""
    if name != "auto":
        return name
    import torch
    return "gpu" if torch.cuda.is_available() else "default"
