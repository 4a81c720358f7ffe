"""Replacing a dataset or a model folder never loses it: SIGKILL at any moment leaves the
complete old or the complete new copy; SIGTERM cleans up; leftovers of earlier runs are
removed; outputs follow the umask."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from armani.formats.fsutil import STAGING, TRASH, install_dir, recover, staging_dir


def _folder_src(root: Path, n: int, colour) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((24, 24, 3), colour, np.uint8)).save(root / "images" / f"im{i:03d}.png")
        (root / "images" / f"im{i:03d}.txt").write_text(f"a plain shirt number {i}\n")
    return root


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _armani(*args) -> list[str]:
    return [sys.executable, "-m", "armani", "-q", *map(str, args)]


def _kill_runs(cmd_new, cmd_old, target: Path, copies: dict[str, dict], times: int, seed: int):
    """Run cmd (alternating new and old) over an existing target and SIGKILL it at a random
    moment of its writing (from when its staging folder appears to its end); after each kill
    the target must be a complete copy of one of `copies`."""
    rng = random.Random(seed)
    staging = lambda: list(target.parent.glob(f"{target.name}{STAGING}*"))  # noqa: E731

    def start(cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not staging() and p.poll() is None:
            time.sleep(0.005)
        return p, time.perf_counter()
    p, t0 = start(cmd_new)
    p.wait()
    window = time.perf_counter() - t0
    for i in range(times):
        p, _ = start(cmd_old if i % 2 else cmd_new)
        time.sleep(rng.uniform(0, window))
        p.send_signal(signal.SIGKILL)
        p.wait()
        snap = _snapshot(target)
        assert any(snap == ref for ref in copies.values()), f"kill {i}: {target} is no complete copy"


CRASH = """
import os, shutil, sys
calls = [0]
def crashing(fn):
    def wrapper(*a, **k):
        calls[0] += 1
        if calls[0] == int(os.environ["CRASH_AT"]):
            os._exit(137)
        return fn(*a, **k)
    return wrapper
