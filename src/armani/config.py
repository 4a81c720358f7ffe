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
    mixed_precision: str = "no"    # "no" or "bf16"
    report_to: str = "none"        # "none", "tensorboard" or "wandb": live dashboards (run/logs)
    max_bad_fraction: float = 0.001  # unreadable samples skipped up to this share of the data
    checkpoint_every: int = 200
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    workers: int = 0
    image_size: int = 64
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


def load_raw(kind: str, spec: str | os.PathLike | None) -> dict[str, Any]:
    """`spec` is a preset name ("cpu", "paper"), a JSON file path, or None (the CPU preset)."""
    spec = "cpu" if spec is None else spec
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise MissingInput(f"config file not found: {path}")
        try:
            user = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: invalid JSON ({e})") from None
        base = load_raw(kind, user.pop("preset", "cpu"))
        for section in ("model", "train", "loss"):
            base[section] = {**base.get(section, {}), **user.pop(section, {})}
        if user:
            raise UserError(f"{path}: unknown sections {sorted(user)} (expected model, train, loss, preset)")
        return base
    res = resources.files("armani") / "configs" / f"{kind}-{spec}.json"
    if not res.is_file():
        raise UserError(f"no {kind} preset {str(spec)!r}; presets: {', '.join(preset_names(kind))}")
    return json.loads(res.read_text())
