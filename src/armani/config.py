"""Configs: frozen dataclasses at the boundary, JSON presets in `armani/configs/`.

A config file is JSON: {"model": {...}, "train": {...}[, "loss": {...}]}; keys it leaves out keep the
preset's values, unknown keys are errors.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from .errors import MissingInput, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1000          # optimizer steps
    max_minutes: float | None = None
    batch_size: int = 32           # per process and micro-step
    grad_accum: int = 1            # micro-steps per optimizer step
    lr: float = 1e-3
    min_lr_ratio: float = 0.1      # cosine decay to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # "no", "bf16", or "auto": bf16 on CUDA, "no" on the CPU
    compile: str = "auto"          # torch.compile the model: "on", "off", or "auto": on CUDA for the
                                   # tasks that gain from it (the Transformer, the VQGAN)
    deterministic: bool = False    # deterministic CUDA kernels (slower), so that a run resumed after a
                                   # kill matches an uninterrupted one to the bit on a GPU as on the CPU
    report_to: str = "none"        # "none", "tensorboard" or "wandb": live dashboards (run/logs)
    max_bad_fraction: float = 0.001  # unreadable samples skipped up to this share of the data
    checkpoint_every: int = 200
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    workers: int = 0                # data loader processes (at most the machine's cores - 1)
    max_text_len: int = 64

    def __post_init__(self):
        for least, keys in ((1, ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "keep_last",
                                 "log_every", "max_text_len")), (0, ("warmup_steps", "workers", "seed"))):
            for k in keys:
                v = getattr(self, k)
                if not isinstance(v, int) or isinstance(v, bool) or v < least:
                    raise UserError(f"TrainConfig.{k} must be a whole number of at least {least}, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise UserError(f"TrainConfig.lr must be above 0, got {self.lr!r}")
        if self.max_minutes is not None and not self.max_minutes >= 0:
            raise UserError(f"TrainConfig.max_minutes must be 0 or more, or null, got {self.max_minutes!r}")
        for k, lo, hi in (("min_lr_ratio", 0, 1), ("max_bad_fraction", 0, 1)):
            if not lo <= getattr(self, k) <= hi:
                raise UserError(f"TrainConfig.{k} must lie in [{lo}, {hi}], got {getattr(self, k)!r}")
        for k, choices in (("mixed_precision", ("no", "bf16", "auto")), ("compile", ("on", "off", "auto")),
                           ("report_to", ("none", "tensorboard", "wandb"))):
            if getattr(self, k) not in choices:
                raise UserError(f"TrainConfig.{k} must be one of {', '.join(choices)}, got {getattr(self, k)!r}")


def from_dict(cls: type[T], data: dict[str, Any] | None, base: T | None = None) -> T:
    """Build dataclass `cls` from `data`, starting from `base` (or defaults); lists become tuples.
    Every value is checked against its field's type here, at the boundary, so a bad value in a
    config file names its key (UserError) instead of failing deep inside training."""
    data = dict(data or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        why = _type_error(hints.get(k), v)
        if why:
            raise UserError(f"{cls.__name__}.{k} must be {why}, got {v!r}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return dataclasses.replace(base, **data) if base is not None else cls(**data)


def _type_error(hint, v) -> str | None:
    """What `v` should be for the type `hint`, or None when it is fine (or the hint is not one of
    the simple kinds configs use: numbers, text, flags, sequences, optional ones of these)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        whys = [_type_error(a, v) for a in args if a is not type(None)]
        return None if any(w is None for w in whys) else " or ".join(w for w in whys if w) + (
            " or null" if type(None) in args else "")
    if hint is bool:
        return None if isinstance(v, bool) else "true or false"
    if hint is int:
        return None if isinstance(v, int) and not isinstance(v, bool) else "a whole number"
    if hint is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return None if ok else "a finite number"
    if hint is str:
        return None if isinstance(v, str) else "text"
    if origin is tuple or hint is tuple:
        if not isinstance(v, (list, tuple)):
            return "a list"
        inner = [a for a in args if a is not Ellipsis]
        if len(inner) == 1 or (len(args) == 2 and args[1] is Ellipsis):
            bad = [_type_error(inner[0], x) for x in v]
            return next((f"a list of {w}s" for w in bad if w), None)
        if inner and len(inner) != len(v):
            return f"a list of {len(inner)} values"
        return next((f"a list whose items are {w}" for w in (_type_error(a, x) for a, x in zip(inner, v)) if w), None)
    return None


def to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def preset_names(kind: str) -> list[str]:
    root = resources.files("armani") / "configs"
    return sorted(p.name[len(kind) + 1:-5] for p in root.iterdir() if p.name.startswith(kind + "-"))


def load_raw(kind: str, spec: str | os.PathLike | dict | None) -> dict[str, Any]:
    """A stage's config sections. `spec` is a preset name ("cpu", "paper"), a JSON file path, a
    dict of sections over a preset (`{"preset": "cpu", "model": {...}, "train": {...}}`, where
    "preset" may also be a file), or None (the CPU preset)."""
    spec = "cpu" if spec is None else spec
    if isinstance(spec, dict):
        return _over_preset(kind, dict(spec), "the config")
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise MissingInput(f"config file not found: {path}")
        try:
            user = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: invalid JSON ({e})") from None
        if not isinstance(user, dict):
            raise UserError(f"{path}: expected a JSON object")
        return _over_preset(kind, user, str(path))
    res = resources.files("armani") / "configs" / f"{kind}-{spec}.json"
    if not res.is_file():
        raise UserError(f"no {kind} preset {str(spec)!r}; presets: {', '.join(preset_names(kind))}")
    return json.loads(res.read_text())


def _over_preset(kind: str, user: dict, where: str) -> dict[str, Any]:
    base = load_raw(kind, user.pop("preset", "cpu"))
    for section in ("model", "train", "loss"):
        base[section] = {**base.get(section, {}), **(user.pop(section, None) or {})}
    if user:
        raise UserError(f"{where}: unknown sections {sorted(user)} (expected model, train, loss, preset)")
    return base


def stage_configs(kind: str, spec, model_cls: type[T], loss_cls: type | None = None,
                  train_overrides: dict | None = None) -> tuple[T, Any, TrainConfig]:
    """(model config, loss config or None, training config) of a stage from `spec` (see
    `load_raw`), with the training settings in `train_overrides` that are not None on top."""
    raw = load_raw(kind, spec)
    model_cfg = from_dict(model_cls, raw.get("model"))
    loss_cfg = from_dict(loss_cls, raw.get("loss")) if loss_cls is not None else None
    train = {k: v for k, v in (train_overrides or {}).items() if v is not None}
    return model_cfg, loss_cfg, from_dict(TrainConfig, {**raw.get("train", {}), **train})