os.replace, os.rename, shutil.rmtree = crashing(os.replace), crashing(os.rename), crashing(shutil.rmtree)
from armani.cli import main
rc = main(sys.argv[1:])
sys.stdout.write(f"calls {calls[0]}")
sys.exit(rc)
"""


def _crash_everywhere(args, target: Path, copies: dict[str, dict]) -> int:
    """Run `armani args` once to count its renames and deletions, then once per count with
    the process dying right there; the target must always be a complete copy."""
    run = lambda k: subprocess.run([sys.executable, "-c", CRASH, "-q", *map(str, args)],  # noqa: E731
                                   env={**os.environ, "CRASH_AT": str(k)}, capture_output=True, text=True, check=False)
    n = int(run(0).stdout.rsplit("calls ", 1)[1])
    for k in range(1, n + 1):
        assert run(k).returncode == 137
        assert any(_snapshot(target) == ref for ref in copies.values()), f"died at step {k} of {n}: target lost"
    return n


@pytest.mark.slow
def test_import_overwrite_survives_sigkill(tmp_path):
    a = _folder_src(tmp_path / "a", 12, (200, 30, 30))
    b = _folder_src(tmp_path / "b", 16, (30, 30, 200))
    out = tmp_path / "ds"
    cmd = lambda src: _armani("data", "import", "--format", "folder", "--src", src, "--out", out,  # noqa: E731
                              "--overwrite", "--vocab-size", "300")
    refs_v = {}
    for name, src in (("a", a), ("b", b)):
        subprocess.run(cmd(src), check=True, capture_output=True)
        refs_v[name] = _snapshot(out)
    _kill_runs(cmd(b), cmd(a), out, refs_v, times=20, seed=0)
    assert _crash_everywhere(cmd(b)[4:], out, refs_v) >= 2
    # The next run cleans whatever the killed ones left beside the target.
    subprocess.run(cmd(a), check=True, capture_output=True)
    assert _snapshot(out) == refs_v["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("ds") and p.name != "ds"]


@pytest.mark.slow
def test_export_over_a_model_survives_sigkill(tmp_path):
    import armani
    from armani.inference.pipeline import shipped_model
    src = shipped_model()
    out = tmp_path / "model"
    refs = {}
    for name, extra in (("half", ["--half"]), ("full", [])):
        subprocess.run(_armani("export", "--model", src, "--out", out, *extra), check=True, capture_output=True)
        refs[name] = _snapshot(out)
    assert refs["half"] != refs["full"]
    _kill_runs(_armani("export", "--model", src, "--out", out, "--half"), _armani("export", "--model", src, "--out", out),
               out, refs, times=20, seed=1)
    assert _crash_everywhere(["export", "--model", src, "--out", out, "--half"], out, refs) >= 1
    assert armani.load(out) is not None


def test_stale_leftovers_are_cleaned_and_old_copy_restored(tmp_path):
    target = tmp_path / "ds"
    # What earlier versions left: a stale `.ds.old` (which made every --overwrite fail) and a partial folder.
    (tmp_path / ".ds.old").mkdir()
    (tmp_path / ".ds.old" / "dataset.json").write_text('{"format": "armani-dataset", "version": 1}')
    (tmp_path / "ds.old").mkdir()
    (tmp_path / "ds.partial-abc123").mkdir()
    staged = staging_dir(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [staged.name]
    (staged / "v").write_text("1")
    (staged / "dataset.json").write_text('{"format": "armani-dataset", "version": 1}')
    install_dir(staged, target)
    # A writer killed between its two renames (the fallback path): the old copy sits in the trash.
    trash = tmp_path / f"ds{TRASH}dead"
    os.replace(target, trash)
    (tmp_path / f"ds{STAGING}dead").mkdir()
    recover(target)
    assert (target / "v").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.slow
def test_sigterm_cleans_up(tmp_path):
    src = _folder_src(tmp_path / "a", 400, (10, 120, 10))
    out = tmp_path / "ds"
    p = subprocess.Popen(_armani("data", "import", "--format", "folder", "--src", src, "--out", out),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(f"ds{STAGING}*")) and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)  # until the import is writing
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the import finished before SIGTERM arrived")
    assert p.returncode == 143 and "terminated" in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a"]  # no staging folder left behind


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        staged = staging_dir(tmp_path / "m")
        from armani.formats.fsutil import atomic_write_text
        atomic_write_text(staged / "f.json", "{}")
        install_dir(staged, tmp_path / "m")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "m" / "f.json").stat().st_mode & 0o777 == 0o644


def test_remove_staging_takes_only_what_was_not_installed(tmp_path):
    """What the CLI calls on SIGTERM: a signal between a staging folder's creation and the
    block that would clean it up (the race `test_sigterm_cleans_up` can hit) leaves nothing."""
    from armani.formats.fsutil import install_dir, remove_staging, staging_dir
    kept = staging_dir(tmp_path / "kept")
    (kept / "v").write_text("1")
    install_dir(kept, tmp_path / "kept")
    orphan = staging_dir(tmp_path / "orphan")
    (orphan / "x").write_text("half")
    remove_staging()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and (tmp_path / "kept" / "v").read_text() == "1"


def test_sigterm_right_after_the_staging_folder_is_made(tmp_path, monkeypatch, capsys):
    """The window the subprocess test can only hit by chance, forced: SIGTERM (the CLI's
    `Terminated`) arrives while the dataset writer opens its index, before its `with`
    block owns the folder. The CLI still leaves no staging folder."""
    import armani.formats.dataset as dataset
    from armani.cli import Terminated, main
    src = _folder_src(tmp_path / "a", 3, (10, 120, 10))

    def killed(*args, **kwargs):
        raise Terminated()
    monkeypatch.setattr(dataset, "open", killed, raising=False)
    assert main(["data", "import", "--format", "folder", "--src", str(src), "--out", str(tmp_path / "ds")]) == 143
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a"]


# --- a writer removes only what it created, and one writer at a time ---------------------------

def _shipped() -> Path:
    from armani.inference.pipeline import shipped_model
    return shipped_model()


def test_export_and_tokenize_refuse_what_they_did_not_write(tmp_path, capsys):
    """`export` and `tokenize` replace only their own kind of output: a folder of the user's or
    a file at --out is refused with one line, left as it was, and nothing is left beside it."""
    from armani.cli import main
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    note = tmp_path / "note.txt"
    note.write_text("keep me")
    for out in (mine, note):
        assert main(["-q", "export", "--model", str(_shipped()), "--out", str(out)]) == 2
        assert "replaces only its own output" in capsys.readouterr().err
        assert main(["-q", "tokenize", "--model", str(_shipped()), "--data", str(tmp_path), "--out", str(out)]) == 2
        capsys.readouterr()
    assert (mine / "thesis.txt").read_text() == "years of work" and note.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "note.txt"]
    # Its own output is replaced, as before; an empty folder is taken.
    (tmp_path / "empty").mkdir()
    assert main(["-q", "export", "--model", str(_shipped()), "--out", str(tmp_path / "empty"), "--half"]) == 0
    assert main(["-q", "export", "--model", str(_shipped()), "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "armani.json").is_file()


def test_cleanup_removes_only_armani_leftovers(tmp_path):
    """Folders that merely look like an earlier writer's staging, trash or backup names are
    the user's and stay; armani's own leftovers (the marker of a dead process, an old copy of
    armani output, an empty folder) go; a live writer's staging folder stays."""
    target = tmp_path / "ds"
    looks = [f"ds{STAGING}notes", f"ds{TRASH}2019", "ds.old", ".ds.old", ".ds.backup01", "ds.partial-draft"]
    for name in looks:
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("user data")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False)
    ours = {f"ds{STAGING}dead": {"pid": int(dead.stdout), "host": os.uname().nodename},
            f"ds{STAGING}live": {"pid": os.getppid(), "host": os.uname().nodename}}
    import json
    import socket
    for name, owner in ours.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "half.bin").write_bytes(b"x")
        (tmp_path / name / ".armani-staging").write_text(json.dumps({**owner, "host": socket.gethostname()}))
    (tmp_path / f"ds{STAGING}swapped").mkdir()  # the old copy an exchange left behind
    (tmp_path / f"ds{STAGING}swapped" / "dataset.json").write_text('{"format": "armani-dataset"}')
    (tmp_path / f"ds{STAGING}empty").mkdir()
    staged = staging_dir(target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(looks + [f"ds{STAGING}live", staged.name])
    assert all((tmp_path / n / "mine.txt").read_text() == "user data" for n in looks)


_HOLD = """
import sys
from armani.formats.dataset import DatasetWriter, dataset_meta
w = DatasetWriter(sys.argv[1], overwrite=True)
w.add({"id": "first", "split": "train", "image": "x.png", "captions": ["a red dress"], "mask": None,
       "attributes": None, "source": "t"})
print("writing", flush=True)
sys.stdin.readline()
w.commit(dataset_meta("t", None, "t"))
"""


def test_a_second_writer_is_refused_at_once(tmp_path):
    """Two processes, one target: while one fills its staging folder, a second `--overwrite`
    writer is refused (one line, exit 2) instead of removing the first one's folder, and the
    first one's dataset is installed whole."""
    import json
    out = tmp_path / "ds"
    src = _folder_src(tmp_path / "src", 3, (200, 30, 30))
    first = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert first.stdout.readline().strip() == "writing"
    t0 = time.perf_counter()
    second = subprocess.run(_armani("data", "import", "--format", "folder", "--src", src, "--out", out, "--overwrite"),
                            capture_output=True, text=True, check=False)
    assert second.returncode == 2 and "being written by another armani process" in second.stderr
    assert second.stderr.count("\n") == 1 and time.perf_counter() - t0 < 60
    first.communicate("\n", timeout=60)
    assert first.returncode == 0
    assert json.loads((out / "dataset.json").read_text())["num_samples"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]


_TRAINER = """
import sys
from armani.train.loop import Trainer
from armani.train.registry import make_task
task, cfg = make_task("segmenter", sys.argv[1], {"model": {"image_size": 48, "channels": [4, 8]}}, max_steps=1)
t = Trainer(task, cfg, sys.argv[2], quiet=True)
print("training", flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
def test_a_second_trainer_of_one_run_is_refused(synth_ds, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", _TRAINER, str(synth_ds), str(run)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "training"
    before = (run / "config.json").read_bytes()
    second = subprocess.run(_armani("train", "segmenter", "--data", synth_ds, "--out", run, "--max-steps", "1"),
                            capture_output=True, text=True, check=False)
    first.communicate("\n", timeout=60)
    assert second.returncode == 2 and "being written by another armani process" in second.stderr
    assert (run / "config.json").read_bytes() == before and not (run / "metrics.jsonl").exists()


def test_train_writes_only_into_its_own_run(tmp_path, capsys):
    """`train --out` refuses a bundle inside a pipeline folder and a folder of the user's;
    `--resume` refuses another task's run; each before anything is written."""
    import json
    import shutil

    from armani.cli import main
    pipe = tmp_path / "pipe"
    shutil.copytree(_shipped(), pipe)
    before = _snapshot(pipe)
    data = tmp_path / "nodata"
    assert main(["-q", "train", "transformer", "--tokens", str(data), "--out", str(pipe / "transformer")]) == 2
    assert main(["-q", "train", "sketch-vq", "--data", str(data), "--out", str(pipe / "sketch-vq")]) == 2
    assert "not an armani training run" in capsys.readouterr().err
    assert _snapshot(pipe) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"lr": 3}')
    assert main(["-q", "train", "segmenter", "--data", str(data), "--out", str(mine)]) == 2
    assert (mine / "config.json").read_text() == '{"lr": 3}' and sorted(p.name for p in mine.iterdir()) == ["config.json"]
    run = tmp_path / "seg-run"
    (run / "checkpoints" / "step-00000001").mkdir(parents=True)
    (run / "checkpoints" / "step-00000001" / "trainer.json").write_text("{}")
    cfg = json.dumps({"kind": "segmenter", "model": {}, "train": {}})
    (run / "config.json").write_text(cfg)
    assert main(["-q", "train", "transformer", "--tokens", str(data), "--out", str(run), "--resume"]) == 2
    assert "holds a segmenter run" in capsys.readouterr().err
    assert (run / "config.json").read_text() == cfg


