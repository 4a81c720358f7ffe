"""Can a part segmenter judge which parts a garment has? A part is called present when the
segmenter's predicted area of it reaches t pixels, t chosen per part on `val`; balanced
accuracy against the true masks on `val` and `test`.

    python benchmarks/part_area_judge.py SEGMENTER DATA [--size 64] [--pipeline P] [--json OUT]

SEGMENTER: a segmenter run, bundle or pipeline folder; DATA: a dataset with part masks
(SynthFashion's are exact); P: a pipeline folder, whose stage-1 reconstructions of the `test`
images (the caption fused) are judged as well, with the thresholds of the real images. A probe for the part-level test's judge: the attribute judge
(`armani eval judge`) reads buttons, zips, pockets, logos, cuffs and lapels at a balanced
accuracy of 0.79-0.88. Nothing here asserts a figure.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from armani.cli.common import write_json
from armani.data.dataset import GarmentDataset
from armani.formats.pipeline import load_model
from armani.labels import LABELS

THRESHOLDS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def label_areas(seg, x: torch.Tensor) -> np.ndarray:
    """(N, labels): the pixels the segmenter gives each label in each image of `x`."""
    p = seg(x).argmax(1)
    return torch.stack([(p == k).sum((1, 2)) for k in range(len(LABELS))], 1).numpy()


@torch.no_grad()
def part_areas(seg, data: str, split: str, size: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(predicted pixels per label, whether the true mask has the label), each (N, labels)."""
    ds = GarmentDataset(data, split, image_size=size, augment=False)
    pred, truth = [], []
    for i in range(0, len(ds), batch):
        items = [ds[j] for j in range(i, min(i + batch, len(ds)))]
        m = torch.stack([d["mask"] for d in items])
        pred.append(label_areas(seg, torch.stack([d["image"] for d in items])))
        truth.append(torch.stack([(m == k).any(2).any(1) for k in range(len(LABELS))], 1).numpy())
    return np.concatenate(pred), np.concatenate(truth)


@torch.no_grad()
def recon_areas(seg, pipeline: str, data: str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`part_areas` of the pipeline's stage-1 reconstructions of the split's images."""
    from armani.data.dataset import to_unit
    from armani.data.transforms import letterbox
    from armani.eval.fidelity import reconstructions
    from armani.eval.generation import load_prompts
    from armani.formats.dataset import Index
    from armani.formats.images import read_mask
    from armani.inference.pipeline import load
    g = load(pipeline, "cpu")
    prompts = load_prompts(data, split, None, size)
    rec = reconstructions(g, prompts, fuse=True)
    idx = Index(data, split)
    masks = np.stack([letterbox(read_mask(Path(data) / idx[i]["mask"]), size, fill=0, nearest=True)
                      for i in range(len(prompts))])
    pred = [label_areas(seg, torch.stack([to_unit(im) for im in rec[i:i + 64]])) for i in range(0, len(rec), 64)]
    return np.concatenate(pred), np.stack([(masks == k).any((1, 2)) for k in range(len(LABELS))], 1)


def balanced_accuracy(called: np.ndarray, truth: np.ndarray) -> float:
    if truth.all() or not truth.any():
        return float("nan")
    return float(0.5 * (called[truth].mean() + (~called[~truth]).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("segmenter")
    ap.add_argument("data")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pipeline", default=None, help="also judge this pipeline's stage-1 reconstructions of test")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    seg = load_model(a.segmenter, "segmenter", "cpu").model.eval()
    (pv, tv), (pt, tt) = (part_areas(seg, a.data, s, a.size) for s in ("val", "test"))
    pr, tr = recon_areas(seg, a.pipeline, a.data, "test", a.size) if a.pipeline else (None, None)
    out = {}
    for k, name in enumerate(LABELS[2:], start=2):  # not background, not the body
        t = max(THRESHOLDS, key=lambda x: np.nan_to_num(balanced_accuracy(pv[:, k] >= x, tv[:, k])))
        out[name] = {"threshold": t, "val": balanced_accuracy(pv[:, k] >= t, tv[:, k]),
                     "test": balanced_accuracy(pt[:, k] >= t, tt[:, k]), "test_share": float(tt[:, k].mean())}
        r = out[name]
        if pr is not None:
            r["test_reconstructions"] = balanced_accuracy(pr[:, k] >= t, tr[:, k])
        extra = f"  reconstructions {r['test_reconstructions']:.3f}" if pr is not None else ""
        print(f"{name:10s} t {t:4d} px  val {r['val']:.3f}  test {r['test']:.3f}{extra}  (in {r['test_share']:.0%} of test)")
    print(f"{len(pv)} val and {len(pt)} test images at {a.size} px")
    write_json(a.json, out)


if __name__ == "__main__":
    main()
