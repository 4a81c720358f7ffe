"""The pipeline folder, the one module that reads and writes it: every model generation
needs, in one folder.

    armani.json      {"format": "armani-pipeline/1", "components": {name: folder},
                      "image_size", "max_text_len", "sampling", "weights_dtype",
                      "transformer_sha256", and what the exporter adds ("trained_on", ...)}
    tokenizer.json   the caption tokenizer
    README.md        the model card
    <name>/          a model bundle (`formats.bundle`) for each component in COMPONENTS

`armani export` and `armani quickstart` (as its `model/`) write one; a quickstart folder
stands for its `model/`. A command that takes one model of a kind (`find_model`) accepts a
bundle, a run, or a pipeline folder, whose component of that kind it then reads.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingInput, UserError
from .bundle import WEIGHTS, Bundle, atomic_dir, read_bundle, resolve_bundle, sha256_file, write_bundle
from .fsutil import atomic_write_text, inside

PIPELINE_FILE = "armani.json"
PIPELINE_FORMAT = "armani-pipeline/1"
TOKENIZER_FILE = "tokenizer.json"
# A pipeline's components and the bundle kind of each. The sketch tokenizer is a VQ
# autoencoder like stage 1 (kind "vqgan") in the role "sketch-vq".
COMPONENTS = {"transformer": "transformer", "vqgan": "vqgan", "sketch-vq": "vqgan", "maskclip": "maskclip",
              "segmenter": "segmenter"}
# Component names of files written before the sketch tokenizer was called by its role.
LEGACY_COMPONENTS = {"sketch": "sketch-vq"}


def pipeline_dir(path: str | os.PathLike) -> Path | None:
    """The pipeline folder `path` names: itself, or a quickstart folder's `model/`; else None."""
    p = Path(path)
    for d in (p, p / "model"):
        if (d / PIPELINE_FILE).is_file():
            return d
    return None


def read_pipeline_meta(pipe: Path) -> dict:
    """A pipeline folder's `armani.json`, checked, its components under their current names."""
    try:
        meta = json.loads((pipe / PIPELINE_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{pipe / PIPELINE_FILE}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != PIPELINE_FORMAT:
        raise UserError(f"{pipe}: not an armani pipeline (format "
                        f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if not isinstance(meta.get("components"), dict) or "vqgan" not in meta["components"] \
            or not isinstance(meta.get("max_text_len"), int):
        raise UserError(f"{pipe / PIPELINE_FILE}: needs 'components' (with a vqgan) and 'max_text_len'")
    meta["components"] = {LEGACY_COMPONENTS.get(k, k): v for k, v in meta["components"].items()}
    return meta


def component_dir(pipe: Path, name: str) -> Path:
    """A pipeline component's folder; `armani.json` may only name folders inside the pipeline."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise UserError(f"{pipe / PIPELINE_FILE}: component {name!r} must be a folder inside the pipeline")
    p = pipe / name
    if not inside(p, pipe):
        raise UserError(f"{pipe / PIPELINE_FILE}: component {name!r} leads outside the pipeline")
    return p


def find_model(path: str | os.PathLike, kind: str) -> Path:
    """The bundle directory of the `kind` model `path` names: a pipeline or quickstart folder's
    component of that kind, else a bundle or run (`resolve_bundle`)."""
    pipe = pipeline_dir(path)
    if pipe is None:
        return resolve_bundle(path)
    name = read_pipeline_meta(pipe)["components"].get(kind) if kind in COMPONENTS else None
    if not name:
        raise MissingInput(f"the pipeline at {pipe} has no {kind} model")
    return component_dir(pipe, name)


def load_model(path: str | os.PathLike, kind: str, device: str | torch.device = "cpu") -> Bundle:
    """The `kind` model `path` names (see `find_model`), checked and loaded."""
    return read_bundle(find_model(path, kind), kind, device)


@dataclass
class PipelineFolder:
    """A pipeline folder as read: its `armani.json`, its models and their bundles' configs."""
    path: Path
    meta: dict
    models: dict[str, nn.Module]    # component name -> model (the components it has, as read)
    configs: dict[str, dict]        # component name -> its bundle's config.json
    dirs: dict[str, Path]           # component name -> its bundle's folder
    tokenizer_file: Path


def read_pipeline(pipe: Path, device: str | torch.device = "cpu", skip: tuple[str, ...] = ()) -> PipelineFolder:
    """Every component of the pipeline folder `pipe` (but those in `skip`), checked and loaded."""
    meta = read_pipeline_meta(pipe)
    models, configs, dirs = {}, {}, {}
    for name, kind in COMPONENTS.items():
        folder = meta["components"].get(name)
        if folder and name not in skip:
            b = read_bundle(component_dir(pipe, folder), kind, device)
            models[name], configs[name], dirs[name] = b.model, b.meta, b.path
    return PipelineFolder(pipe, meta, models, configs, dirs, pipe / TOKENIZER_FILE)


def write_pipeline(out: str | os.PathLike, models: dict[str, nn.Module], save_tokenizer: Callable[[Path], None],
                   fields: dict, extra: dict, half: bool, card: Callable[[Path], str],
                   component_extra: dict[str, dict] | None = None) -> Path:
    """A pipeline folder at `out`, written atomically: a bundle per model (name -> model, of
    COMPONENTS; `component_extra` adds to a bundle's config.json), the caption tokenizer
    (`save_tokenizer(path)`), `armani.json` (the format, the name and components, `fields`,
    the weights' dtype and the Transformer's sha256, then `extra`) and the model card
    (`card(folder)`, called on the written folder). `half` stores float weights as float16."""
    with atomic_dir(out, "pipeline") as tmp:
        for name, m in models.items():
            (tmp / name).mkdir()
            write_bundle(tmp / name, m, COMPONENTS[name], extra=(component_extra or {}).get(name), half=half)
        save_tokenizer(tmp / TOKENIZER_FILE)
        meta = {"format": PIPELINE_FORMAT, "name": Path(out).name, "components": {k: k for k in models}, **fields,
                "weights_dtype": "float16" if half else "float32",
                "transformer_sha256": sha256_file(tmp / "transformer" / WEIGHTS), **extra}
        (tmp / PIPELINE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "README.md").write_text(card(tmp))
    return Path(out)


def record_figures(pipe: Path, measured: dict) -> None:
    """Merge figures (component -> figure -> value) into `armani.json`'s "measured"."""
    meta = json.loads((pipe / PIPELINE_FILE).read_text())
    merged = meta.get("measured") or {}
    for comp, figs in measured.items():
        merged.setdefault(comp, {}).update(figs)
    meta["measured"] = merged
    atomic_write_text(pipe / PIPELINE_FILE, json.dumps(meta, indent=2) + "\n")