def test_generate_replaces_its_own_folder_and_nothing_else(tmp_path, capsys):
    import json

    from armani.cli import main
    out = tmp_path / "gen"
    assert main(["-q", "generate", "--text", "a red dress", "--n", "3", "--seed", "1", "--out", str(out)]) == 0
    assert main(["-q", "generate", "--text", "a blue dress", "--n", "1", "--seed", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["generation.json", "sample-00.png", "sheet.png"]
    assert json.loads((out / "generation.json").read_text())["text"] == "a blue dress"
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"png")
    assert main(["-q", "generate", "--text", "a red dress", "--n", "1", "--out", str(mine)]) == 2
    assert "replaces only its own output" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.png"]


def test_quickstart_fresh_removes_only_a_recipe_folder(tmp_path, capsys):
    from armani.cli import main
    mine = tmp_path / "Documents"
    mine.mkdir()
    (mine / "cv.pdf").write_bytes(b"%PDF")
    assert main(["-q", "quickstart", "--out", str(mine), "--fresh", "--profile", "tiny"]) == 2
    assert "replaces only its own output" in capsys.readouterr().err
    assert (mine / "cv.pdf").read_bytes() == b"%PDF"


_SYNTH_PROBE = """
import signal, sys
import armani.data.make_synth as ms
from armani.cli import main
render = ms._render_chunk
def probe(job):
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "a render worker inherited the CLI's SIGTERM handler"
    return render(job)
ms._render_chunk = probe
sys.exit(main(["-q", "data", "synth", "--n", "300", "--size", "32", "--workers", "2", "--out", sys.argv[1]]))
"""


def test_synth_workers_take_sigterm_as_it_is(tmp_path):
    """The pool stops its workers with SIGTERM: a worker that inherited the command line's
    handler turned it into an exception and, now and then, hung the whole command at its end."""
    r = subprocess.run([sys.executable, "-c", _SYNTH_PROBE, str(tmp_path / "ds")], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Terminated" not in r.stderr and (tmp_path / "ds" / "dataset.json").is_file()
