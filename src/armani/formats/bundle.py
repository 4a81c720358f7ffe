"""Model bundles, the one place that reads and writes a model's weights.

A model bundle is a directory: `config.json` ({"format", "kind", "config", "preprocessing",
"parents"}) + `model.safetensors`. Parents are the bundles a model was trained with
(for example MaskCLIP's segmenter), each with the sha256 of its weights. Only
safetensors and JSON are ever read: no file is unpickled. `read_bundle` reads the bundle
in a directory, `load_bundle` the one a bundle or run directory names; a pipeline folder
(`formats.pipeline`) holds one bundle per component, and a training checkpoint
(`train.checkpoint`) is a bundle with the state of the run beside it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import from_dict, to_dict
from ..errors import MissingInput, UserError
from .fsutil import check_target, drop_staging, install_dir, staging_dir, target_lock

BUNDLE_FORMAT = "armani-model/1"
WEIGHTS = "model.safetensors"


def _registry() -> dict[str, tuple[type, type]]:
    from ..models.judge import AttributeJudge, JudgeConfig
    from ..models.maskclip import MaskCLIP, MaskCLIPConfig
    from ..models.segmenter import Segmenter, SegmenterConfig
    from ..models.transformer import CrossModalTransformer, TransformerConfig
    from ..models.vqgan import VQGANConfig, VQModel
    return {"segmenter": (SegmenterConfig, Segmenter), "maskclip": (MaskCLIPConfig, MaskCLIP),
            "vqgan": (VQGANConfig, VQModel), "transformer": (TransformerConfig, CrossModalTransformer),
            "judge": (JudgeConfig, AttributeJudge)}


# Config keys added after bundles were first written, with the value an older bundle that
# lacks the key was trained with (its weights fit that value, not the new default).
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "vqgan": {"fusion_mode": "legacy"},
}


def build(kind: str, config: dict[str, Any] | Any) -> nn.Module:
    kinds = _registry()
    if kind not in kinds:
        raise UserError(f"unknown model kind {kind!r}")
    cfg_cls, model_cls = kinds[kind]
    if not isinstance(config, cfg_cls):
        config = {**LEGACY_DEFAULTS.get(kind, {}), **config}
    cfg = config if isinstance(config, cfg_cls) else from_dict(cfg_cls, config)
    return model_cls(cfg)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP/FSDP/compile wrappers, so saved keys carry no prefixes."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in unwrap(model).state_dict().items()}


@contextmanager
def atomic_dir(path: str | os.PathLike, kind: str | tuple[str, ...]) -> Iterator[Path]:
    """A staging folder beside `path` to fill: it replaces `path` when the block ends cleanly
    (the old copy removed only once the new one is in; see `fsutil`) and is removed when it
    raises, so `path` is never left half-written or missing. `path` must be new, empty or
    armani output of `kind` (`fsutil.KIND_NAMES`), else nothing is written (UserError); the
    target's lock is held throughout, so a second writer is refused (`fsutil.Busy`)."""
    with target_lock(path):
        check_target(path, kind)
        tmp = staging_dir(path)
        try:
            yield tmp
            install_dir(tmp, path)
        except BaseException:
            drop_staging(tmp)
            raise


def save_bundle(path: str | os.PathLike, model: nn.Module, kind: str, preprocessing: dict | None = None,
                parents: dict[str, str | os.PathLike] | None = None, extra: dict | None = None,
                files: dict[str, str] | None = None) -> Path:
    """Write a bundle atomically (a temporary sibling directory, then a rename)."""
    with atomic_dir(path, "model") as tmp:
        write_bundle(tmp, model, kind, preprocessing, parents, extra)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
    return Path(path)


def write_bundle(d: Path, model: nn.Module, kind: str, preprocessing: dict | None = None,
                 parents: dict[str, str | os.PathLike] | None = None, extra: dict | None = None,
                 half: bool = False) -> None:
    """A bundle's two files in the existing directory `d` (a staging folder of `atomic_dir`);
    `half` stores float weights as float16."""
    state = state_tensors(model)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(d / WEIGHTS))
    meta = {**bundle_meta(kind, unwrap(model).cfg, preprocessing, parents), **(extra or {})}
    (d / "config.json").write_text(json.dumps(meta, indent=2) + "\n")


def bundle_meta(kind: str, config: Any, preprocessing: dict | None = None,
                parents: dict[str, str | os.PathLike] | None = None) -> dict:
    """The `config.json` of a bundle (or of a checkpoint, which is a bundle too)."""
    return {"format": BUNDLE_FORMAT, "kind": kind, "config": to_dict(config),
            "preprocessing": preprocessing or {}, "parents": parent_records(parents or {})}


def parent_records(parents: dict[str, str | os.PathLike]) -> dict[str, dict[str, str]]:
    out = {}
    for name, p in parents.items():
        b = resolve_bundle(p)
        out[name] = {"path": str(b), "sha256": sha256_file(b / WEIGHTS)}
    return out


def resolve_bundle(path: str | os.PathLike) -> Path:
    """A bundle directory, or a run directory (its `model/`, else its newest checkpoint).
    Pipeline and quickstart folders are found by `formats.pipeline.find_model`."""
    p = Path(path)
    if (p / "config.json").is_file() and (p / WEIGHTS).is_file():
        return p
    if (p / "model" / WEIGHTS).is_file():
        return p / "model"
    ckpts = sorted((p / "checkpoints").glob("step-*")) if (p / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / WEIGHTS).is_file() and (c / "config.json").is_file()]
    if ckpts:
        return ckpts[-1]
    raise MissingInput(f"no model found at {p} (expected config.json + {WEIGHTS}, a run's model/ "
                            "or checkpoints/)")


