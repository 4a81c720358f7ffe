"""The training loop every stage shares.

Built on Hugging Face Accelerate: the same code runs on one CPU, one GPU, or many
processes (`torchrun` / `accelerate launch`, DDP), with bf16 autocast and gradient
accumulation from the config. What it guarantees:

- data order is a pure function of (seed, epoch, position): each global batch is a slice
  of a seeded permutation, and each rank takes its own part of it, so a run with 2
  processes sees the same global batches as a run with 1 process and twice the batch;
- checkpoints (`train.checkpoint`) every `checkpoint_every` steps, written to a temporary directory and renamed,
  keeping the last `keep_last`; `resume=True` restores weights, optimizer, RNG state and
  data position, so a run killed at any moment and resumed ends with the same weights as
  one never interrupted;
- a non-finite loss stops the run (`TrainingDiverged`) and leaves the last good checkpoint;
- `max_steps` and `max_minutes` end the run cleanly with a final checkpoint and the model
  bundle in `<run>/model`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import TrainConfig, to_dict
from ..data.dataset import loader_workers
from ..errors import UserError
from ..formats.bundle import bundle_meta, save_bundle, state_tensors, unwrap
from ..formats.fsutil import acquire_lock, atomic_write_text, describe, output_kind, release_lock
from ..progress import bar
from .checkpoint import (
    checkpoints,
    install,
    read_state,
    restore_optimizer,
    restore_rng,
    save_rng,
    staging,
    write_state,
)

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Task:
    """What a stage plugs into the loop. Subclasses fill in the methods."""

    kind: str
    model_config: Any
    preprocessing: dict = field(default_factory=dict)
    parents: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # extra files for the model bundle (tokenizer.json)
    # Convolutional models train about 1.3x faster on this CPU (oneDNN) with NHWC tensors;
    # the loop converts the model and every 4-D float batch tensor when this is set.
    channels_last: bool = False
    # Compile the model on a GPU unless the config says otherwise (`train.compile: auto`).
    compile_on_gpu: bool = False
    # When set (e.g. "vq."), only the parameters under this prefix form the model bundle and
    # a checkpoint's model.safetensors; the rest (a discriminator) is kept for resuming only.
    export_prefix: str = ""
    # Written into the run's resolved config (e.g. loss weights, which perceptual network).
    describe: dict = field(default_factory=dict)
    # The optimizer step being computed; the loop sets it before each compute_loss.
    step: int = 0

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        raise NotImplementedError

    def compute_loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def on_checkpoint(self, model: nn.Module, step: int, run: Path) -> None:
        """Called on the main process after each checkpoint (e.g. to save sample grids)."""

    def batch_items(self, batch: dict) -> int:
        return int(next(iter(batch.values())).shape[0])


class GlobalBatchSampler(Sampler[list[int]]):
    """This rank's share of each global batch of epoch `epoch`, from micro-batch `start` on."""

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int, epoch: int,
                 start: int, per_epoch: int):
        self.n, self.b, self.world, self.rank = n, batch_size, world, rank
        self.seed, self.epoch, self.start, self.per_epoch = seed, epoch, start, per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        gb = self.b * self.world
        for m in range(self.start, self.per_epoch):
            lo = m * gb + self.rank * self.b
            yield perm[lo:lo + self.b].tolist()

    def __len__(self) -> int:
        return self.per_epoch - self.start


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, t)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _enough_gpus() -> bool:
    """Whether every process of this machine gets a GPU of its own. With more processes than
    GPUs (torchrun --nproc_per_node 4 on a 1-GPU machine) all of them train on the CPU with
    gloo, with a warning, instead of failing on a missing device."""
    if not torch.cuda.is_available():
        return False
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > torch.cuda.device_count():
        log.warning("%d processes on this machine and %d GPU(s): training on the CPU instead", local,
                    torch.cuda.device_count())
        return False
    return True


@contextmanager
def deterministic_kernels(on: bool):
    """With `on`, deterministic algorithms for the duration (cuDNN without autotuning, cuBLAS
    with a fixed workspace, a warning for any op that has no deterministic kernel); the
    process's earlier settings come back afterwards. The CPU kernels are deterministic
    already."""
    if not on:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read at cuBLAS's first use
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


@dataclass
class FitResult:
    steps: int
    seconds: float
    stopped_by: str
    last_loss: float | None
    model_dir: Path


