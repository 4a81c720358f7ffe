from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_cfg
from PIL import Image

import armani
from armani.cli import main
from armani.data.tokens import conditions, token_box
from armani.formats.bundle import load_bundle, save_bundle
from armani.inference.sampling import SamplingConfig, filter_logits, sample_tokens
from armani.models.transformer import CrossModalTransformer, TransformerConfig
from armani.train.stage2 import Stage2LossConfig, TransformerTask

TINY = TransformerConfig(text_vocab=20, text_len=6, sketch_codes=10, sketch_len=4, image_codes=12, image_len=9,
                         width=32, layers=2, heads=4)
ALIGNED = TransformerConfig(**{**TINY.__dict__, "aligned": True})
ALIGNED_ONLY = TransformerConfig(**{**ALIGNED.__dict__, "sketch_in_sequence": False})
BOTH = pytest.mark.parametrize("arch", [TINY, ALIGNED, ALIGNED_ONLY], ids=["sequence", "aligned", "sketch-aligned-only"])


def _model(cfg=TINY, seed=0) -> CrossModalTransformer:
    torch.manual_seed(seed)
    return CrossModalTransformer(cfg).eval()


def _conds(cfg=TINY, b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, cfg.text_vocab, (b, cfg.text_len), generator=g)
    sketch = torch.randint(0, cfg.sketch_codes, (b, cfg.sketch_len), generator=g)
    partial = torch.randint(0, cfg.image_codes + 1, (b, cfg.image_len), generator=g)
    image = torch.randint(0, cfg.image_codes, (b, cfg.image_len), generator=g)
    return text, sketch, partial, image


@BOTH
def test_causality(arch):
    m = _model(arch)
    text, sketch, partial, image = _conds()
    base = m(text, sketch, partial, image)
    assert base.shape == (2, TINY.image_len, TINY.image_codes)
    for t in range(TINY.image_len):
        changed = image.clone()
        changed[:, t] = (changed[:, t] + 1) % TINY.image_codes
        out = m(text, sketch, partial, changed)
        # Row i predicts token i from tokens < i: rows up to t must not move, row t+1 must.
        torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], rtol=0, atol=0)
        if t + 1 < TINY.image_len:
            assert not torch.allclose(out[:, t + 1], base[:, t + 1])
    # Every condition reaches the first image token.
    for i, x in enumerate((text, sketch, partial)):
        args = [text, sketch, partial]
        args[i] = (x + 1) % 5
        assert not torch.allclose(m(*args, image)[:, 0], base[:, 0])


def _batch(cfg=TINY, b=4, seed=1, present=(True, True, True)):
    text, sketch, _, image = _conds(cfg, b, seed)
    keep = torch.zeros(b, cfg.image_len, dtype=torch.bool)
    keep[:, :3] = True
    flag = lambda v: torch.full((b,), v, dtype=torch.bool)  # noqa: E731
    return {"image": image, "sketch": sketch, "text": text, "text_len": torch.full((b,), cfg.text_len),
            "keep": keep, "has_text": flag(present[0]), "has_sketch": flag(present[1]), "has_partial": flag(present[2])}


def test_loss_is_on_image_tokens_only():
    m = _model()
    task = TransformerTask(kind="transformer", model_config=TINY, loss_cfg=Stage2LossConfig(semantic_every=0))
    batch = _batch()
    loss = task.compute_loss(m, batch)["loss"]
    text, sketch, partial = conditions(TINY, batch)
    # The same number from the next-token distributions, one image position at a time.
    nll = []
    for i in range(TINY.image_len):
        logits = m.logits_at(text, sketch, partial, batch["image"][:, :i])
        nll.append(F.cross_entropy(logits, batch["image"][:, i], reduction="none"))
    torch.testing.assert_close(loss, torch.stack(nll).mean(), rtol=1e-5, atol=1e-5)
    # Absent conditions are EMPTY tokens; the partial condition holds image codes at kept cells only.
    b2 = dict(batch, has_text=torch.tensor([True, False, True, False]))
    t2, _, p2 = conditions(TINY, b2)
    assert (t2[1] == TINY.text_empty).all() and torch.equal(t2[0], batch["text"][0])
    assert torch.equal(p2[:, :3], batch["image"][:, :3]) and (p2[:, 3:] == TINY.image_empty).all()


