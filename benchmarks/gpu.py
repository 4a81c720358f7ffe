"""Stage 2 at the paper's size on one GPU: training throughput and MFU (eager and compiled),
cached sampling throughput, peak memory. Everything measured side by side in one run.

    python benchmarks/gpu.py [--json out.json]        # on a CUDA machine (bf16)
    python benchmarks/gpu.py --small [--json out.json] # the same code paths on the CPU, in seconds

Paper size: 16 blocks, width 1024, 16 heads; 64 caption + 256 sketch + 256 partial + 256
image tokens (834 positions with the separators), 1,024 image codes; random weights.

- Training: a full optimizer step (teacher-forced cross entropy, AdamW; fused on CUDA) on
  a batch of 32, eager and `torch.compile`d. MFU counts 6 x parameters x tokens plus the
  attention matmuls (12 x layers x width x positions^2 per sample), over the GPU's bf16
  dense peak (`--peak-tflops`, 989 for an H100 SXM).
- Sampling: `sample_tokens` with the key-value cache, top-k 100, batches of 16, 64 and 256
  (`--small`: 2 and 4), unguided and with guidance 3; each decoded eagerly through the
  growing cache ("cache") and with the static step captured in a CUDA graph ("graph";
  `--small`: the static step uncaptured).

The figures go to the results page with the card that made them; nothing here asserts a
speed.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from armani.config import from_dict, load_raw
from armani.inference.sampling import SamplingConfig, sample_tokens
from armani.models.transformer import CrossModalTransformer, TransformerConfig


def paper_config(small: bool) -> TransformerConfig:
    cfg = from_dict(TransformerConfig, load_raw("transformer", "paper")["model"])
    cfg = replace(cfg, text_vocab=2048, text_len=64, sketch_codes=1024, sketch_len=256, image_codes=1024,
                  image_len=256, dropout=0.0)
    if small:  # the same code paths, sized for seconds on a CPU
        cfg = replace(cfg, width=64, layers=2, heads=4, sketch_len=16, image_len=16, image_codes=64,
                      sketch_codes=64, text_len=16)
    return cfg


def batch_of(cfg: TransformerConfig, b: int, device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, cfg.text_vocab, (b, cfg.text_len), generator=g)
    sketch = torch.randint(0, cfg.sketch_codes, (b, cfg.sketch_len), generator=g)
    partial = torch.full((b, cfg.image_len), cfg.image_empty)
    image = torch.randint(0, cfg.image_codes, (b, cfg.image_len), generator=g)
    return tuple(t.to(device) for t in (text, sketch, partial, image))


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step_rate(cfg, device, batch: int, steps: int, compiled: bool, dtype) -> dict:
    torch.manual_seed(0)
    model = CrossModalTransformer(cfg).to(device).train()
    model.check_ids = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if device.type == "cuda" else {}))
    run = torch.compile(model) if compiled else model
    data = batch_of(cfg, batch, device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = run(*data)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), data[3].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()  # the first step compiles
    sync(device)
    first = time.perf_counter() - t0
    step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    params = sum(p.numel() for p in model.parameters())
    pos = cfg.seq_len
    flops = batch * (6 * params * pos + 12 * cfg.layers * cfg.width * pos * pos)
    out = {"samples_per_s": round(batch / dt, 1), "step_s": round(dt, 4), "first_step_s": round(first, 2),
           "tflops_per_s": round(flops / dt / 1e12, 2), "params": params, "positions": pos}
    if device.type == "cuda":
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return out


def sampling_rate(cfg, device, batch: int, guidance: float, dtype, decode: str) -> dict:
    torch.manual_seed(0)
    model = CrossModalTransformer(cfg).to(device).eval()
    text, sketch, partial, _ = batch_of(cfg, batch, device)
    sc = SamplingConfig(top_k=min(100, cfg.image_codes), guidance=guidance)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        sample_tokens(model, text[:2], sketch[:2], partial[:2], sc, gen, decode=decode)  # warm-up
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        sample_tokens(model, text, sketch, partial, sc, gen, decode=decode)
        sync(device)
    dt = time.perf_counter() - t0
    out = {"batch": batch, "guidance": guidance, "decode": decode, "seconds": round(dt, 3), "images_per_s": round(batch / dt, 2),
           "tokens_per_s": round(batch * cfg.image_len / dt, 1)}
    if device.type == "cuda":
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="a tiny model on the CPU: the code paths in seconds")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 10, --small 2)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the GPU (H100 SXM: 989)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled training run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device("cpu" if args.small or not torch.cuda.is_available() else "cuda")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = paper_config(args.small or device.type == "cpu")
    steps = args.steps or (2 if device.type == "cpu" else 10)
    batch = 4 if device.type == "cpu" else 32
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "small": device.type == "cpu", "dtype": str(dtype).split(".")[-1],
              "config": {"width": cfg.width, "layers": cfg.layers, "heads": cfg.heads, "positions": cfg.seq_len,
                         "image_codes": cfg.image_codes}, "train": {}, "sampling": []}
    for name, compiled in (("eager", False), ("compiled", True)):
        if compiled and args.no_compile:
            continue
        r = train_step_rate(cfg, device, batch, steps, compiled, dtype)
        if device.type == "cuda":
            r["mfu"] = round(r["tflops_per_s"] / args.peak_tflops, 3)
        report["train"][name] = r
        print(f"train {name:8s} batch {batch}: {r['samples_per_s']:8.1f} samples/s, {r['tflops_per_s']:7.2f} "
              f"TFLOP/s" + (f", MFU {r['mfu']:.1%}" if "mfu" in r else "") + f" (first step {r['first_step_s']} s)")
    # Eager decoding through the growing cache beside the captured (CUDA graph) static step;
    # on the CPU the static step runs uncaptured.
    modes = ("cache", "static") if device.type == "cpu" else ("cache", "graph")
    for b in ((2, 4) if device.type == "cpu" else (16, 64, 256)):
        for guidance in (1.0, 3.0):
            for decode in modes:
                r = sampling_rate(cfg, device, b, guidance, dtype, decode)
                report["sampling"].append(r)
                print(f"sample batch {b:3d} guidance {guidance:g} {decode:6s}: {r['images_per_s']:8.2f} images/s "
                      f"({r['tokens_per_s']:.0f} tokens/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