@dataclass
class _Position:
    """Where a run is: optimizer steps, epoch and micro-batches into it, time, what is logged."""

    step: int = 0
    epoch: int = 0
    micro: int = 0
    elapsed: float = 0.0
    t0: float = 0.0
    last_saved: int = 0
    stopped_by: str = "max_steps"
    last_loss: float | None = None
    sums: dict = field(default_factory=dict)
    hits: dict = field(default_factory=dict)   # micro-steps that reported each term (some run every N steps)
    seen: int = 0
    t_log: float = 0.0


TRACKERS = {"none": None, "tensorboard": ("tensorboard", "dashboards"), "wandb": ("wandb", "wandb")}


def check_tracker(name: str) -> None:
    """A clear error when the dashboard asked for is unknown or its package is missing."""
    if name not in TRACKERS:
        raise UserError(f"report_to must be one of {', '.join(TRACKERS)}, got {name!r}")
    if TRACKERS[name] is None:
        return
    module, extra = TRACKERS[name]
    import importlib.util
    if importlib.util.find_spec(module) is None:
        hint = f"pip install -e '.[{extra}]'" if extra != "wandb" else "pip install wandb"
        raise UserError(f"--report-to {name} needs the {module} package: {hint}")


def _flat_scalars(d: dict, prefix: str = "") -> dict:
    """Nested config -> {"train/lr": 0.001, ...}, numbers, strings and booleans only (what the
    dashboards' hyperparameter tables take)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_scalars(v, key + "/"))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        elif isinstance(v, (list, tuple)):
            out[key] = str(list(v))
    return out


def _logged_step(line: str) -> float:
    """The step of one metrics.jsonl line; a torn or foreign line (a kill mid-write) counts as
    after every checkpoint, so resuming drops it."""
    try:
        rec = json.loads(line)
        return float(rec["step"]) if isinstance(rec, dict) and isinstance(rec.get("step"), int) else math.inf
    except ValueError:
        return math.inf


def check_run_folder(run: Path, kind: str, model: dict, resume: bool) -> None:
    """Refuse (UserError) a run folder that is not a new or empty folder or a run of this
    task: another kind of armani output (a dataset, a bundle inside a pipeline), files of the
    user's, a run of another model, or, to resume, a run of another model config."""
    if run.is_symlink() or (run.exists() and not run.is_dir()):
        raise UserError(f"--out {run} is {describe(run)}; give a folder for the run")
    if not run.exists():
        return
    if output_kind(run) != "run":
        if any(run.iterdir()):
            raise UserError(f"--out {run} holds {describe(run)}, not an armani training run; choose a new or "
                            "empty folder")
        return
    old = json.loads((run / "config.json").read_text())
    if old["kind"] != kind:
        raise UserError(f"--out {run} holds a {old['kind']} run; this trains a {kind}: choose another --out")
    if checkpoints(run) and not resume:
        raise UserError(f"{run} already holds a run; pass --resume to continue it, or choose another --out")
    theirs = old.get("model") if isinstance(old.get("model"), dict) else {}
    differ = sorted(k for k in model if k in theirs and theirs[k] != model[k])
    if resume and checkpoints(run) and differ:
        raise UserError(f"--resume: the run in {run} has another model config ({', '.join(differ[:4])}: "
                        f"{', '.join(repr(theirs[k]) for k in differ[:4])}); resume it with the config it was "
                        "started with")