# Plausible sizes of a model config's numbers, checked before anything is built (building
# tens of thousands of layers, even on the meta device, takes minutes). Far above any model
# armani trains; a config beyond them is damaged or hostile.
MAX_DEPTH = 256        # layers, blocks, levels
MAX_SIZE = 1 << 20     # widths, vocabularies, codebooks, image sides, sequence lengths


def implausible(config: dict) -> str | None:
    """Why a model config's numbers cannot describe a real model (None when they can):
    negative sizes, zero heads, depths or sizes beyond MAX_DEPTH and MAX_SIZE."""
    for key, v in config.items():
        vals = v if isinstance(v, list) else [v]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals) or not vals:
            continue
        if any(not math.isfinite(x) for x in vals):
            return f"{key} is not finite"
        if any(x < 0 for x in vals) and key not in _SIGNED:
            return f"{key} is negative ({v})"
        deep = "layers" in key or key in ("blocks",)
        if deep and any(x > MAX_DEPTH for x in vals) or isinstance(v, list) and len(v) > 32:
            return f"{key} is {v}, more than a model of {MAX_DEPTH} layers"
        if any(x > MAX_SIZE for x in vals) and key not in _SIGNED:
            return f"{key} is {v}, over {MAX_SIZE:,}"
        if key.endswith("heads") and any(x < 1 for x in vals):
            return f"{key} must be at least 1"
        if (key in ("channels", "image_size", "patch", "num_codes", "code_dim", "z_channels", "vocab_size")
                or key.endswith("width")) and any(x == 0 for x in vals) and not key.startswith("clip_"):
            return f"{key} must be at least 1"
    return None


_SIGNED = ("text_eos",)  # config numbers that may be negative (-1: none)


def _parents(rec, cfg_file: Path) -> dict[str, dict[str, str]]:
    """A bundle's `parents`: name -> {"path", "sha256"} strings; UserError for another shape."""
    rec = {} if rec is None else rec
    if not isinstance(rec, dict) or not all(isinstance(v, dict) and isinstance(v.get("path"), str)
                                            and isinstance(v.get("sha256", ""), str) for v in rec.values()):
        raise UserError(f"{cfg_file}: 'parents' must map names to {{\"path\": ..., \"sha256\": ...}}")
    return rec


@dataclass
class Bundle:
    model: nn.Module
    kind: str
    meta: dict
    path: Path


def weight_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the data; a
    truncated or foreign file is a ValueError naming it."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as e:  # SafetensorError, OSError: a damaged or foreign file
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def load_bundle(path: str | os.PathLike, kind: str | None = None, device: str | torch.device = "cpu") -> Bundle:
    """The bundle at `path` (a bundle directory or a run, see `resolve_bundle`), read by
    `read_bundle`."""
    return read_bundle(resolve_bundle(path), kind, device)


def read_bundle(b: Path, kind: str | None = None, device: str | torch.device = "cpu") -> Bundle:
    """The bundle in directory `b`, checked before anything large is allocated: its config
    must be JSON with a kind (`kind`, when given) and a config, and its weights' header must
    match the model the config describes (built on the meta device first, so a config
    claiming a huge model costs no memory)."""
    cfg_file = b / "config.json"
    if not (cfg_file.is_file() and (b / WEIGHTS).is_file()):  # missing, or not a readable file (a link loop)
        raise MissingInput(f"no model bundle at {b} (expected config.json + {WEIGHTS})")
    try:
        meta = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{cfg_file}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise UserError(f"{b}: not an armani model bundle (format {got!r})")
    if not isinstance(meta.get("kind"), str) or not isinstance(meta.get("config"), dict):
        raise UserError(f"{cfg_file}: needs a string 'kind' and a 'config' object")
    if kind is not None and meta["kind"] != kind:
        raise UserError(f"{b} holds a {meta['kind']} model, expected {kind}")
    meta["parents"] = _parents(meta.get("parents"), cfg_file)
    if not isinstance(meta.setdefault("preprocessing", {}), dict):
        raise UserError(f"{cfg_file}: 'preprocessing' must be an object")
    problem = implausible(meta["config"])
    if problem:
        raise UserError(f"{cfg_file}: bad model config ({problem})")
    shapes = weight_shapes(b / WEIGHTS)
    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in build(meta["kind"], meta["config"]).state_dict().items()}
    except (TypeError, ValueError, KeyError, ZeroDivisionError, RuntimeError, AssertionError, AttributeError) as e:
        raise UserError(f"{cfg_file}: bad model config ({type(e).__name__}: {e})") from None
    wrong = [f"{k} {shapes[k]} (config: {want[k]})" for k in want if k in shapes and shapes[k] != want[k]]
    missing, unexpected = [k for k in want if k not in shapes], [k for k in shapes if k not in want]
    if wrong or missing or unexpected:
        raise UserError(f"{b / WEIGHTS}: weights do not fit {cfg_file.name} (shape mismatch {wrong[:3]}, "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]})")
    model = build(meta["kind"], meta["config"])
    state = load_file(str(b / WEIGHTS), device=str(device))
    model.load_state_dict(state)
    return Bundle(model.to(device).eval(), meta["kind"], meta, b)
