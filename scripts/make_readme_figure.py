"""Draw docs/images/tasks.png: the shipped model in the paper's five generation modes (one row each).

    python scripts/make_readme_figure.py [--out docs/images/tasks.png]

The sketch and the partial image come from a SynthFashion render made on the fly (seed 7).
"""
import argparse
import json
import tempfile
from pathlib import Path

import armani
from armani.data.make_synth import write_synth
from armani.formats.images import read_image
from armani.inference.pipeline import generate_from, prepare
from armani.report.sheet import Row, render, save_png


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/images/tasks.png"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = armani.load()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synth(Path(tmp) / "d", 40, 64, seed=7, workers=1, tokenizer_vocab=None)
        recs = [json.loads(line) for line in (data / "index.jsonl").read_text().splitlines()]
        rec = next(r for r in recs if r["attributes"]["category"] == "jacket")
        photo = read_image(data / rec["image"])
    band = (0, 16, 64, 32)
    modes = [("text", dict(text="a red T-shirt with a white logo")),
             ("text + sketch", dict(text="a green jacket", sketch_from=photo)),
             ("text + partial", dict(text="a grey jacket with a zipper", partial=photo, keep_box=band)),
             ("sketch", dict(sketch_from=photo)),
             ("partial", dict(partial=photo, keep_box=band))]
    rows = []
    for i, (title, kw) in enumerate(modes):
        cond = prepare(g, **kw)
        rows.append(Row(title, cond.text, cond.sketch, cond.partial, generate_from(g, cond, 4, args.seed + i)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_png(render(rows), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
