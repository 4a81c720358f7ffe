"""Every generation mode follows its condition: the fidelity figures of `eval generate`, and
a partial image's kept cells kept exactly."""
import json

import numpy as np
import pytest
import torch

from armani.eval.fidelity import kept_pixels, masked_psnr, silhouette_iou
from armani.inference.modes import MODES, chest_band
from armani.inference.pipeline import generate_batches, load, prepare
from armani.inference.sampling import SamplingConfig


@pytest.fixture(scope="module")
def gen():
    return load()


def test_silhouette_iou_on_toys():
    a = np.zeros((8, 8), bool)
    a[2:6, 2:6] = True
    b = np.zeros((8, 8), bool)
    b[6:, 6:] = True
    assert silhouette_iou(a, a) == 1.0
    assert silhouette_iou(a, b) == 0.0
    half = np.zeros((8, 8), bool)
    half[2:6, 2:4] = True
    assert silhouette_iou(a, half) == pytest.approx(0.5)
    assert silhouette_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_masked_psnr_reads_only_the_kept_pixels():
    x = np.zeros((4, 4, 3), np.uint8)
    y = x.copy()
    y[2:] = 255
    keep = np.zeros((4, 4), bool)
    keep[:2] = True
    assert masked_psnr(x, y, keep) == 99.0
    assert masked_psnr(x, y, ~keep) == pytest.approx(0.0)
    assert np.isnan(masked_psnr(x, y, np.zeros((4, 4), bool)))


