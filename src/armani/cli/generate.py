"""`armani generate`, `export`, `demo` and `align`: using trained models."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from ..errors import UserError
from .common import load_sampled, positive, sampling_args


def add_commands(sub) -> None:
    """`armani generate`, `export`, `demo` and `align`."""
    g = sub.add_parser("generate", help="garments from a prompt, a sketch and/or a partial image")
    g.add_argument("--model", type=Path, default=None,
                   help="pipeline folder or stage-2 run (default: the SynthFashion model shipped in the package)")
    g.add_argument("--text", default=None, help="the prompt")
    gs = g.add_mutually_exclusive_group()
    gs.add_argument("--sketch", type=Path, default=None, help="an edge map / line drawing PNG")
    gs.add_argument("--sketch-from", type=Path, default=None, help="a photo whose Canny edges are the sketch")
    g.add_argument("--partial", type=Path, default=None, help="an image of which a region is kept")
    gk = g.add_mutually_exclusive_group()
    gk.add_argument("--keep-box", default=None, help="x0,y0,x1,y1 in the partial image's pixels")
    gk.add_argument("--keep-mask", type=Path, default=None, help="PNG the size of the partial image, white = keep")
    g.add_argument("--n", type=positive, default=8, help="images to generate (default 8; any number, drawn batch by "
                   "batch)")
    g.add_argument("--batch-size", type=positive, default=16, help="images sampled at once (default 16); the same "
                   "seed and batch size give the same images")
    g.add_argument("--device", default="auto", help="auto (default: CUDA when there is a GPU), cpu or cuda; bf16 "
                   "on CUDA")
    g.add_argument("--decode", default="auto", choices=("auto", "cache", "graph"),
                   help="auto (default): each token step replayed from a captured CUDA graph on a GPU, "
                   "run eagerly on the CPU; cache: always eager; graph: always captured (CUDA only)")
    g.add_argument("--seed", type=int, default=None, help="the same seed gives the same images")
    sampling_args(g)
    g.add_argument("--out", type=Path, default=Path("generated"))
    g.set_defaults(func=cmd_generate)

    xp = sub.add_parser("export", help="pack a stage-2 run and the models it needs into one pipeline folder")
    xp.add_argument("--model", type=Path, required=True, help="stage-2 (transformer) run or bundle")
    xp.add_argument("--out", type=Path, required=True)
    xp.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
    xp.add_argument("--note", default=None, help="how the model was made, recorded in armani.json")
    xp.set_defaults(func=cmd_export)

    dm = sub.add_parser("demo", help="a web page to generate from a prompt, a drawn sketch and a partial image "
                        "(needs the demo extra: pip install -e '.[demo]')")
    dm.add_argument("--model", type=Path, default=None, help="pipeline folder, quickstart folder or stage-2 run "
                    "(default: the shipped model)")
    dm.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines (default 127.0.0.1)")
    dm.add_argument("--port", type=int, default=7860)
    dm.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs a network)")
    dm.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    dm.set_defaults(func=cmd_demo)

    al = sub.add_parser("align", help="draw which mask and image patches each word aligns to (Fig. 6)")
    al.add_argument("--model", type=Path, required=True, help="MaskCLIP run or bundle")
    al.add_argument("--image", type=Path, required=True)
    al.add_argument("--mask", type=Path, required=True, help="part mask PNG (armani label ids)")
    al.add_argument("--text", required=True)
    al.add_argument("--out", type=Path, default=Path("align.png"))
    al.set_defaults(func=cmd_align)


SHEET_MAX = 16  # samples shown on sheet.png


def cmd_generate(args) -> int:
    import os

    import numpy as np

    from ..formats.bundle import atomic_dir
    from ..formats.fsutil import check_target
    from ..inference.pipeline import unknown_words_message
    from ..progress import bar
    from ..report.sheet import Row, render, save_png
    box = None
    if args.keep_box is not None:
        box = args.keep_box.split(",")
        if len(box) != 4:
            raise UserError(f"--keep-box must be x0,y0,x1,y1, got {args.keep_box!r}")
    if args.model is not None and not args.model.exists():
        raise UserError(f"--model: no such file or folder: {args.model}")
    check_target(args.out, "generation")  # new, empty, or an earlier `armani generate` folder (replaced)
    if args.text is not None:
        try:
            args.text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError("--text is not valid UTF-8 text (check the terminal's encoding)") from None
    g = load_sampled(args, args.device)
    cfg = g.sampling
    cond = g.prepare(args.text, args.sketch, args.sketch_from, args.partial, box, args.keep_mask)
    unknown = g.tokenizer.unknown_words(cond.text) if cond.text else []
    if unknown:
        print(f"warning: {unknown_words_message(unknown)}", file=sys.stderr)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "little")
    shown, start, batch_seeds = [], 0, []
    # Written beside --out and swapped in at the end: an earlier run's samples are replaced whole.
    with atomic_dir(args.out, "generation") as tmp, \
            bar(args.n, "generate", "img", args.quiet or args.n <= args.batch_size) as pb:
        # The first batch uses the seed itself: --n 40 begins with the images of --n 16.
        for images, batch_seed in g.batches(cond, args.n, seed, cfg, args.batch_size, args.decode):
            batch_seeds.append(batch_seed)
            for i, im in enumerate(images, start):
                save_png(im, tmp / f"sample-{i:0{max(2, len(str(args.n - 1)))}d}.png")
            shown += list(images[:max(0, SHEET_MAX - len(shown))])
            start += len(images)
            pb.update(len(images))
        save_png(render([Row("", cond.text, cond.sketch, cond.partial, np.stack(shown))]), tmp / "sheet.png")
        _write_record(tmp, args, g, cond, seed, batch_seeds, cfg, unknown)
    print(f"wrote {args.n} images and sheet.png to {args.out} (seed {seed})")
    return 0


def _write_record(tmp: Path, args, g, cond, seed: int, batch_seeds: list[int], cfg, unknown: list[str]) -> None:
    """generation.json: what made the samples (the seed given or drawn, and the seed each batch of
    `batch_size` images was drawn with)."""
    from dataclasses import asdict
    record = {"model": str(g.path), "text": cond.text, "sketch": str(args.sketch) if args.sketch else None,
              "sketch_from": str(args.sketch_from) if args.sketch_from else None,
              "partial": str(args.partial) if args.partial else None, "keep_box": args.keep_box,
              "keep_mask": str(args.keep_mask) if args.keep_mask else None, "n": args.n, "seed": seed,
              "batch_seeds": batch_seeds,
              "batch_size": args.batch_size, "device": str(g.device), "decode": args.decode,
              "sampling": asdict(cfg), "unknown_words": unknown}
    (tmp / "generation.json").write_text(json.dumps(record, indent=2) + "\n")


def cmd_export(args) -> int:
    from ..inference.pipeline import export
    out = export(args.model, args.out, half=args.half, about={"note": args.note} if args.note else None)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    return 0


def cmd_demo(args) -> int:
    from ..demo import MissingExtra, launch
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
    if args.model is not None and not args.model.exists():
        raise UserError(f"--model: no such file or folder: {args.model}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {args.port}")
    try:
        launch(args.model, args.host, args.port, args.share, args.device)
    except MissingExtra as e:
        raise UserError(str(e)) from None
    except OSError as e:  # Gradio: the port is taken, or the host is not this machine's
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e}") from None
    return 0


def cmd_align(args) -> int:
    from ..eval.align_figure import alignment_figure
    out = alignment_figure(args.model, args.image, args.mask, args.text, args.out)
    print(f"wrote {out}")
    return 0
