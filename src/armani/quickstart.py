"""`armani quickstart`: the main job on the embedded default dataset.

Stages run in order and each leaves a marker in the run folder, so a re-run skips what
is finished (`--fresh` starts over). For now the stages are: SynthFashion, a check of it,
a preview grid, and `summary.json`; training stages are added as they land.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .data.check import check_dataset
from .data.format import Index
from .data.make_synth import write_synth
from .data.preview import contact_sheet
from .progress import bar


@dataclass
class QuickstartConfig:
    out: Path = Path("runs/quickstart")
    n: int = 2000
    size: int = 64
    seed: int = 0
    fresh: bool = False
    quiet: bool = False


def run_quickstart(cfg: QuickstartConfig, log=print) -> dict:
    out = Path(cfg.out)
    if cfg.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    stages = summary.setdefault("stage_seconds", {})
    data = out / "data"
    settings = {"n": cfg.n, "size": cfg.size, "seed": cfg.seed}
    if summary.get("settings") not in (None, settings):
        raise ValueError(f"{out} was made with {summary['settings']}; pass --fresh to start over "
                         "with new settings, or choose another --out")
    summary["settings"] = settings

    def stage(name: str, fn) -> None:
        if name in stages:
            log(f"[{name}] done already ({stages[name]:.1f} s), skipped")
            return
        t0 = time.perf_counter()
        fn()
        stages[name] = round(time.perf_counter() - t0, 2)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        log(f"[{name}] {stages[name]:.1f} s")

    def synth() -> None:
        with bar(cfg.n, "synthfashion", "img", cfg.quiet) as pb:
            write_synth(data, cfg.n, cfg.size, cfg.seed, overwrite=True, progress=pb.update)

    def check() -> None:
        with bar(cfg.n, "check", "img", cfg.quiet) as pb:
            rep = check_dataset(data, progress=pb.update)
        if not rep.ok:
            raise RuntimeError("dataset check failed: " + "; ".join(rep.errors[:5]))
        summary["dataset"] = {"path": str(data), "samples": rep.samples, "splits": dict(rep.splits)}

    def preview() -> None:
        contact_sheet(data, n=16, split="train", out=out / "preview.png")
        holdout = Index(data, "test_holdout")
        if len(holdout):
            contact_sheet(data, n=8, split="test_holdout", out=out / "preview_holdout.png")
        summary["preview"] = str(out / "preview.png")

    stage("synth", synth)
    stage("check", check)
    stage("preview", preview)
    summary["total_seconds"] = round(sum(stages.values()), 2)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
