"""`armani train NAME` for every task of `armani.train.registry`, and `armani tokenize`."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError
from .common import positive, report_arg


def add_tokenize(sub) -> None:
    """`armani tokenize`: encode a dataset once into token ids for stage 2."""
    tk = sub.add_parser("tokenize", help="encode a dataset once into token ids for stage 2")
    tk.add_argument("--model", type=Path, required=True, help="stage-1 (vqgan) run or bundle")
    tk.add_argument("--sketch-vq", "--sketch-model", dest="sketch_vq", type=Path, default=None,
                    help="sketch tokenizer (sketch-vq) run or bundle")
    tk.add_argument("--data", type=Path, required=True)
    tk.add_argument("--out", type=Path, required=True)
    tk.add_argument("--splits", default=None, help="comma-separated; default: every split the dataset has")
    tk.add_argument("--maskclip", type=Path, default=None, help="override the MaskCLIP the model records")
    tk.add_argument("--segmenter", type=Path, default=None, help="override the segmenter the model records")
    tk.add_argument("--device", default="auto", help="auto (default: CUDA when there is a GPU), cpu or cuda")
    tk.set_defaults(func=cmd_tokenize)


def add_train(sub) -> None:
    """`armani train NAME` for every task in the registry, with the flags it declares."""
    from ..train.registry import TASKS
    tr = sub.add_parser("train", help="train a model")
    trs = tr.add_subparsers(dest="train_cmd", required=True, metavar="MODEL")
    parent_help = {"maskclip": "trained MaskCLIP (fusion, eq. 9, and the semantic loss)",
                   "segmenter": "trained segmenter (masks for samples without one; for stage 1 also the semantic "
                                "loss and perceptual features)"}
    for name, spec in TASKS.items():
        x = trs.add_parser(name, help=spec.help)
        if spec.reads == "tokens":
            x.add_argument("--tokens", type=Path, required=True, help="token folder made by `armani tokenize`")
        else:
            x.add_argument("--data", type=Path, required=True)
        x.add_argument("--out", type=Path, required=True, help="run folder")
        x.add_argument("--config", default=None, help="preset name (cpu, ...) or JSON file; default: cpu")
        x.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        x.add_argument("--max-steps", type=positive, default=None)
        x.add_argument("--max-minutes", type=float, default=None)
        x.add_argument("--batch-size", type=positive, default=None)
        x.add_argument("--workers", type=int, default=None, help="data loader processes")
        x.add_argument("--seed", type=int, default=None)
        x.add_argument("--compile", choices=("auto", "on", "off"), default=None,
                       help="torch.compile the model (default auto: on a GPU for the Transformer and the VQGAN)")
        report_arg(x)
        for parent in spec.parents:
            x.add_argument(f"--{parent}", type=Path, default=None, help=parent_help[parent])
        for f in spec.flags:
            dest = f.flag.lstrip("-").replace("-", "_")
            if f.const is not None:
                x.add_argument(f.flag, dest=dest, action="store_const", const=f.const, default=None, help=f.help)
            else:
                x.add_argument(f.flag, dest=dest, choices=f.choices, default=None, help=f.help)
        x.set_defaults(func=cmd_train, model=name)


def cmd_train(args) -> int:
    from ..train.loop import Trainer, check_run_folder
    from ..train.registry import TASKS, make_task
    spec = TASKS[args.model]
    check_run_folder(args.out, spec.kind or args.model, {}, args.resume)  # before the data is read
    overrides = {"max_steps": args.max_steps, "max_minutes": args.max_minutes, "batch_size": args.batch_size,
                 "workers": args.workers, "seed": args.seed, "report_to": args.report_to, "compile": args.compile}
    config = args.config
    flags = {f: getattr(args, f.flag.lstrip("-").replace("-", "_")) for f in spec.flags}
    if any(v is not None for v in flags.values()):
        config = {"preset": config or "cpu"}
        for f, v in flags.items():
            if v is not None:
                config.setdefault(f.section, {})[f.key] = v
    source = args.tokens if spec.reads == "tokens" else args.data
    parents = {k: getattr(args, k) for k in spec.parents}
    task, tcfg = make_task(args.model, source, config, **parents, **overrides)
    if spec.reads == "data":
        _precheck(args.data, tcfg.max_bad_fraction)
        _size_note(args.data, task.model_config)
    trainer = Trainer(task, tcfg, args.out, resume=args.resume, quiet=args.quiet,
                      extra_config={spec.reads: str(source)})
    res = trainer.fit()
    if trainer.acc.is_main_process:
        loss = f"{res.last_loss:.4f}" if res.last_loss is not None else "n/a"
        print(f"trained {args.model} for {res.steps} steps in {res.seconds:.0f} s (stopped by {res.stopped_by}), "
              f"last loss {loss}; model: {res.model_dir}")
    _end_distributed()
    return 0


def _size_note(data: Path, model_cfg) -> None:
    """One line on stderr when the data's images are not the size the model trains at (or
    vary): every image is letterboxed (scaled, and padded to a square) to `image_size`."""
    from ..formats.dataset import read_meta
    size = getattr(model_cfg, "image_size", None)
    have = read_meta(data).get("image_size")
    if not size or have == [size, size]:
        return
    what = f"are {have[0]} x {have[1]} px" if isinstance(have, list) and len(have) == 2 else "vary in size"
    print(f"note: the images of {data} {what}; this model trains at {size} px, so each is letterboxed to "
          f"{size} x {size} (set model.image_size in a --config file to train at another size)", file=sys.stderr)


def _precheck(data: Path, max_bad_fraction: float) -> None:
    """`armani data check --fast` before training: records well-formed, files present. A few
    problems (up to max_bad_fraction of the samples) are warned about and skipped in training;
    more stop the command before it starts."""
    from ..data.check import check_dataset
    rep = check_dataset(data, decode=False)
    if rep.ok:
        return
    shown = "; ".join(rep.errors[:3]) + (f" (and {len(rep.errors) - 3} more)" if len(rep.errors) > 3 else "")
    if rep.samples and len(rep.errors) <= max_bad_fraction * rep.samples:
        print(f"armani: warning: {data}: {len(rep.errors)} bad sample(s), skipped in training: {shown}",
              file=sys.stderr)
        return
    raise UserError(f"{data} fails `armani data check --fast`: {shown}")


def _end_distributed() -> None:
    """Gloo workers sometimes abort at interpreter exit after a clean run: end them here."""
    import os

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def cmd_tokenize(args) -> int:
    from ..progress import bar
    from ..recipes.tokens import tokenize_dataset
    splits = [s for s in args.splits.split(",") if s] if args.splits else None
    with bar(None, "tokenize", "img", args.quiet) as pb:
        info = tokenize_dataset(args.model, args.data, args.out, args.sketch_vq, splits,
                                maskclip=args.maskclip, segmenter=args.segmenter, progress=pb.update,
                                device=args.device)
    sizes = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    print(f"wrote {args.out}: {sizes} samples; {info['image_grid'] ** 2} image tokens"
          + (f", {info['sketch_grid'] ** 2} sketch tokens" if info["sketch_grid"] else "") + " each")
    return 0
