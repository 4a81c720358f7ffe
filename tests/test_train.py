from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from conftest import REPO
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from armani.cli import main
from armani.config import TrainConfig
from armani.train.checkpoint import checkpoints
from armani.train.loop import Task, Trainer, TrainingDiverged


@dataclass(frozen=True)
class ToyConfig:
    width: int = 4


class ToyModel(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.lin = nn.Linear(cfg.width, 8)
        self.drop = nn.Dropout(0.2)  # random: resuming must restore the RNG too
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.lin(x)))).squeeze(-1)


class ToyData(Dataset):
    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


@dataclass
class ToyTask(Task):
    nan_at: int | None = None
    calls: int = 0

    def build_model(self):
        return ToyModel(self.model_config)

    def train_dataset(self):
        return ToyData()

    def compute_loss(self, model, batch):
        self.calls += 1
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss}


CFG = TrainConfig(max_steps=8, batch_size=8, grad_accum=2, lr=0.05, warmup_steps=2, checkpoint_every=2,
                  keep_last=10, log_every=1)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_resume_from_a_checkpoint_matches_uninterrupted(tmp_path):
    a = tmp_path / "a"
    res = Trainer(ToyTask("toy", ToyConfig()), CFG, a, quiet=True).fit()
    assert res.steps == 8 and res.stopped_by == "max_steps"
    assert [c.name for c in checkpoints(a)] == [f"step-{s:08d}" for s in (2, 4, 6, 8)]
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for c in checkpoints(b)[2:]:
        shutil.rmtree(c)
    shutil.rmtree(b / "model")
    Trainer(ToyTask("toy", ToyConfig()), CFG, b, resume=True, quiet=True).fit()
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [json.loads(x)["step"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    # Without --resume an existing run is refused; with it, a finished run stays finished.
    with pytest.raises(ValueError, match="--resume"):
        Trainer(ToyTask("toy", ToyConfig()), CFG, a, quiet=True)


def test_keeps_last_k_and_writes_run_files(tmp_path):
    run = tmp_path / "r"
    Trainer(ToyTask("toy", ToyConfig()), replace(CFG, keep_last=2), run, quiet=True).fit()
    assert [c.name for c in checkpoints(run)] == ["step-00000006", "step-00000008"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["grad_accum"] == 2 and cfg["kind"] == "toy"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "lr", "items_per_s"} <= set(rows[-1])
    assert not list((run / "checkpoints").glob(".*"))  # no temporary directories left


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "nan"
    # Two micro-steps per optimizer step: call 9 is the first of step 5.
    with pytest.raises(TrainingDiverged, match="step 4"):
        Trainer(ToyTask("toy", ToyConfig(), nan_at=9), CFG, run, quiet=True).fit()
    assert [c.name for c in checkpoints(run)] == ["step-00000002", "step-00000004"]
    assert not (run / "model").exists()


def test_max_minutes_ends_cleanly(tmp_path):
    run = tmp_path / "t"
    res = Trainer(ToyTask("toy", ToyConfig()), replace(CFG, max_minutes=1e-9, max_steps=1000), run, quiet=True).fit()
    assert res.stopped_by == "max_minutes" and res.steps == 1
    assert [c.name for c in checkpoints(run)] == ["step-00000001"] and (run / "model" / "model.safetensors").is_file()


def _tiny_config(path: Path, steps: int, **train) -> Path:
    path.write_text(json.dumps({"model": {"image_size": 32, "channels": [4, 8]},
                                "train": {"max_steps": steps, "batch_size": 4, "lr": 0.01, "warmup_steps": 2,
                                          "checkpoint_every": 2, "keep_last": 3, "log_every": 1, **train}}))
    return path


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(synth_ds, tmp_path):
    """To the bit, on the CPU and (with `train.deterministic`) on a GPU."""
    cfg = _tiny_config(tmp_path / "tiny.json", 16, deterministic=True)
    base = ["-q", "train", "segmenter", "--data", str(synth_ds), "--config", str(cfg)]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    run = tmp_path / "b"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "armani"] + base + ["--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "step-00000006").is_dir():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = checkpoints(run)
    assert done and done[-1].name != "step-00000016", "the run finished before it could be killed"
    assert main(base + ["--out", str(run), "--resume"]) == 0
    wa, wb = weights(tmp_path / "a"), weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _tiny_maskclip_config(path: Path, steps: int) -> Path:
    path.write_text(json.dumps({
        "model": {"image_size": 32, "patch": 8, "mask_width": 16, "mask_layers": 1, "mask_heads": 2,
                  "max_text_len": 48, "text_width": 16, "text_layers": 1, "text_heads": 2, "embed_dim": 8},
        "train": {"max_steps": steps, "batch_size": 4, "lr": 0.01, "warmup_steps": 1, "checkpoint_every": 2,
                  "log_every": 1, "max_text_len": 48}}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("model", ["segmenter", "maskclip"])
def test_two_processes_match_one(synth_ds, tmp_path, model):
    """For MaskCLIP this needs the contrastive negatives of the whole global batch on each process."""
    cfg = (_tiny_config if model == "segmenter" else _tiny_maskclip_config)(tmp_path / "tiny.json", 3)
    args = ["train", model, "--data", str(synth_ds), "--config", str(cfg)]
    # Both runs on the CPU, on a GPU machine too (gloo; the comparison is across process counts).
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-m", "armani", "-q"] + args + ["--out", str(tmp_path / "one"),
                                                                       "--batch-size", "8"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "armani", "-q"] + args + ["--out", str(tmp_path / "two"), "--batch-size", "4"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    sums = json.loads((tmp_path / "two" / "ranks.json").read_text())["param_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in w1:
        a, b = w1[k], w2[k]
        if k.endswith("attn.qkv.bias"):
            # The key bias has an exactly zero gradient (softmax ignores a shift shared by all
            # keys), so Adam turns rounding noise into steps: compare the query and value parts.
            third = a.shape[0] // 3
            a, b = torch.cat([a[:third], a[2 * third:]]), torch.cat([b[:third], b[2 * third:]])
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), k


@pytest.mark.slow
def test_bf16_mixed_precision_runs(synth_ds, tmp_path):
    cfg = _tiny_config(tmp_path / "tiny.json", 2)
    raw = json.loads(cfg.read_text())
    raw["train"]["mixed_precision"] = "bf16"
    cfg.write_text(json.dumps(raw))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    # Through the CLI, in a process of its own (in-process runs: the test below).
    r = subprocess.run([sys.executable, "-m", "armani", "-q", "train", "segmenter", "--data", str(synth_ds),
                        "--config", str(cfg), "--out", str(tmp_path / "bf16")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(row["loss"]) for row in rows)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["train"]["mixed_precision"] == "bf16"
    w = weights(tmp_path / "bf16")
    assert all(v.dtype == torch.float32 for v in w.values())  # weights stay float32 under autocast


@dataclass
class DtypeTask(ToyTask):
    """A ToyTask that records the dtype its model computes in."""
    seen: list = None

    def compute_loss(self, model, batch):
        y = model(batch["x"])
        self.seen.append(y.dtype)
        return {"loss": ((y.float() - batch["y"]) ** 2).mean()}


def test_fp32_then_bf16_training_in_one_process_on_the_cpu(tmp_path):
    """Accelerate keeps one precision per process; on the CPU the loop applies bf16 autocast
    itself, so a process can train one stage in fp32 and the next in bf16 (the quickstart on
    a CPU with AMX) and each really runs in its own precision."""
    if torch.cuda.is_available():
        pytest.skip("the CPU path")
    runs = []
    for precision in ("no", "bf16", "no"):
        task = DtypeTask("toy", ToyConfig(), seen=[])
        res = Trainer(task, replace(CFG, max_steps=2, mixed_precision=precision), tmp_path / precision / str(len(runs)),
                      quiet=True).fit()
        runs.append((res.steps, set(task.seen)))
    assert runs == [(2, {torch.float32}), (2, {torch.bfloat16}), (2, {torch.float32})]
    w = weights(tmp_path / "bf16" / "1")
    assert all(v.dtype == torch.float32 for v in w.values())  # the weights stay float32 under autocast


def test_cpu_defaults_and_more_processes_than_gpus(tmp_path, monkeypatch, caplog):
    """On the CPU "auto" means fp32 and no compile; with more processes on a machine than it
    has GPUs the loop trains on the CPU with a warning instead of failing on a missing device."""
    from armani.train import loop
    t = Trainer(ToyTask("toy", ToyConfig()), CFG, tmp_path / "a", quiet=True)
    if not torch.cuda.is_available():
        assert t.acc.mixed_precision == "no" and t.compile is False and t.acc.device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with caplog.at_level("WARNING"):
        assert loop._enough_gpus() is False
    assert "training on the CPU" in caplog.text
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert loop._enough_gpus() is True
    with pytest.raises(ValueError, match="compile"):
        Trainer(ToyTask("toy", ToyConfig()), replace(CFG, compile="sometimes"), tmp_path / "b", quiet=True)


@pytest.mark.slow
def test_compiled_training_saves_a_plain_bundle(tmp_path):
    """`compile: on` (torch.compile; about a minute to compile on this CPU): the run trains and
    its bundle and checkpoints carry the bare model's keys, so they load as any other."""
    res = Trainer(ToyTask("toy", ToyConfig()), replace(CFG, compile="on", max_steps=2), tmp_path / "c",
                  quiet=True).fit()
    assert res.steps == 2
    keys = set(weights(tmp_path / "c"))
    assert keys == set(ToyModel(ToyConfig()).state_dict()) and not any("_orig_mod" in k for k in keys)
    ck = load_file(str(checkpoints(tmp_path / "c")[-1] / "model.safetensors"))
    assert set(ck) == keys


def test_deterministic_kernels_are_set_for_the_run_and_restored():
    from armani.train.loop import deterministic_kernels
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    with deterministic_kernels(False):
        assert not torch.are_deterministic_algorithms_enabled()
