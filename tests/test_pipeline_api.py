"""The generation API: one pipeline object, one sampling path, the seeds it used."""
import ast
import inspect
import json

import numpy as np
import pytest

import armani
from armani.inference.pipeline import ArmaniPipeline, GenerationOutput, Generator, load
from conftest import REPO


@pytest.fixture(scope="module")
def pipe():
    return ArmaniPipeline.from_pretrained()


def test_the_pipeline_returns_its_images_and_the_seeds_it_used(pipe):
    out = pipe(text="a red dress", n=5, seed=7, batch_size=2)
    assert isinstance(out, GenerationOutput) and out.images.shape == (5, 64, 64, 3)
    assert out.seed == 7 and len(out.batch_seeds) == 3 and out.batch_seeds[0] == 7
    same = pipe(text="a red dress", n=5, seed=7, batch_size=2)
    assert np.array_equal(out.images, same.images)
    # A drawn seed is reported, and repeats the images.
    drawn = pipe(text="a red dress", n=2)
    assert np.array_equal(drawn.images, pipe(text="a red dress", n=2, seed=drawn.seed).images)
    # Each batch can be drawn again from its own seed.
    last = pipe(text="a red dress", n=1, seed=out.batch_seeds[2], batch_size=2)
    assert np.array_equal(last.images, out.images[4:])
    assert out.conditions.text == "a red dress" and out.sampling == pipe.sampling


def test_generate_is_the_pipeline_call(pipe):
    a = armani.generate(pipe, text="a blue skirt", n=3, seed=2)
    assert np.array_equal(a, pipe(text="a blue skirt", n=3, seed=2).images)
    params = inspect.signature(armani.generate).parameters
    assert {"text", "sketch", "partial", "keep_box", "n", "seed", "guidance", "keep"} <= set(params)
    assert armani.ArmaniPipeline is ArmaniPipeline and Generator is ArmaniPipeline
    assert isinstance(armani.load(), ArmaniPipeline)


def test_unknown_words_come_back(pipe):
    out = pipe(text="a zorblax dress", n=1, seed=0)
    assert out.unknown_words == ["zorblax"]


def test_save_pretrained_writes_a_folder_that_draws_the_same(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "m")
    again = load(folder)
    assert (folder / "README.md").is_file() and json.loads((folder / "armani.json").read_text())["sampling"]
    assert np.array_equal(again(text="a black jacket", n=2, seed=4).images,
                          pipe(text="a black jacket", n=2, seed=4).images)


def test_sample_rows_draws_one_image_per_condition(pipe):
    rows = [pipe.prepare("a red dress"), pipe.prepare("a white shirt"), pipe.prepare("a red dress")]
    a = pipe.sample_rows(rows, seed=3, batch=2)
    assert a.shape == (3, 64, 64, 3) and np.array_equal(a, pipe.sample_rows(rows, seed=3, batch=2))


def _calls(tree) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            # The Transformer's decode step is `step(token, i, cache)`: three arguments
            # (an optimizer's or a scheduler's step takes none).
            if name == "step" and len(node.args) >= 3:
                out.append("step")
            if name in ("sample_tokens", "_prefill"):
                out.append(name)
    return out


def test_one_sampling_loop():
    """Only armani/inference draws tokens; the one other caller of its sampler is the stage-2
    training run's preview grid of a bare model (no pipeline exists yet while it trains)."""
    allowed = {"armani/train/stage2.py": ["sample_tokens"]}
    found = {}
    for f in sorted((REPO / "src" / "armani").rglob("*.py")):
        rel = f.relative_to(REPO / "src").as_posix()
        if rel.startswith(("armani/inference/", "armani/models/")):
            continue
        calls = _calls(ast.parse(f.read_text()))
        if calls:
            found[rel] = calls
    assert found == allowed, found
    assert _calls(ast.parse("m.step(tok, i, cache)\nopt.step()\nsample_tokens(m, t, s, p)")) == [
        "step", "sample_tokens"]


