"""The one place that reads and writes weights.

A model bundle is a directory: `config.json` ({"format", "kind", "config", "preprocessing",
"parents"}) + `model.safetensors`. Parents are the bundles a model was trained with
(for example MaskCLIP's segmenter), each with the sha256 of its weights. Only
safetensors and JSON are ever read: no file is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import from_dict, to_dict

BUNDLE_FORMAT = "armani-model/1"
WEIGHTS = "model.safetensors"


def _registry() -> dict[str, tuple[type, type]]:
    from .models.judge import AttributeJudge, JudgeConfig
    from .models.maskclip import MaskCLIP, MaskCLIPConfig
    from .models.segmenter import Segmenter, SegmenterConfig
    from .models.transformer import CrossModalTransformer, TransformerConfig
    from .models.vqgan import VQGANConfig, VQModel
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
        raise ValueError(f"unknown model kind {kind!r}")
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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file through a temporary sibling and a rename: readers see the old or the new
    text, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder to fill: it replaces `path` when the block ends cleanly
    and is removed when it raises, so `path` is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_bundle(path: str | os.PathLike, model: nn.Module, kind: str, preprocessing: dict | None = None,
                parents: dict[str, str | os.PathLike] | None = None, extra: dict | None = None,
                files: dict[str, str] | None = None) -> Path:
    """Write a bundle atomically (a temporary sibling directory, then a rename)."""
    with atomic_dir(path) as tmp:
        save_file(state_tensors(model), str(tmp / WEIGHTS))
        meta = {**bundle_meta(kind, unwrap(model).cfg, preprocessing, parents), **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
    return Path(path)


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


PIPELINE_FILE = "armani.json"
# The pipeline component each bundle kind stands for when a command is given a whole pipeline.
KIND_COMPONENT = {"transformer": "transformer", "vqgan": "vqgan", "maskclip": "maskclip", "segmenter": "segmenter"}


def pipeline_dir(path: str | os.PathLike) -> Path | None:
    """The pipeline folder `path` names: itself, or a quickstart folder's `model/`; else None."""
    p = Path(path)
    for d in (p, p / "model"):
        if (d / PIPELINE_FILE).is_file():
            return d
    return None


def resolve_bundle(path: str | os.PathLike, kind: str | None = None) -> Path:
    """A bundle directory, a run directory (its `model/`, else its newest checkpoint), or, with
    `kind`, a pipeline or quickstart folder (its component of that kind)."""
    p = Path(path)
    pipe = pipeline_dir(p) if kind is not None else None
    if pipe is not None:
        parts = json.loads((pipe / PIPELINE_FILE).read_text()).get("components", {})
        name = parts.get(KIND_COMPONENT.get(kind, kind))
        if not name:
            raise FileNotFoundError(f"the pipeline at {pipe} has no {kind} model")
        return pipe / name
    if (p / "config.json").is_file() and (p / WEIGHTS).is_file():
        return p
    if (p / "model" / WEIGHTS).is_file():
        return p / "model"
    ckpts = sorted((p / "checkpoints").glob("step-*")) if (p / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / WEIGHTS).is_file() and (c / "config.json").is_file()]
    if ckpts:
        return ckpts[-1]
    raise FileNotFoundError(f"no model found at {p} (expected config.json + {WEIGHTS}, a run's model/ "
                            "or checkpoints/)")


@dataclass
class Bundle:
    model: nn.Module
    kind: str
    meta: dict
    path: Path


def load_bundle(path: str | os.PathLike, kind: str | None = None, device: str | torch.device = "cpu") -> Bundle:
    b = resolve_bundle(path, kind)
    try:
        meta = json.loads((b / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{b / 'config.json'}: invalid JSON ({e})") from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{b}: not an armani model bundle (format {meta.get('format')!r})")
    if kind is not None and meta["kind"] != kind:
        raise ValueError(f"{b} holds a {meta['kind']} model, expected {kind}")
    model = build(meta["kind"], meta["config"])
    state = load_file(str(b / WEIGHTS), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{b}: weights do not fit the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return Bundle(model.to(device).eval(), meta["kind"], meta, b)