class Trainer:
    def __init__(self, task: Task, cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                 quiet: bool = False, extra_config: dict | None = None):
        from accelerate import Accelerator

        self.task, self.cfg, self.run, self.quiet = task, cfg, Path(run_dir), quiet
        if cfg.mixed_precision not in ("no", "bf16", "auto"):
            raise UserError("mixed_precision must be 'no', 'bf16' or 'auto'")
        if cfg.compile not in ("on", "off", "auto"):
            raise UserError("compile must be 'on', 'off' or 'auto'")
        check_tracker(cfg.report_to)
        tracking = {} if cfg.report_to == "none" else {"log_with": cfg.report_to,
                                                       "project_dir": str(self.run / "logs")}
        gpu = _enough_gpus()
        precision = ("bf16" if gpu else "no") if cfg.mixed_precision == "auto" else cfg.mixed_precision
        self.compile = cfg.compile == "on" or (cfg.compile == "auto" and gpu and task.compile_on_gpu)
        # Accelerate allows one precision per process, so a process that trains one stage in fp32
        # and the next in bf16 (the quickstart on a CPU with AMX) would fail: on the CPU, bf16
        # autocast is applied here instead (`_micro_step`), the same autocast Accelerate uses.
        self.cpu_bf16 = precision == "bf16" and not gpu
        self.acc = Accelerator(mixed_precision="no" if self.cpu_bf16 else precision, cpu=not gpu, **tracking)
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self._locked, refused = False, None
        if self.acc.is_main_process:  # before anything is written: the folder is this run's, and ours alone
            try:
                acquire_lock(self.run)
                self._locked = True
                check_run_folder(self.run, task.kind, to_dict(task.model_config), resume)
            except UserError as e:
                refused = e
                self.close()
        if not self._all(refused is None):
            raise refused or UserError(f"{self.run}: refused by the main process")
        self.resume_from = checkpoints(self.run)[-1] if (resume and checkpoints(self.run)) else None
        if self.acc.is_main_process:
            self.run.mkdir(parents=True, exist_ok=True)
            if self.resume_from is None:  # a fresh start keeps no log of an earlier, unsaved attempt
                (self.run / "metrics.jsonl").unlink(missing_ok=True)
            resolved = {"kind": task.kind, "model": to_dict(task.model_config), "train": to_dict(cfg),
                        **task.describe, "world_size": self.world, **(extra_config or {})}
            (self.run / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
        self.acc.wait_for_everyone()

    # -- state -------------------------------------------------------------------------
    def _save(self, model, opt, step: int, epoch: int, micro: int, elapsed: float) -> None:
        tmp, final = staging(self.run, step)
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        save_rng(tmp, self.rank)
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            weights, rest = self._split(state_tensors(model))
            # A checkpoint is a usable bundle too: parents and extra files as in model/.
            bundle = bundle_meta(self.task.kind, self.task.model_config, self.task.preprocessing, self.task.parents)
            write_state(tmp, weights, rest, opt, bundle, self.task.files,
                        {"step": step, "epoch": epoch, "micro": micro, "elapsed": elapsed, "world_size": self.world})
            install(tmp, final, self.run, self.cfg.keep_last)
            was_training = model.training
            self.task.on_checkpoint(unwrap(model), step, self.run)
            model.train(was_training)
            self._log_sample_images(step)
        self.acc.wait_for_everyone()

    def _log_sample_images(self, step: int) -> None:
        """The sample grids the task wrote for this checkpoint, to the dashboards."""
        if self.cfg.report_to == "none":
            return
        from ..formats.images import read_image
        for png in sorted((self.run / "samples").glob(f"step-{step:08d}*.png")):
            img = read_image(png)[None]
            tag = "samples" + png.stem[len(f"step-{step:08d}"):]
            for tracker in self.acc.trackers:
                if tracker.name == "tensorboard":
                    tracker.log_images({tag: img}, step=step, dataformats="NHWC")
                else:
                    tracker.log_images({tag: list(img)}, step=step)

    def _split(self, state: dict) -> tuple[dict, dict]:
        p = self.task.export_prefix
        if not p:
            return state, {}
        return ({k[len(p):]: v for k, v in state.items() if k.startswith(p)},
                {k: v for k, v in state.items() if not k.startswith(p)})

    def _exported(self, model) -> nn.Module:
        m = unwrap(model)
        return m.get_submodule(self.task.export_prefix.rstrip(".")) if self.task.export_prefix else m

    def _load(self, model, opt) -> tuple[int, int, int, float]:
        ck = self.resume_from
        state, meta = read_state(ck, self.task.export_prefix)
        unwrap(model).load_state_dict(state)
        restore_optimizer(opt, ck, meta)
        if meta["world_size"] != self.world or not restore_rng(ck, self.rank):
            log.warning("resuming with %d processes from a run with %d: random state is reseeded",
                        self.world, meta["world_size"])
            torch.manual_seed(self.cfg.seed + 7919 * self.rank + meta["step"])
        if self.acc.is_main_process:  # drop log lines written after the checkpoint
            mpath = self.run / "metrics.jsonl"
            if mpath.is_file():
                keep = [ln for ln in mpath.read_text(errors="replace").splitlines() if _logged_step(ln) <= meta["step"]]
                atomic_write_text(mpath, "".join(k + "\n" for k in keep))
        return meta["step"], meta["epoch"], meta["micro"], meta["elapsed"]

    def _to_device(self, v):
        if not torch.is_tensor(v):
            return v
        v = v.to(self.acc.device, non_blocking=True)
        if self.task.channels_last and v.ndim == 4 and v.is_floating_point():
            v = v.contiguous(memory_format=torch.channels_last)
        return v

    def _all(self, flag: bool) -> bool:
        """True when `flag` holds on every rank."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.acc.device)
        return bool(self.acc.reduce(t, reduction="sum").item() == self.world) if self.world > 1 else flag

    # -- the loop ----------------------------------------------------------------------
    def fit(self) -> FitResult:
        try:
            with deterministic_kernels(self.cfg.deterministic):
                return self._fit()
        finally:
            self.close()

    def close(self) -> None:
        """Give back the run folder's lock (`fit` does when it ends)."""
        if self._locked:
            self._locked = False
            release_lock(self.run)

    def _fit(self) -> FitResult:
        cfg, acc = self.cfg, self.acc
        model, opt, at = self._start()
        ds = self.task.train_dataset()
        if hasattr(ds, "max_bad_fraction"):
            ds.max_bad_fraction = cfg.max_bad_fraction
        gb = cfg.batch_size * self.world
        per_epoch = (len(ds) // gb) // cfg.grad_accum * cfg.grad_accum
        if per_epoch == 0:
            raise UserError(f"the dataset has {len(ds)} samples, fewer than one global batch "
                            f"({gb} x {cfg.grad_accum} accumulation steps)")
        self._metrics = open(self.run / "metrics.jsonl", "a") if acc.is_main_process else None
        at.t0 = time.perf_counter() - at.elapsed
        at.t_log = time.perf_counter()
        pbar = bar(cfg.max_steps, f"train {self.task.kind}", "step", self.quiet or not acc.is_main_process)
        pbar.update(at.step)
        model.train()
        try:
            while at.step < cfg.max_steps and at.stopped_by == "max_steps":
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(at.epoch)
                self._epoch(model, opt, ds, per_epoch, at, pbar)
                if at.micro >= per_epoch:
                    at.epoch, at.micro = at.epoch + 1, 0
            self._finish(model, opt, at)
        finally:
            pbar.close()
            if self._metrics:
                self._metrics.close()
            if cfg.report_to != "none":
                acc.end_training()
        return FitResult(at.step, round(at.elapsed, 2), at.stopped_by, at.last_loss, self.run / "model")

    def _start(self) -> tuple[nn.Module, torch.optim.Optimizer, _Position]:
        """The model and optimizer, fresh (seeded) or restored from the last checkpoint."""
        cfg, acc = self.cfg, self.acc
        torch.manual_seed(cfg.seed)
        model = self.task.build_model()
        if self.task.channels_last:
            model = model.to(memory_format=torch.channels_last)
        fused = self.acc.device.type == "cuda"  # one kernel for the whole update on a GPU
        if fused:
            model = model.to(self.acc.device)
        opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                                **({"fused": True} if fused else {}))
        torch.manual_seed(cfg.seed + 7919 * self.rank)
        at = _Position()
        if self.resume_from is not None:
            at.step, at.epoch, at.micro, at.elapsed = self._load(model, opt)
            log.info("resumed from %s (step %d)", self.resume_from, at.step)
        at.last_saved = at.step
        model, opt = acc.prepare(model, opt)
        if self.compile:  # saved weights carry no prefix: every save goes through `unwrap`
            model = torch.compile(model)
        if cfg.report_to != "none":
            resolved = json.loads((self.run / "config.json").read_text())
            acc.init_trackers(self.run.name or self.task.kind, config=_flat_scalars(resolved))
        return model, opt, at

    def _epoch(self, model, opt, ds, per_epoch: int, at: _Position, pbar) -> None:
        """The rest of epoch `at.epoch`, or up to the step limit or the time cap."""
        cfg = self.cfg
        sampler = GlobalBatchSampler(len(ds), cfg.batch_size, self.world, self.rank, cfg.seed, at.epoch,
                                     at.micro, per_epoch)
        # Its own generator: creating a loader must not draw from the global RNG, or a
        # resumed run's random stream would drift from the uninterrupted one.
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=loader_workers(cfg.workers),
                            generator=torch.Generator().manual_seed(cfg.seed + at.epoch))
        pending = 0
        for batch in loader:
            batch = {k: self._to_device(v) for k, v in batch.items()}
            self._micro_step(model, batch, at, sync=pending == cfg.grad_accum - 1)
            pending += 1
            if pending < cfg.grad_accum:
                continue
            pending = 0
            lr = lr_at(at.step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            if cfg.grad_clip:
                self.acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            at.step += 1
            pbar.update(1)
            if at.step % cfg.log_every == 0 or at.step == cfg.max_steps:
                self._log_row(at, lr, ds, pbar)
            out_of_time = cfg.max_minutes is not None and (time.perf_counter() - at.t0) >= 60 * cfg.max_minutes
            if self.world > 1:
                out_of_time = not self._all(not out_of_time)
            if at.step % cfg.checkpoint_every == 0 and at.step < cfg.max_steps and not out_of_time:
                self._save(model, opt, at.step, at.epoch, at.micro, time.perf_counter() - at.t0)
                at.last_saved = at.step
            if out_of_time:
                at.stopped_by = "max_minutes"
                return
            if at.step >= cfg.max_steps:
                return

    def _micro_step(self, model, batch: dict, at: _Position, sync: bool) -> None:
        """Loss and gradients of one micro-batch (DDP's all-reduce only when `sync`)."""
        ctx = self.acc.no_sync(model) if (not sync and self.world > 1) else nullcontext()
        self.task.step = at.step
        with ctx, self.acc.autocast(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16):
            losses = self.task.compute_loss(model, batch)
        loss = losses["loss"]
        if not self._all(bool(torch.isfinite(loss.detach()).all())):
            good = checkpoints(self.run)
            raise TrainingDiverged(
                f"loss became {float(loss.detach()):.4g} at step {at.step}; stopped. Last good checkpoint: "
                f"{good[-1] if good else 'none'}. Try a lower learning rate or bf16 off.")
        with ctx:
            self.acc.backward(loss / self.cfg.grad_accum)
        at.micro += 1
        at.seen += self.task.batch_items(batch) * self.world
        for k, v in losses.items():
            at.sums[k] = at.sums.get(k, 0.0) + float(v.detach())
            at.hits[k] = at.hits.get(k, 0) + 1

    def _log_row(self, at: _Position, lr: float, ds, pbar) -> None:
        """A metrics.jsonl line (and the dashboards): the means since the last line."""
        dt = time.perf_counter() - at.t_log
        row = {"step": at.step, "lr": lr, "items_per_s": round(at.seen / max(dt, 1e-9), 2),
               "elapsed_s": round(time.perf_counter() - at.t0, 2),
               **{k: v / at.hits[k] for k, v in at.sums.items()}}
        if getattr(ds, "bad", None):
            row["bad_samples"] = len(ds.bad)
        at.last_loss = row.get("loss")
        if self._metrics:
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
        if self.cfg.report_to != "none":
            self.acc.log({("train/" if k not in ("lr", "items_per_s", "elapsed_s") else "") + k: v
                          for k, v in row.items() if k != "step"}, step=at.step)
        pbar.set_postfix(loss=f"{row.get('loss', 0):.4f}", ips=f"{row['items_per_s']:.0f}")
        at.sums, at.hits, at.seen, at.t_log = {}, {}, 0, time.perf_counter()

    def _finish(self, model, opt, at: _Position) -> None:
        """The last checkpoint, the ranks' agreement (several processes) and the model bundle."""
        acc = self.acc
        at.elapsed = time.perf_counter() - at.t0
        if at.step != at.last_saved or not checkpoints(self.run):
            self._save(model, opt, at.step, at.epoch, at.micro, at.elapsed)
        if self.world > 1:  # every rank must end with the same weights; record the proof
            sums = torch.stack([p.detach().double().sum() for p in unwrap(model).parameters()]).sum()
            every = acc.gather(sums.reshape(1).to(acc.device)).cpu().tolist()
            if acc.is_main_process:
                (self.run / "ranks.json").write_text(json.dumps({"param_checksums": every}) + "\n")
        if acc.is_main_process:
            save_bundle(self.run / "model", self._exported(model), self.task.kind, self.task.preprocessing,
                        self.task.parents, extra={"trained_steps": at.step}, files=self.task.files)
        acc.wait_for_everyone()
