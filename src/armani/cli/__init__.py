"""The `armani` command line. Each subcommand is a thin call into the library."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from .. import __version__
from ..errors import UserError


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def _report_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report-to", choices=("none", "tensorboard", "wandb"), default=None,
                   help="live dashboard of losses, lr, throughput and sample grids (default: none; tensorboard "
                   "needs the dashboards extra; wandb offline: WANDB_MODE=offline)")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """--temperature, --top-k, --top-p, --guidance: over the model's own sampling defaults."""
    p.add_argument("--temperature", type=float, default=None, help="default: the model's (armani.json)")
    p.add_argument("--top-k", type=int, default=None, help="0: no top-k filtering")
    p.add_argument("--top-p", type=float, default=None, help="1: no nucleus filtering")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (1: off)")


def _load_sampled(args, device="cpu"):
    """The model of args.model with the sampling flags over its defaults."""
    from ..inference.pipeline import GenerationError, load, sampling_config
    g = load(args.model, device)
    g.sampling = sampling_config(g, args.temperature, args.top_k, args.top_p, args.guidance)
    try:
        g.sampling.check()
    except ValueError as e:
        raise GenerationError(str(e)) from None
    return g


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="armani", description="ARMANI: part-level garment-text alignment "
                                "for cross-modal fashion design.")
    p.add_argument("--version", action="version", version=f"armani {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    q = sub.add_parser("quickstart", help="run the main job on the embedded SynthFashion data")
    q.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    q.add_argument("--n", type=_positive, default=4000, help="SynthFashion samples (default 4000)")
    q.add_argument("--size", type=_positive, default=64, help="image size in pixels (default 64)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    q.add_argument("--profile", choices=("default", "tiny"), default="default",
                   help="stage budgets: default (about 20 min on a 2-core CPU) or tiny (a smoke test)")
    q.set_defaults(func=cmd_quickstart)

    d = sub.add_parser("data", help="make, import, check and view datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")

    s = dsub.add_parser("synth", help="render a SynthFashion dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--n", type=_positive, default=10000)
    s.add_argument("--size", type=_positive, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", default="default",
                   help="CATEGORY:PART pairs kept out of train, comma-separated; 'default' or 'none'")
    s.add_argument("--workers", type=_positive, default=None, help="processes (default: all cores)")
    s.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary; 0 trains no tokenizer")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_synth)

    i = dsub.add_parser("import", help="import a public dataset layout into the armani format")
    i.add_argument("--format", required=True, choices=["folder", "vitonhd", "dresscode", "fashionpedia",
                                                       "deepfashion-mm"])
    i.add_argument("--src", type=Path, required=True)
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--strict", action="store_true", help="any bad sample is an error")
    i.add_argument("--overwrite", action="store_true")
    i.add_argument("--max-side", type=_positive, default=None, help="downscale larger images to this side")
    i.add_argument("--annotations", type=Path, default=None, help="fashionpedia: the COCO-style JSON")
    i.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary; 0 trains no tokenizer")
    i.set_defaults(func=cmd_import)

    c = dsub.add_parser("check", help="validate a dataset; non-zero exit on errors")
    c.add_argument("dir", type=Path)
    c.add_argument("--fast", action="store_true", help="check that files exist without decoding them")
    c.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    c.set_defaults(func=cmd_check)

    v = dsub.add_parser("show", help="contact sheet: image, mask, sketch, partial, caption")
    v.add_argument("dir", type=Path)
    v.add_argument("--n", type=_positive, default=16)
    v.add_argument("--split", default=None)
    v.add_argument("--out", type=Path, default=Path("grid.png"))
    v.set_defaults(func=cmd_show)

    mk = dsub.add_parser("masks", help="fill in missing part masks with a trained segmenter")
    mk.add_argument("dir", type=Path)
    mk.add_argument("--model", type=Path, required=True, help="segmenter run or bundle")
    mk.add_argument("--all", action="store_true", help="replace existing masks too")
    mk.set_defaults(func=cmd_masks)

    t = dsub.add_parser("tokenizer", help="train a BPE caption tokenizer, or install a tokenizer.json")
    t.add_argument("dir", type=Path)
    t.add_argument("--vocab-size", type=_positive, default=2048)
    t.add_argument("--from", dest="from_file", type=Path, default=None,
                   help="use this tokenizer.json (e.g. CLIP's) instead of training one")
    t.set_defaults(func=cmd_tokenizer)
    tr = sub.add_parser("train", help="train a model")
    trs = tr.add_subparsers(dest="train_cmd", required=True, metavar="MODEL")
    for name, helptext in (("segmenter", "the part segmenter"), ("maskclip", "MaskCLIP (token-wise alignment)"),
                           ("vqgan", "stage 1: the cross-modal VQGAN (image tokenizer)"),
                           ("sketch-vq", "the sketch tokenizer (VQ autoencoder on edge maps)"),
                           ("judge", "the attribute judge (category, colour, pattern, parts) on SynthFashion")):
        x = trs.add_parser(name, help=helptext)
        x.add_argument("--data", type=Path, required=True)
        x.add_argument("--out", type=Path, required=True, help="run folder")
        x.add_argument("--config", default=None, help="preset name (cpu, ...) or JSON file; default: cpu")
        x.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        x.add_argument("--max-steps", type=_positive, default=None)
        x.add_argument("--max-minutes", type=float, default=None)
        x.add_argument("--batch-size", type=_positive, default=None)
        x.add_argument("--workers", type=int, default=None, help="data loader processes")
        x.add_argument("--seed", type=int, default=None)
        _report_arg(x)
        if name == "maskclip":
            x.add_argument("--global", dest="global_loss", action="store_true",
                           help="train the pooled (global CLIP) baseline instead")
            x.add_argument("--segmenter", type=Path, default=None,
                           help="segmenter run that predicts masks for samples without one")
        if name == "vqgan":
            x.add_argument("--maskclip", type=Path, default=None,
                           help="trained MaskCLIP (fusion, eq. 9, and the semantic loss)")
            x.add_argument("--segmenter", type=Path, default=None,
                           help="trained segmenter (semantic loss, perceptual features, missing masks)")
            x.add_argument("--fusion", choices=("maskclip", "none"), default=None,
                           help="'none' trains the plain VQGAN codebook (baseline); default from the config")
        x.set_defaults(func=cmd_train, model=name)
    x = trs.add_parser("transformer", help="stage 2: the cross-modal Transformer on a token folder")
    x.add_argument("--tokens", type=Path, required=True, help="token folder made by `armani tokenize`")
    x.add_argument("--out", type=Path, required=True, help="run folder")
    x.add_argument("--config", default=None, help="preset name (cpu, paper) or JSON file; default: cpu")
    x.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    for flag, typ in (("--max-steps", _positive), ("--max-minutes", float), ("--batch-size", _positive),
                      ("--workers", int), ("--seed", int)):
        x.add_argument(flag, type=typ, default=None)
    _report_arg(x)
    x.set_defaults(func=cmd_train, model="transformer")

    ev = sub.add_parser("eval", help="measure a trained model")
    evs = ev.add_subparsers(dest="eval_cmd", required=True, metavar="WHAT")
    e1 = evs.add_parser("segmenter", help="per-label IoU and mIoU")
    e2 = evs.add_parser("alignment", help="word-part pointing accuracy and mask-text retrieval")
    for e in (e1, e2):
        e.add_argument("--model", type=Path, required=True)
        e.add_argument("--data", type=Path, required=True)
        e.add_argument("--split", default="val")
        e.add_argument("--json", type=Path, default=None)
    e2.add_argument("--baseline", type=Path, default=None, help="a second model (e.g. the --global one) to compare")
    e2.add_argument("--max-samples", type=_positive, default=None)
    e1.set_defaults(func=cmd_eval_segmenter)
    e2.set_defaults(func=cmd_eval_alignment)
    e3 = evs.add_parser("recon", help="tokenizer reconstruction: PSNR, SSIM, codebook usage, perplexity")
    e3.add_argument("--model", type=Path, required=True, help="stage-1 (vqgan) or sketch-vq run or bundle")
    e3.add_argument("--data", type=Path, required=True)
    e3.add_argument("--split", default="val")
    e3.add_argument("--json", type=Path, default=None)
    e3.add_argument("--grid", type=Path, default=None, help="PNG of originals above their reconstructions")
    e3.add_argument("--max-samples", type=_positive, default=None)
    e3.add_argument("--maskclip", type=Path, default=None, help="override the MaskCLIP the model records")
    e3.add_argument("--segmenter", type=Path, default=None, help="override the segmenter the model records")
    e3.set_defaults(func=cmd_eval_recon)

    ec = evs.add_parser("colours", help="text-only generation for the 13 colours; the asked colour's share, read "
                        "from the pixels")
    ec.add_argument("--model", type=Path, default=None, help="pipeline folder or stage-2 run (default: the "
                    "shipped model)")
    ec.add_argument("--samples", type=_positive, default=4, help="images per colour (default 4)")
    ec.add_argument("--seed", type=int, default=0)
    ec.add_argument("--json", type=Path, default=None)
    _sampling_args(ec)
    ec.set_defaults(func=cmd_eval_colours)
    e4 = evs.add_parser("judge", help="the attribute judge's accuracy on real held-out images")
    e4.add_argument("--model", type=Path, required=True, help="judge run or bundle")
    e4.add_argument("--data", type=Path, required=True)
    e4.add_argument("--split", default="test")
    e4.add_argument("--json", type=Path, default=None)
    e4.set_defaults(func=cmd_eval_judge)
    e5 = evs.add_parser("generate", help="generate for a split's prompts and score the samples (FID, KID, IS, "
                        "CLIPScore, MaskCLIP score, attribute accuracy)")
    e5.add_argument("--model", type=Path, required=True, help="pipeline folder or stage-2 run")
    e5.add_argument("--data", type=Path, required=True)
    e5.add_argument("--task", choices=("text", "text+sketch", "text+partial", "sketch", "partial"), default="text")
    e5.add_argument("--split", default="val", help="val (default), test or test_holdout")
    e5.add_argument("--n", type=_positive, default=100, help="prompts (the split's first N; default 100)")
    e5.add_argument("--samples", type=_positive, default=1, help="images per prompt (default 1)")
    e5.add_argument("--seed", type=int, default=0)
    e5.add_argument("--judge", type=Path, default=None, help="attribute judge run (armani train judge)")
    e5.add_argument("--maskclip", type=Path, default=None, help="MaskCLIP for the MaskCLIP score (default: "
                    "the model's own)")
    e5.add_argument("--segmenter", type=Path, default=None, help="segmenter for the MaskCLIP score (default: "
                    "the model's own)")
    e5.add_argument("--inception", default=None, help="TorchScript Inception-v3 file for FID/KID/IS "
                    "(or ARMANI_INCEPTION)")
    e5.add_argument("--clip", default=None, help="Hugging Face CLIP folder for CLIPScore (or ARMANI_CLIP)")
    e5.add_argument("--json", type=Path, default=None)
    e5.add_argument("--html", type=Path, default=None, help="page of samples (default: next to --json)")
    _sampling_args(e5)
    e5.set_defaults(func=cmd_eval_generate)
    e6 = evs.add_parser("compare", help="a side-by-side judging page (the paper's human evaluation)")
    e6.add_argument("models", type=Path, nargs="+", help="two or more pipeline folders or stage-2 runs")
    e6.add_argument("--data", type=Path, required=True, help="dataset whose captions are the prompts")
    e6.add_argument("--names", default=None, help="comma-separated names of the models (default: folder names)")
    e6.add_argument("--task", choices=("text", "text+sketch", "text+partial", "sketch", "partial"), default="text")
    e6.add_argument("--split", default="val")
    e6.add_argument("--n", type=_positive, default=20, help="prompts (default 20)")
    e6.add_argument("--seed", type=int, default=0)
    e6.add_argument("--out", type=Path, default=Path("compare.html"))
    e6.set_defaults(func=cmd_eval_compare)

    xp = sub.add_parser("experiment", help="reproduce the paper's tables on SynthFashion")
    xps = xp.add_subparsers(dest="experiment", required=True, metavar="WHICH")
    x = xps.add_parser("paper", help="ARMANI, a DALL-E-style baseline and three ablations: Tables 1 and 2")
    x.add_argument("--preset", choices=("cpu", "gpu", "micro"), default="cpu",
                   help="cpu (about an hour on 2 cores), gpu (a lent GPU), micro (a smoke test)")
    x.add_argument("--out", type=Path, default=Path("runs/experiment"))
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--prompts", type=_positive, default=None, help="prompts per task (default: the preset's)")
    x.add_argument("--inception", default=None, help="TorchScript Inception-v3 file (or ARMANI_INCEPTION)")
    x.add_argument("--clip", default=None, help="Hugging Face CLIP folder (or ARMANI_CLIP)")
    x.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    x.set_defaults(func=cmd_experiment)

    tk = sub.add_parser("tokenize", help="encode a dataset once into token ids for stage 2")
    tk.add_argument("--model", type=Path, required=True, help="stage-1 (vqgan) run or bundle")
    tk.add_argument("--sketch-model", type=Path, default=None, help="sketch-vq run or bundle")
    tk.add_argument("--data", type=Path, required=True)
    tk.add_argument("--out", type=Path, required=True)
    tk.add_argument("--splits", default=None, help="comma-separated; default: every split the dataset has")
    tk.add_argument("--maskclip", type=Path, default=None, help="override the MaskCLIP the model records")
    tk.add_argument("--segmenter", type=Path, default=None, help="override the segmenter the model records")
    tk.set_defaults(func=cmd_tokenize)

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
    g.add_argument("--n", type=_positive, default=8, help="images to generate (default 8)")
    g.add_argument("--seed", type=int, default=None, help="the same seed gives the same images")
    _sampling_args(g)
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
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ..train.loop import TrainingDiverged
    previous = _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except TrainingDiverged as e:
        print(f"armani: training stopped: {e}", file=sys.stderr)
        return 3
    except UserError as e:  # bad input; anything else is a bug in armani and keeps its traceback
        print(f"armani: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("armani: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("armani: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM, raised where the process was, so every cleanup runs as for an exception."""


def _terminate_as_interrupt():
    """Turn SIGTERM into `Terminated` while a command runs (main thread only); returns the
    handler to put back."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum, frame):
        raise Terminated()
    return signal.signal(signal.SIGTERM, on_term)


def cmd_quickstart(args) -> int:
    from ..recipes.quickstart import QuickstartConfig, run_quickstart
    summary = run_quickstart(QuickstartConfig(args.out, args.n, args.size, args.seed, args.fresh, args.quiet,
                                              args.profile))
    print(f"quickstart finished in {summary['total_seconds']:.1f} s: report {args.out / 'report.html'}, "
          f"summary {args.out / 'summary.json'}, model {args.out / 'model'} "
          f"(try: armani generate --model {args.out / 'model'} --text \"a red T-shirt with a white logo\")")
    if summary.get("colours"):
        print(f"colours: the asked colour in {summary['colours']['accuracy']:.0%} of text-only samples")
    for kind, why in (summary.get("capped") or {}).items():
        print(f"warning: {kind} {why}")
    return 0


def cmd_synth(args) -> int:
    from ..data.make_synth import write_synth
    from ..data.synth import parse_holdout
    from ..progress import bar
    holdout = parse_holdout(args.holdout)
    with bar(args.n, "synthfashion", "img", args.quiet) as pb:
        out = write_synth(args.out, args.n, args.size, args.seed, holdout, args.workers, args.overwrite,
                          args.vocab_size or None, progress=pb.update)
    meta = json.loads((out / "dataset.json").read_text())
    print(f"wrote {meta['num_samples']} samples to {out}: {meta['splits']}")
    return 0


def cmd_import(args) -> int:
    from ..data.importers import import_dataset
    from ..progress import bar
    with bar(None, f"import {args.format}", "img", args.quiet) as pb:
        res = import_dataset(args.format, args.src, args.out, strict=args.strict, overwrite=args.overwrite,
                             max_side=args.max_side, tokenizer_vocab=args.vocab_size or None,
                             annotations=args.annotations, progress=pb.update)
    print(res.summary())
    for s in res.skipped[:10]:
        print(f"  skipped {s['id']}: {s['reason']}")
    if len(res.skipped) > 10:
        print(f"  ... {len(res.skipped) - 10} more in {res.out / 'import_report.json'}")
    return 0


def cmd_check(args) -> int:
    from ..data.check import check_dataset
    from ..progress import bar
    with bar(None, "check", "img", args.quiet) as pb:
        rep = check_dataset(args.dir, decode=not args.fast, progress=pb.update)
    for e in rep.errors[:20]:
        print(f"error: {e}")
    if len(rep.errors) > 20:
        print(f"... {len(rep.errors) - 20} more errors")
    for w in rep.warnings[:20]:
        print(f"warning: {w}")
    print(f"{args.dir}: {rep.samples} samples {dict(rep.splits)}, {len(rep.errors)} errors, "
          f"{len(rep.warnings)} warnings")
    if args.json:
        args.json.write_text(json.dumps({"ok": rep.ok, "samples": rep.samples, "splits": dict(rep.splits),
                                         "errors": rep.errors, "warnings": rep.warnings}, indent=2) + "\n")
    return 0 if rep.ok else 1


def cmd_show(args) -> int:
    from ..report.preview import contact_sheet
    out = contact_sheet(args.dir, n=args.n, split=args.split, out=args.out)
    print(f"wrote {out}")
    return 0


def cmd_tokenizer(args) -> int:
    from ..data.tokenizer import CaptionTokenizer, train_bpe
    from ..formats.dataset import Index, read_meta, write_meta
    meta = read_meta(args.dir)
    if args.from_file:
        tok = CaptionTokenizer.from_file(args.from_file)
    else:
        texts = (c for rec in Index(args.dir, "train") for c in rec["captions"])
        tok = CaptionTokenizer(train_bpe(texts, vocab_size=args.vocab_size))
    tok.save(args.dir / "tokenizer.json")
    meta["tokenizer"] = "tokenizer.json"
    write_meta(args.dir, meta)
    print(f"wrote {args.dir / 'tokenizer.json'} ({tok.vocab_size} tokens)")
    return 0


def cmd_masks(args) -> int:
    from ..data.predict_masks import fill_masks
    from ..progress import bar
    with bar(None, "masks", "img", args.quiet) as pb:
        n = fill_masks(args.model, args.dir, overwrite=args.all, progress=pb.update)
    print(f"wrote {n} predicted masks into {args.dir}")
    return 0


def cmd_train(args) -> int:
    from ..train.loop import Trainer
    from ..train.stage1 import sketch_task, vqgan_task
    from ..train.stage2 import transformer_task
    from ..train.tasks import maskclip_task, segmenter_task
    overrides = {"max_steps": args.max_steps, "max_minutes": args.max_minutes, "batch_size": args.batch_size,
                 "workers": args.workers, "seed": args.seed, "report_to": args.report_to}
    source = {"data": str(args.data)} if hasattr(args, "data") else {"tokens": str(args.tokens)}
    if args.model == "transformer":
        task, tcfg = transformer_task(args.tokens, args.config, **overrides)
    elif args.model == "segmenter":
        task, tcfg = segmenter_task(args.data, args.config, **overrides)
    elif args.model == "vqgan":
        task, tcfg = vqgan_task(args.data, args.maskclip, args.segmenter, args.config, fusion=args.fusion,
                                **overrides)
    elif args.model == "sketch-vq":
        task, tcfg = sketch_task(args.data, args.config, **overrides)
    elif args.model == "judge":
        from ..eval.judge import judge_task
        task, tcfg = judge_task(args.data, args.config, **overrides)
    else:
        task, tcfg = maskclip_task(args.data, args.config, global_loss=args.global_loss,
                                   segmenter=args.segmenter, **overrides)
    if hasattr(args, "data"):
        _precheck(args.data, tcfg.max_bad_fraction)
    trainer = Trainer(task, tcfg, args.out, resume=args.resume, quiet=args.quiet,
                      extra_config=source)
    res = trainer.fit()
    if trainer.acc.is_main_process:
        loss = f"{res.last_loss:.4f}" if res.last_loss is not None else "n/a"
        print(f"trained {args.model} for {res.steps} steps in {res.seconds:.0f} s (stopped by {res.stopped_by}), "
              f"last loss {loss}; model: {res.model_dir}")
    _end_distributed()
    return 0


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


def _write_json(path, obj) -> None:
    if path:
        Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def cmd_eval_segmenter(args) -> int:
    from ..eval.segmentation import evaluate_segmenter
    from ..progress import bar
    with bar(None, "eval segmenter", "img", args.quiet) as pb:
        rep = evaluate_segmenter(args.model, args.data, args.split, progress=pb.update)
    print(f"{'label':12s} IoU")
    for k, v in rep["iou_per_label"].items():
        print(f"{k:12s} {'-' if v is None else f'{v:.3f}'}")
    print(f"mIoU {rep['miou']:.4f} (parts only {rep['miou_parts']:.4f}), pixel accuracy "
          f"{rep['pixel_accuracy']:.4f}, {rep['samples']} {args.split} images")
    _write_json(args.json, rep)
    return 0


def cmd_eval_recon(args) -> int:
    from ..eval.recon import evaluate_recon
    from ..progress import bar
    with bar(None, "eval recon", "img", args.quiet) as pb:
        rep = evaluate_recon(args.model, args.data, args.split, max_samples=args.max_samples, grid=args.grid,
                             maskclip=args.maskclip, segmenter=args.segmenter, progress=pb.update)
    print(f"{rep['input']} tokenizer ({rep['tokens_per_image']} tokens/image, fusion {rep['fusion']}) on "
          f"{rep['samples']} {args.split} images: PSNR {rep['psnr']:.2f} dB, SSIM {rep['ssim']:.4f}, "
          f"codebook usage {rep['codebook_usage']:.3f} ({rep['codes_used']}/{rep['num_codes']}), "
          f"perplexity {rep['perplexity']:.1f}")
    if rep["text_code_change"] is not None:
        print(f"codes changed by the caption: {rep['text_code_change']:.3f} of fused positions when swapped for "
              f"another image's, {rep['text_code_change_removed']:.3f} when fusion is off")
    if rep["maskclip_score"] is not None:
        print(f"MaskCLIP score of the reconstructions {rep['maskclip_score']:.2f} "
              f"(originals {rep['maskclip_score_real']:.2f})")
    if rep.get("colour_error") is not None:
        print(f"colour: mean CIEDE2000 {rep['colour_error']:.2f} between original and reconstructed garment, "
              f"main colour kept in {rep['colour_kept']:.1%}")
        for name, d in (rep["colour_by_name"] or {}).items():
            print(f"  {name:7s} CIEDE2000 {d['colour_error']:5.2f}, kept {d['colour_kept']:.0%} ({d['images']} images)")
    if args.grid:
        print(f"wrote {args.grid}")
    _write_json(args.json, rep)
    return 0


def cmd_eval_colours(args) -> int:
    from ..eval.colour import NAMES, evaluate_colours
    from ..progress import bar
    g = _load_sampled(args)
    with bar(len(NAMES), "eval colours", "prompt", args.quiet) as pb:
        rep = evaluate_colours(g, args.samples, args.seed, progress=pb.update)
    print(f"asked colour in {rep['accuracy']:.1%} of {rep['samples']} samples (colour read from the pixels)")
    for r in rep["colours"]:
        print(f"  {r['colour']:7s} {r['accuracy']:4.0%}  {r['prompt']!r:24s} -> {', '.join(r['got'])}")
    _write_json(args.json, rep)
    return 0


def cmd_eval_judge(args) -> int:
    from ..eval.judge import evaluate_judge
    rep = evaluate_judge(args.model, args.data, args.split)
    a = rep["accuracy"]
    print(f"judge on {rep['samples']} real {args.split} images: category {a['category']:.3f}, colour "
          f"{a['color']:.3f}, pattern {a['pattern']:.3f}")
    for p, d in rep["parts"].items():
        bal = "-" if d["balanced_accuracy"] is None else f"{d['balanced_accuracy']:.3f}"
        print(f"  {p:10s} balanced accuracy {bal} ({d['present']} present)")
    print(f"usable: {rep['usable']}; judged attributes (>= {rep['threshold']}): {', '.join(rep['trusted']) or 'none'}")
    _write_json(args.json, rep)
    return 0


def cmd_eval_generate(args) -> int:
    from ..eval.generation import METRICS, default_device, evaluate_generation
    from ..progress import bar
    g = _load_sampled(args, default_device())
    html_path = args.html or (args.json.with_suffix(".html") if args.json else Path("eval_generate.html"))
    with bar(None, f"generate {args.task}", "img", args.quiet) as pb:
        rep = evaluate_generation(g, args.data, args.task, args.split, args.n, args.samples, args.seed,
                                  args.judge, args.maskclip, args.segmenter, args.inception, args.clip,
                                  html_path=html_path, progress=pb.update)
    print(f"{args.task} on {rep['prompts']} {args.split} prompts x {rep['samples_per_prompt']}:")
    for k in METRICS:
        v, ci = rep.get(k), rep.get("ci95", {}).get(k)
        shown = "unavailable: " + rep["unavailable"].get(k, "") if v is None else f"{v:.4g}" + (
            f" (95% CI {ci[0]:.4g} .. {ci[1]:.4g})" if ci else "")
        print(f"  {k:20s} {shown}")
    print(f"wrote {html_path}")
    _write_json(args.json, rep)
    return 0


def cmd_eval_compare(args) -> int:
    from ..eval.compare import write_questionnaire
    names = args.names.split(",") if args.names else None
    if names is not None and len(names) != len(args.models):
        raise UserError(f"--names gives {len(names)} names for {len(args.models)} models")
    if len(args.models) < 2:
        raise UserError("compare needs at least two models")
    path = write_questionnaire(args.models, args.data, args.out, names, args.task, args.split, args.n, args.seed)
    print(f"wrote {path}: open it in a browser, pick one image per prompt, then export the tallies as JSON")
    return 0


def cmd_experiment(args) -> int:
    from ..recipes.experiment import ExperimentConfig, run_experiment
    summary = run_experiment(ExperimentConfig(args.out, args.preset, args.seed, args.fresh, args.quiet,
                                              args.inception, args.clip, args.prompts))
    print((args.out / "table.md").read_text())
    print(f"experiment finished: {summary['total_seconds']:.0f} s of stages; {args.out / 'table.md'}, "
          f"{args.out / 'summary.json'}, sample pages in {args.out / 'samples'}")
    return 0


def cmd_tokenize(args) -> int:
    from ..progress import bar
    from ..recipes.tokens import tokenize_dataset
    splits = [s for s in args.splits.split(",") if s] if args.splits else None
    with bar(None, "tokenize", "img", args.quiet) as pb:
        info = tokenize_dataset(args.model, args.data, args.out, args.sketch_model, splits,
                                maskclip=args.maskclip, segmenter=args.segmenter, progress=pb.update)
    sizes = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    print(f"wrote {args.out}: {sizes} samples; {info['image_grid'] ** 2} image tokens"
          + (f", {info['sketch_grid'] ** 2} sketch tokens" if info["sketch_grid"] else "") + " each")
    return 0


def cmd_eval_alignment(args) -> int:
    from ..eval.alignment import evaluate_alignment
    from ..progress import bar
    reps = {}
    for name, path in (("model", args.model), ("baseline", args.baseline)):
        if path is None:
            continue
        with bar(None, f"eval alignment ({name})", "img", args.quiet) as pb:
            reps[name] = evaluate_alignment(path, args.data, args.split, max_samples=args.max_samples,
                                            progress=pb.update)
    main_rep = reps["model"]
    cols = list(reps)
    print(f"{'part':10s} {'chance':>7s} " + " ".join(f"{c:>9s}" for c in cols) + "   words")
    for part, ch in main_rep["pointing_chance_per_part"].items():
        vals = " ".join(f"{reps[c]['pointing_per_part'].get(part, float('nan')):9.3f}" for c in cols)
        print(f"{part:10s} {ch:7.3f} {vals}   {main_rep['pointing_words'][part]}")
    for key in ("pointing_accuracy", "pointing_chance", "recall_at_1", "recall_at_5"):
        print(f"{key:18s} " + " ".join(f"{reps[c][key]:9.3f}" for c in cols))
    out = dict(main_rep)
    if "baseline" in reps:
        out["baseline"] = reps["baseline"]
    _write_json(args.json, out)
    return 0


GENERATE_BATCH = 16  # images sampled at once; more are drawn batch by batch
SHEET_MAX = 16       # samples shown on sheet.png


def cmd_generate(args) -> int:
    import os
    from dataclasses import asdict

    import numpy as np

    from ..inference.pipeline import generate_from, prepare, unknown_words_message
    from ..progress import bar
    from ..report.sheet import Row, render, save_png
    box = None
    if args.keep_box is not None:
        box = args.keep_box.split(",")
        if len(box) != 4:
            raise UserError(f"--keep-box must be x0,y0,x1,y1, got {args.keep_box!r}")
    if args.model is not None and not args.model.exists():
        raise UserError(f"--model: no such file or folder: {args.model}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out: {args.out} is a file; give a folder for the images")
    if args.text is not None:
        try:
            args.text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError("--text is not valid UTF-8 text (check the terminal's encoding)") from None
    g = _load_sampled(args)
    cfg = g.sampling
    cond = prepare(g, args.text, args.sketch, args.sketch_from, args.partial, box, args.keep_mask)
    unknown = g.tokenizer.unknown_words(cond.text) if cond.text else []
    if unknown:
        print(f"warning: {unknown_words_message(unknown)}", file=sys.stderr)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "little")
    args.out.mkdir(parents=True, exist_ok=True)
    shown = []
    with bar(args.n, "generate", "img", args.quiet or args.n <= GENERATE_BATCH) as pb:
        for start in range(0, args.n, GENERATE_BATCH):
            # The first batch uses the seed itself: --n 40 begins with the images of --n 16.
            images = generate_from(g, cond, min(GENERATE_BATCH, args.n - start),
                                   seed if start == 0 else seed * 1_000_003 + start, cfg)
            for i, im in enumerate(images, start):
                save_png(im, args.out / f"sample-{i:0{max(2, len(str(args.n - 1)))}d}.png")
            shown += list(images[:max(0, SHEET_MAX - len(shown))])
            pb.update(len(images))
    save_png(render([Row("", cond.text, cond.sketch, cond.partial, np.stack(shown))]), args.out / "sheet.png")
    record = {"model": str(g.path), "text": cond.text, "sketch": str(args.sketch) if args.sketch else None,
              "sketch_from": str(args.sketch_from) if args.sketch_from else None,
              "partial": str(args.partial) if args.partial else None, "keep_box": args.keep_box,
              "keep_mask": str(args.keep_mask) if args.keep_mask else None, "n": args.n, "seed": seed,
              "sampling": asdict(cfg), "unknown_words": unknown}
    (args.out / "generation.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.n} images and sheet.png to {args.out} (seed {seed})")
    return 0


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
    try:
        launch(args.model, args.host, args.port, args.share, args.device)
    except MissingExtra as e:
        raise UserError(str(e)) from None
    return 0


def cmd_align(args) -> int:
    from ..report.align_figure import alignment_figure
    out = alignment_figure(args.model, args.image, args.mask, args.text, args.out)
    print(f"wrote {out}")
    return 0
