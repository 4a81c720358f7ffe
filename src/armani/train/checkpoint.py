"""A training run's checkpoints, `<run>/checkpoints/step-NNNNNNNN/`: each a usable model
bundle (`config.json` and the weights, as in `<run>/model`) and the state a resumed run
needs. Tensors are safetensors and the rest JSON; nothing is pickled.

    model.safetensors          the model's weights
    config.json, extra files   the bundle's config and the task's files (a tokenizer, ...)
    train-only.safetensors     weights trained beside the model but not part of it (a discriminator)
    optimizer.safetensors      the optimizer's tensors (its other state is in trainer.json)
    rng-rank{R}.safetensors    the random state of process R
    trainer.json               step, epoch, micro-batches into it, elapsed seconds, world size, optimizer

A checkpoint is written into a hidden staging folder and renamed into place when complete,
so a folder named step-* is always whole (`checkpoints` lists only those).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..formats.bundle import WEIGHTS
from ..formats.fsutil import install_dir

TRAIN_ONLY = "train-only.safetensors"
OPTIMIZER = "optimizer.safetensors"
TRAINER = "trainer.json"


def checkpoints(run: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first."""
    d = run / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step-*") if (p / TRAINER).is_file())


def staging(run: Path, step: int) -> tuple[Path, Path]:
    """The staging folder of step `step`'s checkpoint and the folder it becomes."""
    ck = run / "checkpoints"
    return ck / f".step-{step:08d}.tmp", ck / f"step-{step:08d}"


def save_rng(tmp: Path, rank: int) -> None:
    """This process's random state (CPU, and CUDA where there is one)."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state()
    save_file(out, str(tmp / f"rng-rank{rank}.safetensors"))


def restore_rng(ck: Path, rank: int) -> bool:
    """Process `rank`'s random state from checkpoint `ck`; False when it has none."""
    f = ck / f"rng-rank{rank}.safetensors"
    if not f.is_file():
        return False
    t = load_file(str(f))
    torch.set_rng_state(t["torch"])
    if "cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["cuda"])
    return True


def _optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def write_state(tmp: Path, weights: dict[str, torch.Tensor], train_only: dict[str, torch.Tensor],
                opt: torch.optim.Optimizer, bundle: dict, files: dict[str, str], position: dict) -> None:
    """The main process's part of a checkpoint in its staging folder: the weights (and the
    train-only ones), the optimizer, the bundle's config.json (`bundle`) and `files`, and
    trainer.json (`position` with the optimizer's JSON state)."""
    save_file(weights, str(tmp / WEIGHTS))
    if train_only:
        save_file(train_only, str(tmp / TRAIN_ONLY))
    tensors, meta = _optimizer_to_files(opt)
    save_file(tensors, str(tmp / OPTIMIZER))
    (tmp / "config.json").write_text(json.dumps(bundle, indent=2) + "\n")
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / TRAINER).write_text(json.dumps({**position, "optimizer": meta}, indent=2) + "\n")


def install(tmp: Path, final: Path, run: Path, keep_last: int) -> None:
    """The staged checkpoint into place, and all but the last `keep_last` removed."""
    install_dir(tmp, final)
    for old in checkpoints(run)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(ck: Path, prefix: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """A checkpoint's weights (the model's under `prefix`, with the train-only ones) and its
    trainer.json."""
    meta = json.loads((ck / TRAINER).read_text())
    state = {prefix + k: v for k, v in load_file(str(ck / WEIGHTS)).items()}
    if (ck / TRAIN_ONLY).is_file():
        state.update(load_file(str(ck / TRAIN_ONLY)))
    return state, meta


def restore_optimizer(opt: torch.optim.Optimizer, ck: Path, meta: dict) -> None:
    """The optimizer's state from checkpoint `ck` (its trainer.json read as `meta`)."""
    _optimizer_from_files(opt, load_file(str(ck / OPTIMIZER)), meta["optimizer"])