@pytest.mark.parametrize("guidance,batch", [(1.0, 1), (3.0, 3), (3.0, 2)])
def test_exact_keep_returns_the_kept_tokens(gen, guidance, batch):
    """With keep "exact" the kept cells' image tokens are the partial image's own, bit for bit,
    under guidance and any batch size; the free cells are sampled."""
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cond = prepare(gen, "a red dress", partial=photo, keep_box=chest_band(64))
    kept = cond.partial_tokens[0] != gen.transformer.cfg.image_empty
    assert kept.any() and not kept.all()
    cfg = SamplingConfig(temperature=1.0, guidance=guidance, keep="exact")
    grid = gen.image_tokenizer.vq.cfg.grid
    got = []

    def capture(g, tokens):  # the token ids sampled, before decoding
        got.append(tokens.clone())
        return np.zeros((len(tokens), 64, 64, 3), np.uint8)
    import armani.inference.pipeline as pl
    real = pl.decode_tokens
    pl.decode_tokens = capture
    try:
        list(generate_batches(gen, cond, 3, seed=5, sampling=cfg, batch_size=batch))
    finally:
        pl.decode_tokens = real
    tokens = torch.cat(got)
    assert tokens.shape == (3, grid * grid)
    assert (tokens[:, kept] == cond.partial_tokens[0, kept]).all()
    assert (tokens[:, ~kept] != tokens[:1, ~kept]).any()  # the free cells are drawn, not copied
    keep_px = kept_pixels(cond, gen.transformer.cfg.image_empty, 64)
    assert keep_px.sum() == kept.sum() * (64 // grid) ** 2 and keep_px[chest_band(64)[1]:chest_band(64)[3]].all()


def test_exact_keep_shows_the_kept_cells_as_stage1_draws_them(gen):
    """The kept cells of an exact-keep sample are the partial image's own stage-1
    reconstruction, pixel for pixel, under guidance and any batch size; beyond a seam of
    half a cell around them the pixels are the sample's own decode."""
    from armani.inference.pipeline import generate_from
    photo = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cond = prepare(gen, "a red dress", partial=photo, keep_box=chest_band(64))
    kept = kept_pixels(cond, gen.transformer.cfg.image_empty, 64)
    assert cond.kept_weight[kept].min() == 1.0 and cond.kept_weight.max() == 1.0
    for guidance, batch in ((1.0, 1), (3.0, 2)):
        cfg = SamplingConfig(temperature=1.0, guidance=guidance, keep="exact")
        images = generate_from(gen, cond, 3, seed=4, sampling=cfg, batch_size=batch)
        assert (images[:, kept] == cond.kept_image[kept]).all()
    far = cond.kept_weight == 0
    assert far.sum() > 0.5 * far.size
    raw = []
    import armani.inference.pipeline as pl
    real = pl.decode_tokens

    def capture(g, tokens):
        raw.append(real(g, tokens))
        return raw[-1]
    pl.decode_tokens = capture
    try:
        images = generate_from(gen, cond, 2, seed=4, sampling=SamplingConfig(keep="exact"))
    finally:
        pl.decode_tokens = real
    assert (images[:, far] == raw[0][:, far]).all()
    assert not (images[:, kept] == raw[0][:, kept]).all()  # the decoder alone redraws the kept cells
    soft = generate_from(gen, cond, 2, seed=4, sampling=SamplingConfig(keep="soft"))
    assert not (soft[:, kept] == cond.kept_image[kept]).all()


def test_kept_weight_is_one_inside_and_fades_outside():
    from armani.inference.pipeline import kept_weight
    m = np.zeros((12, 12), bool)
    m[4:8, 4:8] = True
    w = kept_weight(m, 2)
    assert (w[m] == 1).all()
    assert w[3, 5] == pytest.approx(2 / 3) and w[2, 5] == pytest.approx(1 / 3) and w[1, 5] == 0
    assert w[0, 0] == 0 and w.min() == 0


def test_soft_keep_is_a_condition_only(gen):
    """"soft" samples every cell, the kept ones too: in 4 samples the model does not redraw
    every kept token of a random photo (exact does, by construction)."""
    from armani.inference.sampling import sample_tokens
    photo = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cond = prepare(gen, None, partial=photo, keep_box=chest_band(64))
    kept = cond.partial_tokens[0] != gen.transformer.cfg.image_empty
    rep = lambda t: t.expand(4, -1)
    toks = {k: sample_tokens(gen.transformer, rep(cond.ids), rep(cond.sketch_tokens), rep(cond.partial_tokens),
                             SamplingConfig(temperature=1.0, keep=k), torch.Generator().manual_seed(0))
            for k in ("exact", "soft")}
    want = cond.partial_tokens[0, kept]
    assert (toks["exact"][:, kept] == want).all()
    assert (toks["soft"][:, kept] != want).any()
    with pytest.raises(ValueError):
        SamplingConfig(keep="half").check()


@pytest.mark.slow
def test_every_mode_reports_its_fidelity(synth_ds, tmp_path):
    from armani.cli import main
    for mode in MODES:
        out = tmp_path / f"{mode}.json"
        assert main(["-q", "eval", "generate", "--data", str(synth_ds), "--model", str(load().path), "--mode", mode,
                     "--n", "3", "--samples", "2", "--json", str(out)]) == 0
        fid = json.loads(out.read_text())["fidelity"]
        assert 0 <= fid["silhouette_iou"] <= 1 and 0 <= fid["ceiling"]["silhouette_iou"] <= 1
        if "partial" in mode:
            assert fid["kept_psnr"] > 5 and fid["kept_colour_error"] >= 0 and fid["ceiling"]["kept_psnr"] > 5
        else:
            assert fid["kept_psnr"] is None
        if "text" not in mode:
            assert fid["colour_accuracy"] is None and fid["category_accuracy"] is None
        assert set(fid["ci95"]) >= {"silhouette_iou", "kept_psnr", "colour_accuracy", "category_accuracy"}
        judged = fid["category_judge"]
        assert judged["used"] == (fid["category_accuracy"] is not None) or "text" not in mode, judged


def test_the_demo_and_the_api_take_the_keep_setting(gen):
    from armani.demo import run_generation
    from armani.inference.pipeline import GenerationError, generate
    photo = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for keep in ("exact", "soft"):
        r = run_generation(gen, None, partial=photo, keep_box="0,16,64,32", n=1, seed=0, keep=keep)
        assert len(r.images) == 1
        assert generate(gen, partial=photo, keep_box=(0, 16, 64, 32), seed=0, keep=keep).shape == (1, 64, 64, 3)
    with pytest.raises(GenerationError, match="keep must be"):
        run_generation(gen, None, partial=photo, keep_box="0,16,64,32", n=1, seed=0, keep="half")
    with pytest.raises(GenerationError, match="keep must be"):
        generate(gen, partial=photo, keep_box=(0, 16, 64, 32), keep="half")


class _FixedJudge:
    """Reads every image as one category (a stand-in for `eval.judge.Judge`)."""

    def __init__(self, category: str):
        from armani.data.vocab import CATEGORIES
        self.index = CATEGORIES.index(category)

    def read(self, images):
        return {"category": np.full(len(images), self.index)}


def test_category_accuracy_counts_samples_read_as_the_named_garment(gen):
    from armani.eval.fidelity import per_image
    from armani.eval.generation import Prompt
    img = np.full((64, 64, 3), 240, np.uint8)
    prompts = [Prompt("a", "a red dress", {"category": "dress", "color": "red", "pattern": "solid"}, img),
               Prompt("b", "a blue skirt", {"category": "skirt", "color": "blue", "pattern": "solid"}, img)]
    empty = gen.transformer.cfg.image_empty
    text = [prepare(gen, text=p.caption) for p in prompts]
    images = np.stack([img] * 4)  # two samples a prompt
    got = per_image(images, prompts, text, 2, empty, _FixedJudge("dress"))["category_accuracy"]
    assert got.tolist() == [1.0, 1.0, 0.0, 0.0]
    sketch = [prepare(gen, sketch=np.zeros((64, 64), np.uint8)) for _ in prompts]
    assert np.isnan(per_image(images, prompts, sketch, 2, empty, _FixedJudge("dress"))["category_accuracy"]).all()
    assert np.isnan(per_image(images, prompts, text, 2, empty)["category_accuracy"]).all()


def test_the_packaged_judge_reads_synthfashion_categories(tmp_path):
    from armani.data.make_synth import write_synth
    from armani.eval.generation import category_judge
    from armani.eval.judge import TRUST, shipped_judge
    assert shipped_judge() is not None
    data = write_synth(tmp_path / "d", n=1200, size=64, seed=11, workers=1, tokenizer_vocab=0)
    reader, info = category_judge("auto", data)
    assert info["used"] and info["category_accuracy_real"] >= TRUST and reader is not None, info
    _, none = category_judge(None, data)
    assert not none["used"] and "no attribute judge" in none["why"]
