"""Cached against uncached sampling of the stage-2 Transformer, side by side in one run.

    python benchmarks/sampling.py [--batch 4] [--json out.json]

For each configuration the same model (random weights, fixed seed) samples the same batch
twice: with the key-value cache (the condition prefix encoded once, then one token per
step) and by recomputing the whole context at every step (how taming-transformers'
`sample` works). It prints tokens per second for each and their ratio, and checks that
both produce the same tokens under greedy decoding. Configurations: the CPU preset's
sequence (64 caption + 64 sketch + 64 partial + 64 image tokens) and one with a 16 x 16
image grid (256 image tokens, as the paper's 256 px / 16), same width and depth. With
guidance it also times the cached sampler with the unconditional rows' all-EMPTY prefix
encoded once per batch (the default) against once per row, and checks they draw the same
tokens from the same seed.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from armani.config import from_dict, load_raw
from armani.inference.sampling import SamplingConfig, sample_tokens
from armani.models.transformer import CrossModalTransformer, TransformerConfig


def run(cfg: TransformerConfig, batch: int, sampling: SamplingConfig) -> dict:
    torch.manual_seed(0)
    m = CrossModalTransformer(cfg).eval()
    g = torch.Generator().manual_seed(1)
    text = torch.randint(0, cfg.text_vocab, (batch, cfg.text_len), generator=g)
    sketch = torch.randint(0, cfg.sketch_codes, (batch, cfg.sketch_len), generator=g)
    partial = torch.full((batch, cfg.image_len), cfg.image_empty)
    out, times = {}, {}
    for name, cache in (("cached", True), ("uncached", False)):
        sample_tokens(m, text[:1], sketch[:1], partial[:1], replace(sampling, temperature=0), use_cache=cache)
        t0 = time.perf_counter()
        out[name] = sample_tokens(m, text, sketch, partial, sampling, torch.Generator().manual_seed(2),
                                  use_cache=cache)
        times[name] = time.perf_counter() - t0
    if sampling.guidance != 1.0:  # the all-EMPTY prefix encoded once per batch, or per row
        for name, share in (("per_row_prefix", False), ("shared_prefix", True)):
            t0 = time.perf_counter()
            out[name] = sample_tokens(m, text, sketch, partial, sampling, torch.Generator().manual_seed(2),
                                      share_uncond=share)
            times[name] = time.perf_counter() - t0
    greedy = SamplingConfig(temperature=0, guidance=sampling.guidance)
    same = torch.equal(sample_tokens(m, text, sketch, partial, greedy, use_cache=True),
                       sample_tokens(m, text, sketch, partial, greedy, use_cache=False))
    n = batch * cfg.image_len
    return {"image_tokens": cfg.image_len, "sequence": cfg.seq_len, "batch": batch,
            "params": sum(p.numel() for p in m.parameters()),
            "cached_tokens_per_s": round(n / times["cached"], 1),
            "uncached_tokens_per_s": round(n / times["uncached"], 1),
            "cached_s": round(times["cached"], 3), "uncached_s": round(times["uncached"], 3),
            "speedup": round(times["uncached"] / times["cached"], 2), "greedy_identical": same,
            **({"per_row_prefix_s": round(times["per_row_prefix"], 3),
                "shared_prefix_s": round(times["shared_prefix"], 3),
                "shared_prefix_speedup": round(times["per_row_prefix"] / times["shared_prefix"], 2),
                "shared_prefix_identical": torch.equal(out["per_row_prefix"], out["shared_prefix"])}
               if "shared_prefix" in times else {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: off)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    base = from_dict(TransformerConfig, load_raw("transformer", "cpu")["model"])
    base = replace(base, text_vocab=620, text_len=64, sketch_codes=256, image_codes=512)
    sampling = SamplingConfig(temperature=1.0, top_k=100, guidance=args.guidance)
    rows = {"cpu_preset_64": run(replace(base, sketch_len=64, image_len=64), args.batch, sampling),
            "grid16_256": run(replace(base, sketch_len=256, image_len=256), args.batch, sampling)}
    dev = "cpu, %d threads" % torch.get_num_threads()
    print(f"stage-2 sampling, batch {args.batch}, guidance {args.guidance} ({dev})")
    print(f"{'config':15s} {'img tok':>7s} {'seq':>5s} {'cached tok/s':>13s} {'uncached tok/s':>15s} "
          f"{'speedup':>8s}  greedy identical")
    for name, r in rows.items():
        print(f"{name:15s} {r['image_tokens']:7d} {r['sequence']:5d} {r['cached_tokens_per_s']:13.1f} "
              f"{r['uncached_tokens_per_s']:15.1f} {r['speedup']:7.1f}x  {r['greedy_identical']}")
        if "shared_prefix_s" in r:
            print(f"{'':15s} guidance: all-EMPTY prefix per row {r['per_row_prefix_s']:.3f} s, shared "
                  f"{r['shared_prefix_s']:.3f} s ({r['shared_prefix_speedup']:.2f}x), same tokens: "
                  f"{r['shared_prefix_identical']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": dev, "speedup": rows["grid16_256"]["speedup"], "configs": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
