"""`armani eval ...`: measure trained models."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..inference.modes import MODES
from .common import load_sampled, positive, sampling_args, write_json


def _measure(evs, name: str, helptext: str, func, model_help: str | None = None, split: str = "val",
             split_help: str | None = None):
    """A subcommand that measures --model on --data's --split, with --json."""
    e = evs.add_parser(name, help=helptext)
    e.add_argument("--model", type=Path, required=True, help=model_help)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--split", default=split, help=split_help or f"default {split}")
    e.add_argument("--json", type=Path, default=None)
    e.set_defaults(func=func)
    return e


def _mode_arg(e) -> None:
    e.add_argument("--mode", "--task", dest="mode", choices=MODES, default="text",
                   help="generation mode: which conditions (default text; --task is the older name)")


def add_commands(sub) -> None:
    """`armani eval segmenter | alignment | recon | colours | judge | generate | compare`."""
    ev = sub.add_parser("eval", help="measure a trained model")
    evs = ev.add_subparsers(dest="eval_cmd", required=True, metavar="WHAT")
    _measure(evs, "segmenter", "per-label IoU and mIoU", cmd_eval_segmenter)
    e = _measure(evs, "alignment", "word-part pointing accuracy and mask-text retrieval", cmd_eval_alignment)
    e.add_argument("--baseline", type=Path, default=None, help="a second model (e.g. the --global one) to compare")
    e.add_argument("--max-samples", type=positive, default=None)
    e = _measure(evs, "recon", "tokenizer reconstruction: PSNR, SSIM, codebook usage, perplexity", cmd_eval_recon,
                 "stage-1 (vqgan) or sketch-vq run or bundle")
    e.add_argument("--grid", type=Path, default=None, help="PNG of originals above their reconstructions")
    e.add_argument("--max-samples", type=positive, default=None)
    e.add_argument("--maskclip", type=Path, default=None, help="override the MaskCLIP the model records")
    e.add_argument("--segmenter", type=Path, default=None, help="override the segmenter the model records")
    e = evs.add_parser("colours", help="text-only generation for the 13 colours; the asked colour's share, read "
                       "from the pixels")
    e.add_argument("--model", type=Path, default=None, help="pipeline folder or stage-2 run (default: the "
                   "shipped model)")
    e.add_argument("--samples", type=positive, default=4, help="images per prompt (default 4)")
    e.add_argument("--all-nouns", action="store_true", help="every colour with each of the 11 garment nouns "
                   "(143 prompts) instead of one noun per colour: a steadier figure")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", type=Path, default=None)
    sampling_args(e)
    e.set_defaults(func=cmd_eval_colours)
    _measure(evs, "judge", "the attribute judge's accuracy on real held-out images", cmd_eval_judge,
             "judge run or bundle", split="test")
    e = _measure(evs, "generate", "generate for a split's prompts and score the samples (FID, KID, IS, CLIPScore, "
                 "MaskCLIP score, attribute accuracy)", cmd_eval_generate, "pipeline folder or stage-2 run",
                 split_help="val (default), test or test_holdout")
    _mode_arg(e)
    e.add_argument("--n", type=positive, default=100, help="prompts (the split's first N; default 100)")
    e.add_argument("--samples", type=positive, default=1, help="images per prompt (default 1)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--judge", type=Path, default=None, help="attribute judge run (armani train judge)")
    e.add_argument("--maskclip", type=Path, default=None, help="MaskCLIP for the MaskCLIP score (default: "
                   "the model's own)")
    e.add_argument("--segmenter", type=Path, default=None, help="segmenter for the MaskCLIP score (default: "
                   "the model's own)")
    e.add_argument("--inception", default=None, help="TorchScript Inception-v3 file for FID/KID/IS "
                   "(or ARMANI_INCEPTION)")
    e.add_argument("--clip", default=None, help="Hugging Face CLIP folder for CLIPScore (or ARMANI_CLIP)")
    e.add_argument("--html", type=Path, default=None, help="page of samples (default: next to --json)")
    sampling_args(e)
    e = evs.add_parser("compare", help="a side-by-side judging page (the paper's human evaluation)")
    e.add_argument("models", type=Path, nargs="+", help="two or more pipeline folders or stage-2 runs")
    e.add_argument("--data", type=Path, required=True, help="dataset whose captions are the prompts")
    e.add_argument("--names", default=None, help="comma-separated names of the models (default: folder names)")
    _mode_arg(e)
    e.add_argument("--split", default="val")
    e.add_argument("--n", type=positive, default=20, help="prompts (default 20)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", type=Path, default=Path("compare.html"))
    e.set_defaults(func=cmd_eval_compare)


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
    write_json(args.json, rep)
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
    write_json(args.json, out)
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
    write_json(args.json, rep)
    return 0


def cmd_eval_colours(args) -> int:
    from ..eval.colour import colour_prompts, evaluate_colours
    from ..progress import bar
    g = load_sampled(args)
    with bar(len(colour_prompts(args.all_nouns)), "eval colours", "prompt", args.quiet) as pb:
        rep = evaluate_colours(g, args.samples, args.seed, progress=pb.update, all_nouns=args.all_nouns)
    print(f"asked colour in {rep['accuracy']:.1%} of {rep['samples']} samples (colour read from the pixels)")
    for r in rep["colours"]:
        print(f"  {r['colour']:7s} {r['accuracy']:4.0%}  {r['prompt']!r:24s} -> {', '.join(r['got'])}")
    write_json(args.json, rep)
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
    write_json(args.json, rep)
    return 0


def cmd_eval_generate(args) -> int:
    from ..eval.generation import METRICS, evaluate_generation
    from ..progress import bar
    g = load_sampled(args)
    html_path = args.html or (args.json.with_suffix(".html") if args.json else Path("eval_generate.html"))
    with bar(None, f"generate {args.mode}", "img", args.quiet) as pb:
        rep = evaluate_generation(g, args.data, args.mode, args.split, args.n, args.samples, args.seed,
                                  args.judge, args.maskclip, args.segmenter, args.inception, args.clip,
                                  html_path=html_path, progress=pb.update)
    print(f"{args.mode} on {rep['prompts']} {args.split} prompts x {rep['samples_per_prompt']}:")
    for k in METRICS:
        v, ci = rep.get(k), rep.get("ci95", {}).get(k)
        shown = "unavailable: " + rep["unavailable"].get(k, "") if v is None else f"{v:.4g}" + (
            f" (95% CI {ci[0]:.4g} .. {ci[1]:.4g})" if ci else "")
        print(f"  {k:20s} {shown}")
    print(f"wrote {html_path}")
    write_json(args.json, rep)
    return 0


def cmd_eval_compare(args) -> int:
    from ..eval.compare import write_questionnaire
    names = args.names.split(",") if args.names else None
    if names is not None and len(names) != len(args.models):
        raise UserError(f"--names gives {len(names)} names for {len(args.models)} models")
    if len(args.models) < 2:
        raise UserError("compare needs at least two models")
    path = write_questionnaire(args.models, args.data, args.out, names, args.mode, args.split, args.n, args.seed)
    print(f"wrote {path}: open it in a browser, pick one image per prompt, then export the tallies as JSON")
    return 0
