"""`armani data ...`: make, import, check and view datasets."""
from __future__ import annotations

import json
from pathlib import Path

from .common import positive


def add_commands(sub) -> None:
    """`armani data synth | import | check | show | masks | tokenizer`."""
    d = sub.add_parser("data", help="make, import, check and view datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")

    s = dsub.add_parser("synth", help="render a SynthFashion dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--n", type=positive, default=10000)
    s.add_argument("--size", type=positive, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", default="default",
                   help="CATEGORY:PART pairs kept out of train, comma-separated; 'default' or 'none'")
    s.add_argument("--workers", type=positive, default=None, help="processes (default: all cores)")
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
    i.add_argument("--max-side", type=positive, default=None, help="downscale larger images to this side")
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
    v.add_argument("--n", type=positive, default=16)
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
    t.add_argument("--vocab-size", type=positive, default=2048)
    t.add_argument("--from", dest="from_file", type=Path, default=None,
                   help="use this tokenizer.json (e.g. CLIP's) instead of training one")
    t.set_defaults(func=cmd_tokenizer)


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


def cmd_masks(args) -> int:
    from ..data.predict_masks import fill_masks
    from ..progress import bar
    with bar(None, "masks", "img", args.quiet) as pb:
        n = fill_masks(args.model, args.dir, overwrite=args.all, progress=pb.update)
    print(f"wrote {n} predicted masks into {args.dir}")
    return 0


def cmd_tokenizer(args) -> int:
    from ..data.tokenizer import CaptionTokenizer, train_bpe
    from ..formats.dataset import Index, read_meta, write_meta
    from ..formats.fsutil import target_lock
    with target_lock(args.dir):
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