@pytest.mark.parametrize("present", list(itertools.product([False, True], repeat=3)))
def test_every_condition_subset_trains_and_samples(present):
    m = _model()
    task = TransformerTask(kind="transformer", model_config=TINY, loss_cfg=Stage2LossConfig(semantic_every=0))
    batch = _batch(present=present)
    loss = task.compute_loss(m.train(), batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    text, sketch, partial = conditions(TINY, batch)
    out = sample_tokens(m.eval(), text, sketch, partial, SamplingConfig(top_k=5, guidance=2.0),
                        torch.Generator().manual_seed(0))
    assert out.shape == (4, TINY.image_len) and 0 <= int(out.min()) and int(out.max()) < TINY.image_codes


@BOTH
def test_cached_and_uncached_sampling_agree(arch):
    m = _model(arch)
    m64 = _model(arch).double()
    text, sketch, partial, _ = _conds(b=3)
    for sc in (SamplingConfig(temperature=0), SamplingConfig(temperature=0, guidance=2.5)):
        a = sample_tokens(m, text, sketch, partial, sc, use_cache=True)
        b = sample_tokens(m, text, sketch, partial, sc, use_cache=False)
        assert torch.equal(a, b)
    # Sampled (not greedy) with the same seed, in float64 so rounding cannot flip a draw.
    cfg = SamplingConfig(temperature=1.0, top_k=8)
    a = sample_tokens(m64, text, sketch, partial, cfg, torch.Generator().manual_seed(5), use_cache=True)
    b = sample_tokens(m64, text, sketch, partial, cfg, torch.Generator().manual_seed(5), use_cache=False)
    assert torch.equal(a, b)


@BOTH
def test_static_decode_step_matches_the_growing_cache(arch):
    """`step_static` (fixed shapes, the position a tensor, the whole cache masked) gives the
    logits of `step` at every position, and sampling with it draws the same tokens, greedy,
    sampled and guided; the decode mode a CUDA graph captures is this step."""
    m = _model(arch).double()
    text, sketch, partial, image = _conds(b=3)
    a, b = m.new_cache(3), m.new_cache(3)
    la, lb = m.prefill(text, sketch, partial, a), m.prefill(text, sketch, partial, b)
    index = torch.zeros(1, dtype=torch.long)
    for i in range(TINY.image_len - 1):
        assert torch.allclose(la, lb, atol=1e-12)
        index.fill_(i)
        la, lb = m.step(image[:, i], i, a), m.step_static(image[:, i], index, b)
    assert torch.allclose(la, lb, atol=1e-12)
    for cfg in (SamplingConfig(temperature=0), SamplingConfig(temperature=1.0, top_k=8),
                SamplingConfig(temperature=1.0, guidance=3.0)):
        x = sample_tokens(m, text, sketch, partial, cfg, torch.Generator().manual_seed(2), decode="cache")
        y = sample_tokens(m, text, sketch, partial, cfg, torch.Generator().manual_seed(2), decode="static")
        assert torch.equal(x, y)


def test_decode_modes():
    from armani.errors import UserError
    from armani.inference.sampling import decode_mode
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert decode_mode("auto", cpu) == "cache" and decode_mode("auto", cuda) == "graph"
    assert decode_mode("static", cpu) == "static"
    with pytest.raises(UserError, match="CUDA"):
        decode_mode("graph", cpu)
    with pytest.raises(UserError, match="decode must be"):
        decode_mode("fast", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_captured_decode_matches_the_cache_on_cuda():
    m = _model().double().cuda()
    text, sketch, partial, _ = (t.cuda() for t in _conds(b=3))
    for cfg in (SamplingConfig(temperature=0), SamplingConfig(temperature=1.0, top_k=8, guidance=2.0)):
        gen = lambda: torch.Generator(device="cuda").manual_seed(4)  # noqa: E731
        x = sample_tokens(m, text, sketch, partial, cfg, gen(), decode="cache")
        y = sample_tokens(m, text, sketch, partial, cfg, gen(), decode="graph")
        assert torch.equal(x, y)


@BOTH
def test_guidance_encodes_the_empty_prefix_once_with_the_same_draws(arch):
    """The unconditional rows' all-EMPTY prefix is encoded once per batch and copied into
    their cache rows: the same tokens as encoding it for every row, greedy and sampled."""
    m = _model(arch).double()
    text, sketch, partial, _ = _conds(b=4)
    for cfg in (SamplingConfig(temperature=0, guidance=3.0), SamplingConfig(temperature=1.0, top_k=8, guidance=2.0)):
        a = sample_tokens(m, text, sketch, partial, cfg, torch.Generator().manual_seed(1))
        b = sample_tokens(m, text, sketch, partial, cfg, torch.Generator().manual_seed(1), share_uncond=False)
        assert torch.equal(a, b)
    calls = []
    real = m.prefill
    m.prefill = lambda *args: calls.append(args[0].shape[0]) or real(*args)
    sample_tokens(m, text, sketch, partial, SamplingConfig(guidance=3.0), torch.Generator().manual_seed(1))
    assert calls == [4, 1]  # the 4 conditional rows, then one unconditional row for all 4


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).tolist() == [[True, True, False, False, False]]
    p = filter_logits(logits, top_p=0.7)  # 0.5 + 0.2 reaches 0.7: the rest goes
    assert torch.isfinite(p).tolist() == [[True, True, False, False, False]]
    p = filter_logits(logits, top_p=0.71)
    assert torch.isfinite(p).tolist() == [[True, True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False, False]]
    both = filter_logits(logits, top_k=3, top_p=0.6)
    assert torch.isfinite(both).tolist() == [[True, True, False, False, False]]
    torch.testing.assert_close(filter_logits(logits), logits)
    # Sampling with top_k=1 is greedy.
    m = _model()
    text, sketch, partial, _ = _conds()
    a = sample_tokens(m, text, sketch, partial, SamplingConfig(top_k=1), torch.Generator().manual_seed(0))
    assert torch.equal(a, sample_tokens(m, text, sketch, partial, SamplingConfig(temperature=0)))


def test_guidance_scale_one_and_zero_are_the_plain_cases():
    m = _model().double()
    text, sketch, partial, _ = _conds(b=2)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    plain = sample_tokens(m, text, sketch, partial, SamplingConfig(), gen())
    # guidance 1 takes the unguided path; compare against the guided formula with scale 1 + 1e-12.
    almost = sample_tokens(m, text, sketch, partial, SamplingConfig(guidance=1.0 + 1e-12), gen())
    assert torch.equal(plain, almost)
    empty = m.empty_conditions(2)
    # (keep "soft": an exact keep forces the partial's tokens whatever the guidance)
    uncond = sample_tokens(m, empty["text"], empty["sketch"], empty["partial"], SamplingConfig(keep="soft"), gen())
    zero = sample_tokens(m, text, sketch, partial, SamplingConfig(guidance=0.0, keep="soft"), gen())
    assert torch.equal(uncond, zero)
    assert not torch.equal(plain, zero)


def test_tiny_model_overfits_one_batch():
    cfg = TransformerConfig(text_vocab=20, text_len=6, sketch_codes=10, sketch_len=4, image_codes=32,
                            image_len=16, width=64, layers=2, heads=4)
    m = _model(cfg).train()
    task = TransformerTask(kind="transformer", model_config=cfg, loss_cfg=Stage2LossConfig(semantic_every=0))
    batch = _batch(cfg, b=4)
    opt = torch.optim.AdamW(m.parameters(), 3e-3)
    first = None
    for _ in range(150):
        loss = task.compute_loss(m, batch)["loss"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.0 and float(loss.detach()) < 0.1
    # ... and greedy sampling from the batch's conditions then reproduces its images.
    text, sketch, partial = conditions(cfg, batch)
    assert torch.equal(sample_tokens(m.eval(), text, sketch, partial, SamplingConfig(temperature=0)), batch["image"])


def test_save_load_bit_identical(tmp_path):
    m = _model()
    save_bundle(tmp_path / "b", m, "transformer")
    b = load_bundle(tmp_path / "b", "transformer")
    for k, v in m.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    text, sketch, partial, image = _conds()
    assert torch.equal(m(text, sketch, partial, image), b.model(text, sketch, partial, image))


def test_token_box_covers_a_quarter():
    rng = np.random.default_rng(0)
    for _ in range(50):
        cells = token_box(rng, 8, 0.25).reshape(8, 8)
        ys, xs = np.nonzero(cells)
        assert 12 <= cells.sum() <= 20  # about 16 of 64 cells
        assert cells[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()  # one box


@pytest.mark.slow
def test_paper_preset_builds_and_steps():
    from dataclasses import replace

    from armani.config import from_dict, load_raw
    cfg = from_dict(TransformerConfig, load_raw("transformer", "paper")["model"])
    assert (cfg.width, cfg.layers, cfg.heads) == (1024, 16, 16)
    # The paper's sequence: 64 caption tokens, 16 x 16 sketch, partial and image tokens.
    full = replace(cfg, text_vocab=2048, sketch_codes=1024, sketch_len=256, image_codes=1024, image_len=256)
    with torch.device("meta"):
        n = sum(p.numel() for p in CrossModalTransformer(full).parameters())
    assert 200e6 < n < 215e6
    # One training step at full width and depth on a short sequence (the step over all 834
    # positions is timed by benchmarks/paper_presets.py: 15.6 s here).
    short = replace(full, text_len=8, sketch_len=4, image_len=4)
    torch.manual_seed(0)
    m = CrossModalTransformer(short)
    text, sketch, partial, image = _conds(short, b=1)
    loss = F.cross_entropy(m(text, sketch, partial, image)[0], image[0])
    loss.backward()
    assert torch.isfinite(loss) and m.head.weight.grad is not None


# --- the pipeline: CLI and Python API ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(synth_ds, tiny_parents, tmp_path_factory):
    """Stage 1, the sketch tokenizer, tokens and a 3-step stage 2, all tiny, at 48 px."""
    root = tmp_path_factory.mktemp("stage2")
    vq = write_cfg(root / "v.json", {"image_size": 48, "channels": [8, 8, 16, 16], "z_channels": 16,
                                     "num_codes": 32, "code_dim": 4}, {"disc_weight": 0})
    assert main(["-q", "train", "vqgan", "--data", str(synth_ds), "--out", str(root / "vq"), "--config", vq,
                 "--maskclip", str(tiny_parents / "clip"), "--segmenter", str(tiny_parents / "seg")]) == 0
    sk = write_cfg(root / "k.json", {"image_size": 48, "channels": [4, 8, 8, 8], "z_channels": 8,
                                     "num_codes": 16, "code_dim": 4, "attention": False})
    assert main(["-q", "train", "sketch-vq", "--data", str(synth_ds), "--out", str(root / "sk"), "--config", sk]) == 0
    assert main(["-q", "tokenize", "--model", str(root / "vq"), "--sketch-vq", str(root / "sk"),
                 "--data", str(synth_ds), "--out", str(root / "tok"), "--splits", "train,val"]) == 0
    tcfg = root / "t.json"
    tcfg.write_text(json.dumps({"model": {"width": 32, "layers": 1, "heads": 2},
                                "loss": {"semantic_every": 2, "semantic_batch": 2},
                                "train": {"max_steps": 3, "batch_size": 4, "warmup_steps": 1,
                                          "checkpoint_every": 2, "log_every": 1}}))
    assert main(["-q", "train", "transformer", "--tokens", str(root / "tok"), "--out", str(root / "gpt"),
                 "--config", str(tcfg)]) == 0
    return root


def test_train_transformer_cli(tiny_run):
    run = tiny_run / "gpt"
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["kind"] == "transformer" and set(meta["parents"]) == {"vqgan", "sketch-vq"}
    assert meta["config"]["image_len"] == 36 and meta["config"]["sketch_len"] == 36
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert "semantic" in rows[0] and "nll" in rows[-1]  # the semantic loss ran at step 0 (every 2 steps)
    assert (run / "model" / "tokenizer.json").is_file()
    assert (run / "samples" / "step-00000002.png").is_file()  # samples at every checkpoint
    assert main(["-q", "train", "transformer", "--tokens", str(tiny_run / "tok"), "--out", str(run),
                 "--config", str(tiny_run / "t.json"), "--resume", "--max-steps", "4"]) == 0
    assert json.loads((run / "model" / "config.json").read_text())["trained_steps"] == 4


def _png(path, arr):
    Image.fromarray(arr).save(path)
    return str(path)


def test_generate_cli_and_api(tiny_run, synth_ds, tmp_path, capsys):
    run = tiny_run / "gpt"
    first = sorted((synth_ds / "images").rglob("*.*"))[0]
    photo = _png(tmp_path / "photo.png", np.asarray(Image.open(first).convert("RGB")))
    out = tmp_path / "g1"
    assert main(["-q", "generate", "--model", str(run), "--text", "a red shirt with white buttons", "--n", "3",
                 "--seed", "7", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["generation.json", "sample-00.png", "sample-01.png",
                                                     "sample-02.png", "sheet.png"]
    assert np.asarray(Image.open(out / "sample-00.png")).shape == (48, 48, 3)
    assert json.loads((out / "generation.json").read_text())["seed"] == 7
    # Every condition, through the CLI; export packs one self-contained folder.
    pipe = tmp_path / "pipe"
    assert main(["-q", "export", "--model", str(run), "--out", str(pipe), "--half"]) == 0
    assert (pipe / "armani.json").is_file() and (pipe / "segmenter" / "model.safetensors").is_file()
    assert main(["-q", "generate", "--model", str(pipe), "--text", "a dress", "--sketch-from", photo,
                 "--partial", photo, "--keep-box", "0,0,30,40", "--n", "2", "--out", str(tmp_path / "g2")]) == 0
    mask = np.zeros((48, 48), np.uint8)
    mask[10:40, 5:30] = 255
    assert main(["-q", "generate", "--model", str(pipe), "--partial", photo, "--keep-mask",
                 _png(tmp_path / "keep.png", mask), "--n", "1", "--out", str(tmp_path / "g3")]) == 0
    assert main(["-q", "generate", "--model", str(pipe), "--sketch", _png(tmp_path / "s.png", 255 - mask),
                 "--n", "1", "--out", str(tmp_path / "g4")]) == 0
    # The Python API: the same seed gives the same images, another seed others.
    g = armani.load(run)
    a = armani.generate(g, text="a red shirt with white buttons", n=3, seed=7)
    assert a.shape == (3, 48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, armani.generate(g, text="a red shirt with white buttons", n=3, seed=7))
    assert np.array_equal(a[0], np.asarray(Image.open(out / "sample-00.png")))
    assert not np.array_equal(a, armani.generate(g, text="a red shirt with white buttons", n=3, seed=8))
    assert armani.generate(pipe, text="a dress", n=1, seed=0, guidance=1.0, top_k=4).shape == (1, 48, 48, 3)
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    ([], "nothing to generate from"),
    (["--text", "   "], "nothing to generate from"),
    (["--text", "a shirt", "--sketch", "missing.png"], "no such file"),
    (["--text", "a shirt", "--sketch", "BAD"], "unreadable image"),
    (["--text", "a shirt", "--partial", "PHOTO", "--keep-box", "0,0,100,10"], "inside the 48 x 48 image"),
    (["--text", "a shirt", "--partial", "PHOTO", "--keep-box", "1,2,3"], "x0,y0,x1,y1"),
    (["--text", "a shirt", "--partial", "PHOTO"], "keep box"),
    (["--text", "a shirt", "--partial", "PHOTO", "--keep-box", "0,0,2,2"], "covers no token cell"),
    (["--text", "shirt " * 60], "tokens long"),
    (["--text", "a shirt", "--guidance", "-1"], "guidance"),
    (["--text", "a shirt", "--model", "no/such/model"], "no such file or folder"),
])
def test_generate_errors(tiny_run, synth_ds, tmp_path, capsys, extra, message):
    photo = _png(tmp_path / "photo.png", np.full((48, 48, 3), 200, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    extra = [{"PHOTO": photo, "BAD": str(tmp_path / "bad.png"),
              "missing.png": str(tmp_path / "missing.png")}.get(x, x) for x in extra]
    args = ["-q", "generate", "--model", str(tiny_run / "gpt"), "--out", str(tmp_path / "o")]
    if "--model" in extra:
        args = args[:2] + args[4:]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _garment_rgb(images: np.ndarray) -> np.ndarray:
    """Mean colour of the pixels that are not the light background, per image."""
    x = images.astype(np.float32)
    fg = (255 - x).max(-1) > 60
    return np.stack([x[i][fg[i]].mean(0) for i in range(len(x))])


def test_shipped_model_generates_and_follows_colour(tmp_path, capsys):
    from armani.inference.pipeline import shipped_model
    assert shipped_model() is not None, "the package ships no model (src/armani/pretrained/synthfashion)"
    out = tmp_path / "g"
    assert main(["-q", "generate", "--text", "a red T-shirt with a white logo", "--n", "2", "--seed", "0",
                 "--out", str(out)]) == 0
    assert np.asarray(Image.open(out / "sample-01.png")).shape == (64, 64, 3)
    g = armani.load()
    red = _garment_rgb(armani.generate(g, text="a red T-shirt", n=4, seed=1))
    blue = _garment_rgb(armani.generate(g, text="a blue dress", n=4, seed=1))
    yellow = _garment_rgb(armani.generate(g, text="a yellow skirt", n=4, seed=1))
    assert (red[:, 0] > red[:, 2] + 40).all() and (blue[:, 2] > blue[:, 0] + 40).all()
    assert (yellow[:, 1] > yellow[:, 2] + 40).all()
    capsys.readouterr()


# --- eq. 14 on what the model generates; the MaskCLIP text encoder ------------------------

def test_sampled_semantic_loss_reaches_the_transformer(tiny_run, tiny_parents):
    from armani.losses.vq import semantic_term
    from armani.train.stage2 import decode_mix, sampled_tokens
    vq = load_bundle(tiny_run / "vq", "vqgan").model.requires_grad_(False)
    seg = load_bundle(tiny_parents / "seg", "segmenter").model.requires_grad_(False)
    clip = load_bundle(tiny_parents / "clip", "maskclip").model.requires_grad_(False)
    cfg = TransformerConfig(text_vocab=512, text_len=48, sketch_codes=16, sketch_len=36, image_codes=32,
                            image_len=36, width=32, layers=1, heads=2)
    torch.manual_seed(0)
    m = CrossModalTransformer(cfg).train()
    text, sketch, partial, image = _conds(cfg, b=3)
    picked = sampled_tokens(m, text, sketch, partial, image, passes=2)
    assert picked.shape == (3, 36, 32) and torch.equal(picked.sum(-1), torch.ones(3, 36))  # one-hot rows
    assert not torch.equal(picked.argmax(-1), image)  # the model's own tokens, not the truth
    t, tv, _ = clip.encode_text(torch.randint(3, 500, (3, 12)), torch.tensor([6, 9, 7]))
    loss = semantic_term("contrastive", decode_mix(vq, picked), seg, clip, t, tv)
    loss.backward()
    for name in ("head.weight", "blocks.0.attn.qkv.weight", "image_emb.weight"):
        g = dict(m.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name


def test_maskclip_text_encoder_and_gradient_probe(tiny_run, tiny_parents, tmp_path):
    """Stage 2 reads captions through the frozen MaskCLIP text encoder: its weights are
    MaskCLIP's after training, the caption changes the logits, and the semantic loss's
    gradient share is logged."""
    cfg = tmp_path / "t.json"
    cfg.write_text(json.dumps({"model": {"width": 32, "layers": 1, "heads": 2, "text_encoder": "maskclip"},
                               "loss": {"semantic_every": 1, "semantic_batch": 3, "probe_every": 2},
                               "train": {"max_steps": 3, "batch_size": 4, "warmup_steps": 1,
                                         "checkpoint_every": 10, "log_every": 1}}))
    run = tmp_path / "gpt"
    assert main(["-q", "train", "transformer", "--tokens", str(tiny_run / "tok"), "--out", str(run),
                 "--config", str(cfg)]) == 0
    m = load_bundle(run, "transformer").model
    clip = load_bundle(tiny_parents / "clip", "maskclip").model
    for k, v in clip.text_encoder.state_dict().items():
        assert torch.equal(m.clip_text.state_dict()[k], v), k
    assert not any(p.requires_grad for p in m.clip_text.parameters())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    probed = [r for r in rows if "semantic_grad_share" in r]
    assert [r["step"] for r in probed] == [1, 3] and all(0 < r["semantic_grad_share"] < 1 for r in probed)
    c = m.cfg
    _, sketch, partial, image = _conds(c, b=1)
    a = torch.tensor([[1, 40, 41, 42, c.text_eos] + [0] * (c.text_len - 5)])
    b = torch.tensor([[1, 60, 61, 62, c.text_eos] + [0] * (c.text_len - 5)])
    empty = torch.full_like(a, c.text_empty)
    with torch.no_grad():
        la, lb, le = (m(t, sketch, partial, image) for t in (a, b, empty))
    assert not torch.allclose(la, lb) and not torch.allclose(la, le)
    imgs = armani.generate(armani.load(run), text="a red dress", n=1, seed=0)
    assert imgs.shape[0] == 1


def test_evaluate_nll_is_the_mean_token_cross_entropy(tiny_run):
    """evaluate_nll against a direct computation: the mean negative log-probability of each
    real image token, teacher-forced, under the named conditions."""
    import torch.nn.functional as F

    from armani.data.tokens import TokenDataset
    from armani.eval.likelihood import evaluate_nll
    from armani.formats.bundle import load_bundle
    got = evaluate_nll(tiny_run / "gpt", tiny_run / "tok", "val", max_samples=6, batch_size=4)
    m = load_bundle(tiny_run / "gpt", "transformer").model
    cfg = m.cfg
    ds = TokenDataset(tiny_run / "tok", "val", dropout=False)
    want = {}
    for name, flags in (("none", (False, False, False)), ("text+partial", (True, False, True))):
        total = 0.0
        for i in range(6):  # one sample at a time: batching must not change the figure
            batch = {k: v[None] for k, v in ds[i].items()}
            batch.update(has_text=torch.tensor([flags[0]]), has_sketch=torch.tensor([flags[1]]),
                         has_partial=torch.tensor([flags[2]]))
            text, sketch, partial = conditions(cfg, batch)
            with torch.no_grad():
                logp = F.log_softmax(m(text, sketch, partial, batch["image"]).double(), -1)
            total -= float(logp[0].gather(1, batch["image"][0][:, None]).sum())
        want[name] = total / (6 * cfg.image_len)
    assert got["samples"] == 6
    for name, v in want.items():
        assert abs(got["nll_per_token"][name] - v) < 1e-4, (name, got["nll_per_token"][name], v)
    assert got["nll_per_token"]["none"] != got["nll_per_token"]["text+partial"]


def test_token_ids_are_checked_once_when_read_not_every_step(tiny_run, tmp_path):
    """Training turns the Transformer's per-call id check (a host sync on a GPU) off; the
    token folder's ids are checked when it is read, and a damaged folder is one clear error."""
    import shutil

    import numpy as np

    from armani.formats.tokens import TokenSet
    from armani.train.registry import make_task
    task, _ = make_task("transformer", tiny_run / "tok")
    assert task.build_model().check_ids is False
    m = CrossModalTransformer(TINY)
    text, sketch, partial, image = _conds()
    with pytest.raises(ValueError, match="must lie in"):
        m(text, sketch, partial, image.clamp(max=0) + TINY.image_codes)
    bad = tmp_path / "tok"
    shutil.copytree(tiny_run / "tok", bad)
    arr = np.load(bad / "val.image.npy")
    arr[0, 0] = 60000
    np.save(bad / "val.image.npy", arr)
    with pytest.raises(ValueError, match="outside"):
        TokenSet(bad, "val")
    assert len(TokenSet(bad, "train")) > 0
