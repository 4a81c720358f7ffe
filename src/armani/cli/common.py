"""What the command modules share: argument types, common flags, model loading."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def report_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report-to", choices=("none", "tensorboard", "wandb"), default=None,
                   help="live dashboard of losses, lr, throughput and sample grids (default: none; tensorboard "
                   "needs the dashboards extra; wandb offline: WANDB_MODE=offline)")


def sampling_args(p: argparse.ArgumentParser) -> None:
    """--temperature, --top-k, --top-p, --guidance, --keep: over the model's own sampling defaults."""
    p.add_argument("--temperature", type=float, default=None, help="default: the model's (armani.json)")
    p.add_argument("--top-k", type=int, default=None, help="0: no top-k filtering")
    p.add_argument("--top-p", type=float, default=None, help="1: no nucleus filtering")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (1: off)")
    p.add_argument("--keep", choices=("exact", "soft"), default=None,
                   help="partial image: exact (default) keeps the kept cells' own tokens, soft only conditions on "
                   "them (the paper's way)")


def load_sampled(args, device="auto"):
    """The model of args.model with the sampling flags over its defaults."""
    from ..inference.pipeline import GenerationError, load, sampling_config
    g = load(args.model, device)
    g.sampling = sampling_config(g, args.temperature, args.top_k, args.top_p, args.guidance, args.keep)
    try:
        g.sampling.check()
    except ValueError as e:
        raise GenerationError(str(e)) from None
    return g


def write_json(path, obj) -> None:
    if path:
        Path(path).write_text(json.dumps(obj, indent=2) + "\n")
