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
