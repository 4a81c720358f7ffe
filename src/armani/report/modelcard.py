"""The model card (`README.md`) `armani export` writes into a pipeline folder: what the model
was trained on, its parts and sizes, what was measured, how to use it, its limits and licence.
It names no path of the machine that made it."""
from __future__ import annotations

import json
from pathlib import Path

MIT_NOTE = ("SynthFashion is rendered by this project's own code (MIT), so weights trained on it carry "
            "no dataset licence beyond the project's.")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def dataset_facts(transformer_meta: dict) -> dict | None:
    """What the stage-2 bundle's token folder says about its dataset: name, source, sample
    counts, licence (None when the folders are no longer where training left them)."""
    tokens = (transformer_meta.get("preprocessing") or {}).get("tokens")
    tmeta = _read_json(Path(tokens) / "tokens.json") if tokens else None
    data = _read_json(Path(tmeta["data"]) / "dataset.json") if tmeta and tmeta.get("data") else None
    if not data:
        return None
    return {k: data.get(k) for k in ("name", "source", "num_samples", "splits", "licence", "license", "synth")
            if data.get(k) is not None}


def last_training_record(bundle_dir: Path) -> dict | None:
    """The last line of the run's metrics.jsonl, when the bundle is a run's `model/`."""
    log = bundle_dir.parent / "metrics.jsonl"
    if bundle_dir.name != "model" or not log.is_file():
        return None
    last = None
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "step" in rec:
            last = rec
    return last


def _count(weights: Path) -> str:
    """Parameters in a safetensors file, read from its header."""
    from safetensors import safe_open
    n = 0
    with safe_open(str(weights), "np") as f:
        for k in f.keys():
            shape = f.get_slice(k).get_shape()
            n += int(__import__("math").prod(shape))
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def model_card(pipe: Path) -> str:
    """Markdown for the pipeline folder `pipe`, from its own files: armani.json (sampling,
    `trained_on`, `measured`) and each component's config.json (`trained_steps`,
    `last_training`) and weights."""
    from ..formats.bundle import WEIGHTS
    from ..formats.pipeline import read_pipeline_meta
    meta = read_pipeline_meta(pipe)
    data, metrics = meta.get("trained_on"), meta.get("measured")
    name = meta.get("name") or pipe.name
    size, s = meta["image_size"], meta["sampling"]
    lines = [f"# {name}: an armani garment generator", "",
             f"Generates {size} x {size} garment images from any mix of a caption, a sketch and part of a photo, "
             "with the two stages of ARMANI (ACM MM 2022): a VQGAN whose codebook is fused "
             "with the caption's words through MaskCLIP, and a Transformer over text, sketch and image tokens.",
             "", "## Trained on", ""]
    if data:
        splits = ", ".join(f"{k} {v:,}" for k, v in (data.get("splits") or {}).items())
        lines.append(f"- dataset `{data.get('name', '?')}` (source: {data.get('source', '?')}), "
                     f"{data.get('num_samples', 0):,} samples; splits: {splits or 'not recorded'}")
        if data.get("synth"):
            syn = data["synth"]
            lines.append(f"- SynthFashion settings: n {syn.get('n')}, size {syn.get('size')}, seed {syn.get('seed')}"
                         + (f", held-out pairs {', '.join(syn['holdout'])}" if syn.get("holdout") else ""))
    else:
        lines.append("- not recorded (the token folder the Transformer was trained on was not found at export)")
    lines += ["", "## Components", "", "| component | parameters | trained steps | last training loss |",
              "| --- | --- | --- | --- |"]
    for comp, sub in meta["components"].items():
        t = _read_json(pipe / sub / "config.json") or {}
        last = t.get("last_training") or {}
        loss = _fmt(last["loss"]) if isinstance(last.get("loss"), (int, float)) else "-"
        steps = t.get("trained_steps")
        lines.append(f"| {comp} | {_count(pipe / sub / WEIGHTS)} | {'-' if steps is None else steps} | {loss} |")
    if metrics:
        from .summary import headline_table_markdown, headlines
        heads = headlines(metrics)
        if heads:
            far = sum(h.far for h in heads)
            lines += ["", "## What it can do", "",
                      f"Headline figures against their references ({far} of {len(heads)} far from it; a ceiling is "
                      "the same figure for real images through stage 1, see `armani.report.summary`):", ""]
            lines += headline_table_markdown(heads)
    lines += ["", "## Measured", ""]
    if metrics:
        lines += ["| component | figure | value |", "| --- | --- | --- |"]
        for comp, figs in metrics.items():
            for k, v in (figs or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    lines.append(f"| {comp} | {k} | {_fmt(v)} |")
    else:
        lines.append("No evaluation was passed to the export. Measure with `armani eval colours --model DIR`, "
                     "`armani eval generate --model DIR --data DATA` and `armani eval recon`.")
    lines += ["", "## Use", "", "```python", "import armani",
              'model = armani.load("path/to/this/folder")',
              'images = armani.generate(model, text="a red T-shirt with a white logo", n=4, seed=0)  # (4, H, W, 3) uint8',
              "```", "", "```bash",
              'armani generate --model path/to/this/folder --text "a blue dress" --n 4 --seed 0',
              "armani demo --model path/to/this/folder", "```", "",
              f"Sampling defaults (`armani.json`): temperature {_fmt(s['temperature'])}, top-k {s.get('top_k') or 'off'}, "
              f"top-p {s.get('top_p') or 'off'}, guidance {_fmt(s['guidance'])}, partial images kept "
              f"{s.get('keep', 'exact')} (`--keep`).", "",
              "## Limits", "",
              f"- {size} px images; garments as the training data draws them.",
              "- It knows the words of its training captions only: others are spelt out in pieces that it reads "
              "as noise (`armani generate` and the demo name them).",
              "- Trained on synthetic renders, a model of SynthFashion does not generate photographs of real "
              "garments; train on your own data for that.", "",
              "## Licence", "",
              "The armani code is MIT. " + (MIT_NOTE if data and data.get("source") == "synthfashion" else
                                            "The weights are derived from the training data: its licence "
                                            f"({(data or {}).get('licence') or (data or {}).get('license') or 'not recorded'}) "
                                            "governs their use."), ""]
    return "\n".join(lines)


def write_card(pipe: str | Path) -> Path:
    """(Re)write `pipe/README.md`."""
    pipe = Path(pipe)
    (pipe / "README.md").write_text(model_card(pipe))
    return pipe / "README.md"


def record_measured(pipe: str | Path, measured: dict) -> None:
    """Merge figures (component -> figure -> value) into the folder's armani.json and its card."""
    from ..formats.pipeline import record_figures
    pipe = Path(pipe)
    record_figures(pipe, measured)
    write_card(pipe)