# Where each module sits, highest first: a call only goes down this list (or stays in its module).
_LAYERS = ["armani.cli", "armani.inference.pipeline", "armani.inference.image_tokens", "armani.inference.sampling",
           "armani.data", "armani.formats.pipeline", "armani.formats.bundle", "armani.formats.fsutil",
           "armani.models"]


def _layer(module: str) -> int | None:
    hits = [i for i, pre in enumerate(_LAYERS) if module == pre or module.startswith(pre + ".")]
    return hits[-1] if hits else None


def _follow_the_model_argument(model_path, run) -> tuple[dict[str, set[str]], list[str]]:
    """Calls of armani functions made while `run()` loads, those whose arguments hold the
    model's path or a path inside it: for each module, the modules that called into it, and
    the functions called, in order."""
    import os
    import sys
    from pathlib import Path
    root = Path(model_path)

    def holds_path(frame) -> bool:
        for v in frame.f_locals.values():
            if isinstance(v, (str, os.PathLike)):
                p = Path(v)
                if p == root or root in p.parents:
                    return True
        return False

    callers: dict[str, set[str]] = {}
    called: list[str] = []

    def profile(frame, event, arg):
        mod = frame.f_globals.get("__name__", "")
        if event != "call" or frame.f_code.co_name == "<module>" or not mod.startswith("armani"):
            return
        if not holds_path(frame):
            return
        up = frame.f_back
        while up is not None and not up.f_globals.get("__name__", "").startswith("armani"):
            up = up.f_back
        if up is not None and up.f_globals["__name__"] != mod:
            callers.setdefault(mod, set()).add(up.f_globals["__name__"])
        called.append(f"{mod}.{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return callers, called


def _against_the_layers(callers: dict[str, set[str]]) -> list[str]:
    """Modules entered from more than one module, and calls that do not go down the layers."""
    many = [f"{m} entered from {sorted(c)}" for m, c in callers.items() if len(c) > 1]
    up = [f"{c} -> {m}" for m, cs in callers.items() for c in cs
          if _layer(c) is None or _layer(m) is None or _layer(m) <= _layer(c)]
    return many + up


def test_the_model_argument_goes_down_the_layers_once(tmp_path):
    """`armani generate --model Q` for a quickstart folder Q: from the command line to the
    loaded weights each module is entered from one module only, every call goes down the
    layers (none from a lower one back up), and the pipeline folder is recognised once."""
    import argparse

    from armani.cli.common import load_sampled
    from armani.inference.pipeline import shipped_model
    q = tmp_path / "quickstart"
    q.mkdir()
    (q / "model").symlink_to(shipped_model(), target_is_directory=True)
    args = argparse.Namespace(model=str(q), temperature=None, top_k=None, top_p=None, guidance=None, keep=None)
    callers, called = _follow_the_model_argument(q, lambda: load_sampled(args, "cpu"))
    assert "armani.formats.bundle.read_bundle" in called, called  # the walk reached the weights
    assert called.count("armani.formats.pipeline.pipeline_dir") == 1, called
    assert not _against_the_layers(callers), _against_the_layers(callers)


def test_the_walk_sees_a_call_back_up(tmp_path):
    """The checks above can fail: functions standing for a lower module calling a higher one
    with the path, and a module entered from two, are caught."""
    p = tmp_path / "m"
    space: dict = {}
    for mod, src in (("armani.inference.pipeline", "def high(path):\n    return 1\n"),
                     ("armani.formats.bundle", "def low(path):\n    return HIGH(path)\n"),
                     ("armani.cli.generate", "def top(path):\n    return LOW(path) + HIGH(path)\n")):
        g = {"__name__": mod, "HIGH": space.get("high"), "LOW": space.get("low")}
        exec(compile(src, mod, "exec"), g)
        space.update({k: v for k, v in g.items() if callable(v) and not k.isupper()})
    callers, called = _follow_the_model_argument(p, lambda: space["top"](p))
    assert called == ["armani.cli.generate.top", "armani.formats.bundle.low", "armani.inference.pipeline.high",
                      "armani.inference.pipeline.high"], called
    problems = _against_the_layers(callers)
    assert any("entered from" in x for x in problems) and "armani.formats.bundle -> armani.inference.pipeline" \
        in problems, problems
