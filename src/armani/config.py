"""Configs: frozen dataclasses at the boundary, JSON presets in `armani/configs/`.

A config file is JSON: {"model": {...}, "train": {...}[, "loss": {...}]}; keys it leaves out keep the
preset's values, unknown keys are errors.
"""
from __future__ import annotations

import dataclasses
import json
import os
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


def from_dict(cls: type[T], data: dict[str, Any] | None, base: T | None = None) -> T:
    """Build dataclass `cls` from `data`, starting from `base` (or defaults); lists become tuples."""
    data = dict(data or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return dataclasses.replace(base, **data) if base is not None else cls(**data)


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
