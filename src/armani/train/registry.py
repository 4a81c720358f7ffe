"""Every training task in one table. A new task is a module with a factory of the one
signature below and a line in `TASKS`; the command line (`armani train NAME`), the quickstart
and the experiment find it here.

A factory is `factory(source, config=None, *, maskclip=None, segmenter=None, **train_overrides)
-> (Task, TrainConfig)`: `source` is a dataset folder (or a token folder, for tasks that read
tokens), `config` a preset name, a JSON file or a dict of sections over a preset
(`armani.config.load_raw`), `maskclip` and `segmenter` trained runs or bundles (only those the
task lists in `parents`), and `train_overrides` training settings (seed, max_steps, ...; None
values are ignored).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:  # the command line reads TASKS at start-up: no torch until a task is made
    from ..config import TrainConfig
    from .loop import Task


@dataclass(frozen=True)
class ConfigFlag:
    """A command-line flag that sets one config value (`--fusion none` -> model.fusion)."""

    flag: str
    section: str
    key: str
    help: str
    choices: tuple[str, ...] | None = None
    const: str | None = None        # a switch that sets this value


@dataclass(frozen=True)
class TaskSpec:
    factory: str                    # "module:function" in armani.train, imported when the task is made
    help: str
    kind: str = ""                  # the bundle kind it trains (`Task.kind`); default: the task's name
    reads: str = "data"             # "data": a dataset folder; "tokens": a token folder
    parents: tuple[str, ...] = ()   # trained models it takes: "maskclip", "segmenter"
    flags: tuple[ConfigFlag, ...] = ()


TASKS: dict[str, TaskSpec] = {
    "segmenter": TaskSpec("tasks:segmenter_task", "the part segmenter"),
    "maskclip": TaskSpec("tasks:maskclip_task", "MaskCLIP (token-wise alignment)", parents=("segmenter",),
                         flags=(ConfigFlag("--global", "model", "loss", "train the pooled (global CLIP) baseline "
                                           "instead", const="global"),)),
    "vqgan": TaskSpec("stage1:vqgan_task", "stage 1: the cross-modal VQGAN (image tokenizer)",
                      parents=("maskclip", "segmenter"),
                      flags=(ConfigFlag("--fusion", "model", "fusion", "'none' trains the plain VQGAN codebook "
                                        "(baseline); default from the config", choices=("maskclip", "none")),)),
    "sketch-vq": TaskSpec("stage1:sketch_task", "the sketch tokenizer (VQ autoencoder on edge maps)", kind="vqgan"),
    "transformer": TaskSpec("stage2:transformer_task", "stage 2: the cross-modal Transformer on a token folder",
                            reads="tokens"),
    "judge": TaskSpec("judge:judge_task", "the attribute judge (category, colour, pattern, parts) on SynthFashion"),
}


def make_task(name: str, source: str | os.PathLike, config=None, *, maskclip: str | os.PathLike | None = None,
              segmenter: str | os.PathLike | None = None, **train_overrides) -> tuple[Task, TrainConfig]:
    """The task `name` of `TASKS` on `source`, with its config and training settings."""
    spec = TASKS.get(name)
    if spec is None:
        raise UserError(f"unknown training task {name!r}; tasks: {', '.join(TASKS)}")
    given = {"maskclip": maskclip, "segmenter": segmenter}
    extra = [k for k, v in given.items() if v is not None and k not in spec.parents]
    if extra:
        raise UserError(f"{name} takes no trained {extra[0]}")
    module, fn = spec.factory.split(":")
    factory = getattr(importlib.import_module(f"{__package__}.{module}"), fn)
    return factory(source, config, **given, **train_overrides)
