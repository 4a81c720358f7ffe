"""Build the paper-size presets (stage 1 and stage 2), count their parameters and time training steps.

    python benchmarks/paper_presets.py                      # CPU: one step, batch 1
    python benchmarks/paper_presets.py --steps 20 --batch 8 --json out.json   # on a GPU (bf16)

For stage 1 a step is the whole VQGAN objective (L1, perceptual through the segmenter,
PatchGAN with the adaptive weight, codebook and commitment terms, the semantic loss
through the segmenter and MaskCLIP) with random weights and random data: this measures
that the paper configuration builds and runs, and what it costs; not quality.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from armani.config import from_dict, load_raw
from armani.losses.vq import FeaturePerceptual, VQGANLossConfig
from armani.models.maskclip import MaskCLIP, MaskCLIPConfig
from armani.models.segmenter import Segmenter, SegmenterConfig
from armani.models.transformer import CrossModalTransformer, TransformerConfig
from armani.models.vqgan import VQGANConfig
from armani.train.stage1 import Frozen, VQGANTask


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.autocast("cuda", torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    raw = load_raw("vqgan", "paper")
    vcfg = from_dict(VQGANConfig, raw["model"])
    lcfg = replace(from_dict(VQGANLossConfig, raw["loss"]), disc_start=0)
    ccfg = from_dict(MaskCLIPConfig, load_raw("maskclip", "paper")["model"])
    scfg = replace(from_dict(SegmenterConfig, load_raw("segmenter", "large")["model"]), image_size=vcfg.image_size)
    vcfg = replace(vcfg, text_dim=ccfg.embed_dim)
    clip = MaskCLIP(ccfg).to(dev).eval().requires_grad_(False)
    seg = Segmenter(scfg).to(dev).eval().requires_grad_(False)
    task = VQGANTask(kind="vqgan", model_config=vcfg, loss_cfg=lcfg,
                     frozen=Frozen(maskclip=clip, segmenter=seg, perceptual=FeaturePerceptual(seg.features)))
    model = task.build_model().to(dev)
    opt = torch.optim.AdamW(model.parameters(), 1e-4, betas=(0.5, 0.9))
    s, b = vcfg.image_size, args.batch
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(b, 3, s, s, generator=g) * 2 - 1,
             "mask": torch.randint(0, 15, (b, s, s), generator=g), "has_mask": torch.ones(b, dtype=torch.bool),
             "text": torch.randint(3, ccfg.vocab_size, (b, ccfg.max_text_len), generator=g),
             "text_len": torch.full((b,), 24)}
    batch = {k: v.to(dev) for k, v in batch.items()}
    times = []
    for i in range(args.steps + (1 if args.steps > 1 else 0)):
        t = time.perf_counter()
        task.step = 10 ** 6
        with amp:
            losses = task.compute_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    timed = times[1:] if len(times) > 1 else times
    out = {
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        "vqgan_params": count(model.vq), "discriminator_params": count(model.disc),
        "maskclip_params": count(clip), "maskclip_text_params": count(clip.text_encoder),
        "segmenter_large_params": count(seg), "image_size": s, "tokens": vcfg.grid ** 2, "codes": vcfg.num_codes,
        "batch": b, "steps_timed": len(timed), "seconds_per_step": sum(timed) / len(timed),
        "loss": losses["loss"].item(), "finite": bool(torch.isfinite(losses["loss"].detach())),
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == "cuda" else None,
    }
    out.update(transformer_step(dev, amp, args.steps, args.batch))
    for k, v in out.items():
        print(f"{k:24s} {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def transformer_step(dev, amp, steps: int, batch: int) -> dict:
    """Stage 2 at the paper's size (16 heads, width 1024, 16 blocks) over the paper's sequence:
    64 caption tokens and 16 x 16 sketch, partial and image tokens (835 positions)."""
    cfg = replace(from_dict(TransformerConfig, load_raw("transformer", "paper")["model"]), text_vocab=2048,
                  text_len=64, sketch_codes=1024, sketch_len=256, image_codes=1024, image_len=256)
    torch.manual_seed(0)
    m = CrossModalTransformer(cfg).to(dev)
    opt = torch.optim.AdamW(m.parameters(), 1e-4)
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, cfg.text_vocab, (batch, cfg.text_len), generator=g).to(dev)
    sketch = torch.randint(0, cfg.sketch_codes, (batch, cfg.sketch_len), generator=g).to(dev)
    image = torch.randint(0, cfg.image_codes, (batch, cfg.image_len), generator=g).to(dev)
    partial = torch.full_like(image, cfg.image_empty)
    times = []
    for _ in range(steps + (1 if steps > 1 else 0)):
        t = time.perf_counter()
        with amp:
            logits = m(text, sketch, partial, image)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), image.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    timed = times[1:] if len(times) > 1 else times
    return {"transformer_params": count(m), "transformer_sequence": cfg.seq_len,
            "transformer_seconds_per_step": sum(timed) / len(timed), "transformer_loss": loss.item(),
            "transformer_peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == "cuda"
            else None}


if __name__ == "__main__":
    main()
