from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import write_cfg as _write_cfg
from safetensors.torch import save_file

from armani.cli import main
from armani.data.vocab import COLORS
from armani.formats.bundle import load_bundle, save_bundle
from armani.formats.tokens import TokenSet
from armani.inference.image_tokens import keep_cells, partial_tokens
from armani.losses.vq import VGG16Features, adaptive_weight, hinge_d_loss, load_vgg16
from armani.models.quantize import VectorQuantizer
from armani.models.vqgan import PatchDiscriminator, VQGANConfig, VQModel, aligned_text

TINY = {"image_size": 32, "channels": (8, 16, 16, 16), "z_channels": 16, "num_codes": 32, "code_dim": 4,
        "text_dim": 8}


def test_quantize_indices_lookup_roundtrip():
    torch.manual_seed(0)
    for normalize in (True, False):
        vq = VectorQuantizer(64, 8, normalize=normalize).eval()  # training mode would restart codes after the batch
        z = torch.randn(2, 8, 5, 5)
        q, idx, terms = vq(z)
        assert idx.shape == (2, 5, 5) and q.shape == z.shape
        torch.testing.assert_close(vq.lookup(idx), q)
        # The chosen code is the nearest one (brute force over all codes).
        flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
        if normalize:
            flat = torch.nn.functional.normalize(flat, dim=-1)
        brute = torch.cdist(flat, vq.codes()).argmin(1)
        assert torch.equal(brute, idx.flatten())
        assert 0 < terms["usage"] <= 1 and 1 <= terms["perplexity"] <= 64


def test_nearest_is_chunked_and_agrees():
    vq = VectorQuantizer(50, 4, normalize=False, chunk=7)
    flat = torch.randn(100, 4)
    assert torch.equal(vq.nearest(flat, vq.codes()), torch.cdist(flat, vq.codes()).argmin(1))


@pytest.mark.parametrize("mode", ["balanced", "legacy"])
def test_gradients_reach_encoder_and_codebook(mode):
    torch.manual_seed(0)
    m = VQModel(VQGANConfig(**TINY, fusion_mode=mode))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    text, fuse = torch.randn(2, 16, 8), torch.ones(2, 16, dtype=torch.bool)
    rec, idx, terms = m(x, text, fuse)
    assert rec.shape == x.shape and idx.shape == (2, 4, 4)
    ((rec - x).abs().mean() + terms["codebook"] + terms["commit"]).backward()
    parts = [m.encoder, m.quant_conv, m.decoder, m.quantizer] + ([m.text_proj] if mode == "legacy" else [])
    for part in parts:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    if mode == "balanced":  # the word projection is fixed: a buffer, not a parameter
        assert "word_proj" in dict(m.named_buffers()) and not any("word_proj" in n for n, _ in m.named_parameters())


def test_fusion_picks_argmax_text_token_and_ignores_padding():
    m = torch.nn.functional.normalize(torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]]), dim=-1)
    t = torch.tensor([[[0.9, 0.1, 0], [0.1, 0.9, 0], [0, 0, 1.0], [0, 0.2, 0.98]]])
    tv = torch.tensor([[True, True, False, True]])  # token 2 (the best match for mask token 2) is padding
    mv = torch.tensor([[True, True, False]])
    picked, fuse = aligned_text(m, mv, t, tv)
    assert torch.equal(picked[0, 0], t[0, 0]) and torch.equal(picked[0, 1], t[0, 1])
    assert torch.equal(picked[0, 2], t[0, 3])  # the argmax among valid tokens, never the padded one
    assert fuse.tolist() == [[True, True, False]]  # background tokens are not fused
    # Legacy fusion averages the encoder feature with the learned projection, only where fused.
    vq = VQModel(VQGANConfig(**{**TINY, "text_dim": 3, "fusion_mode": "legacy"}))
    z = torch.randn(1, 16, 1, 3)
    with torch.no_grad():
        out = vq.fuse(z, picked, fuse)
        proj = vq.text_proj(picked).transpose(1, 2).reshape(1, 16, 1, 3)
    torch.testing.assert_close(out[..., :2], (z[..., :2] + proj[..., :2]) / 2)
    torch.testing.assert_close(out[..., 2], z[..., 2])
    # A caption with no valid word fuses nothing.
    _, none = aligned_text(m, mv, t, torch.zeros_like(tv))
    assert not none.any()


def test_balanced_fusion_gives_the_word_the_visual_weight():
    """Eq. 9 averages: the word, rescaled to the visual vector's length, is half of the fused
    vector, whatever the scale of the encoder output (the legacy form lost the word at 7%)."""
    torch.manual_seed(0)
    vq = VQModel(VQGANConfig(**{**TINY, "text_dim": 3}))
    words = torch.nn.functional.normalize(torch.randn(1, 3, 3), dim=-1)
    fuse = torch.tensor([[True, True, False]])
    for scale in (0.01, 1.0, 50.0):
        z = scale * torch.randn(1, TINY["code_dim"], 1, 3)
        out = vq.fuse(z, words, fuse)
        t = 2 * out - z  # the word term, recovered from the average
        zn, tn = z.norm(dim=1), t.norm(dim=1)
        torch.testing.assert_close(tn[..., :2], zn[..., :2])          # equal weight: equal norms
        torch.testing.assert_close(out[..., 2], z[..., 2])             # not fused: untouched
        # the word term is the fixed projection of the word, only rescaled
        proj = (words @ vq.word_proj)[0, :2]
        cos = torch.nn.functional.cosine_similarity(t[0, :, 0, :2].t(), proj, dim=-1)
        torch.testing.assert_close(cos, torch.ones(2))
    # Distinct words stay distinct: the fixed projection has orthonormal columns here (3 -> 4).
    torch.testing.assert_close(vq.word_proj @ vq.word_proj.t(), torch.eye(3))


def test_legacy_bundles_load_with_their_fusion(tmp_path):
    """A bundle written before `fusion_mode` existed (no key in its config) loads as legacy."""
    vq = VQModel(VQGANConfig(**{**TINY, "fusion_mode": "legacy"}))
    save_bundle(tmp_path / "b", vq, "vqgan")
    cfg_path = tmp_path / "b" / "config.json"
    meta = json.loads(cfg_path.read_text())
    del meta["config"]["fusion_mode"]
    cfg_path.write_text(json.dumps(meta))
    b = load_bundle(tmp_path / "b", "vqgan")
    assert b.model.cfg.fusion_mode == "legacy" and b.model.text_proj is not None


def test_adaptive_weight_finite_and_hinge():
    torch.manual_seed(0)
    m = VQModel(VQGANConfig(**{**TINY, "fusion": "none"}))
    d = PatchDiscriminator(3, 8, 2)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    rec, _, _ = m(x)
    r = (rec - x).abs().mean()
    g = -d(rec).mean()
    w = adaptive_weight(r, g, m.last_layer())
    assert torch.isfinite(w) and w >= 0 and not w.requires_grad
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)) == 0  # confident and right: no loss
    assert hinge_d_loss(torch.zeros(4), torch.zeros(4)) == 1


def test_dead_code_restart_changes_only_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, restart_every=0)
    before = vq.embed.weight.detach().clone()
    vq.usage.fill_(1.0)
    vq.usage[[3, 7, 11]] = 0.0
    dead = vq.restart_dead(torch.randn(50, 4))
    assert sorted(dead.tolist()) == [3, 7, 11]
    changed = (vq.embed.weight != before).any(1).nonzero().flatten().tolist()
    assert changed == [3, 7, 11]
    # In training, codes that are never picked die and are restarted on batch vectors.
    vq = VectorQuantizer(16, 4, restart_every=5, dead_threshold=0.5, usage_decay=0.5).train()
    vq.embed.weight.data[1:] = -vq.embed.weight.data[0]  # every input will pick code 0 only
    z = vq.embed.weight.data[0].view(1, 4, 1, 1).expand(8, 4, 3, 3) + 0.01 * torch.randn(8, 4, 3, 3)
    for _ in range(5):
        vq(z)
    assert vq(z)[1].unique().numel() > 1


def test_bundle_save_load_bit_identical(tmp_path):
    torch.manual_seed(0)
    m = VQModel(VQGANConfig(**TINY)).eval()
    save_bundle(tmp_path / "b", m, "vqgan")
    b = load_bundle(tmp_path / "b", "vqgan")
    for (k, v), (k2, v2) in zip(m.state_dict().items(), b.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.rand(1, 3, 32, 32)
    text, fuse = torch.randn(1, 16, 8), torch.ones(1, 16, dtype=torch.bool)
    assert torch.equal(m(x, text, fuse)[0], b.model(x, text, fuse)[0])


def test_vgg16_from_safetensors_only(tmp_path):
    net = VGG16Features()
    save_file({f"features.{k}": v.contiguous() for k, v in net.features.state_dict().items()},
              str(tmp_path / "vgg.safetensors"))
    loaded = load_vgg16(tmp_path / "vgg.safetensors")
    feats = loaded(torch.zeros(1, 3, 32, 32))
    assert len(feats) == 5 and feats[0].shape[1] == 64
    (tmp_path / "vgg.pth").write_bytes(b"not read")
    with pytest.raises(ValueError, match="safetensors"):
        load_vgg16(tmp_path / "vgg.pth")


def test_keep_cells():
    keep = torch.zeros(1, 1, 32, 32)
    keep[..., :16, :12] = 1  # 12 px wide: cells of 8 px are kept when at least half covered
    cells = keep_cells(keep, 4).view(4, 4)
    assert cells[:2, :2].all() and not cells[2:].any() and not cells[:, 2:].any()
    codes = torch.arange(16).view(1, 16)
    part = partial_tokens(codes, keep_cells(keep, 4), empty_id=99).view(4, 4)
    assert part[0, 0] == 0 and part[1, 1] == 5 and (part[2:] == 99).all() and (part[:, 2:] == 99).all()


def test_cli_vqgan_sketch_tokenize_recon(synth_ds, tiny_parents, tmp_path, capsys):
    vq_model = {"image_size": 48, "channels": [8, 8, 16, 16], "z_channels": 16, "num_codes": 32, "code_dim": 4}
    cfg = _write_cfg(tmp_path / "v.json", vq_model, {"disc_start": 1, "disc_width": 8, "disc_layers": 2,
                                                     "colour_weight": 3.0}, steps=3)
    run = tmp_path / "vq"
    args = ["-q", "train", "vqgan", "--data", str(synth_ds), "--out", str(run), "--config", cfg,
            "--maskclip", str(tiny_parents / "clip"), "--segmenter", str(tiny_parents / "seg")]
    assert main(args) == 0
    bundle = json.loads((run / "model" / "config.json").read_text())
    assert bundle["kind"] == "vqgan" and set(bundle["parents"]) == {"maskclip", "segmenter"}
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["loss"]["lambda1"] == 0.9 and "segmenter" in resolved["perceptual_network"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"usage", "perplexity", "semantic", "l1", "perceptual", "colour"} <= set(rows[0])
    assert 0 < rows[0]["semantic_grad_share"] < 1 and -1 <= rows[0]["semantic_grad_cos"] <= 1  # probed at step 0
    assert "g_loss" in rows[-1]  # the discriminator switched on at step 1
    ck = max((run / "checkpoints").iterdir())
    assert (ck / "train-only.safetensors").is_file()  # the discriminator is kept for resuming only
    assert not any(k.startswith("disc") for k in load_bundle(run, "vqgan").model.state_dict())
    assert (run / "samples" / "step-00000003.png").is_file()  # reconstructions at every checkpoint
    assert main(args[:-4] + ["--resume", "--max-steps", "4", "--maskclip", str(tiny_parents / "clip"),
                             "--segmenter", str(tiny_parents / "seg")]) == 0

    sk_model = {"image_size": 48, "channels": [4, 8, 8, 8], "z_channels": 8, "num_codes": 16, "code_dim": 4,
                "attention": False}
    sk_cfg = _write_cfg(tmp_path / "k.json", sk_model)
    assert main(["-q", "train", "sketch-vq", "--data", str(synth_ds), "--out", str(tmp_path / "sk"),
                 "--config", sk_cfg]) == 0

    tokens = tmp_path / "tok"
    assert main(["-q", "tokenize", "--model", str(run), "--sketch-vq", str(tmp_path / "sk"),
                 "--data", str(synth_ds), "--out", str(tokens), "--splits", "train,val"]) == 0
    ts = TokenSet(tokens, "val")
    assert ts.image.shape == (len(ts), 36) and ts.image.dtype == np.uint16 and ts.image.max() < 32
    assert ts.sketch.shape == (len(ts), 36) and ts.sketch.max() < 16
    assert ts.text.shape[1] == 4 and (ts.text_len[:, 0] > 2).all()
    # Captions longer than MaskCLIP's 48 positions are counted (and warned about) as cut short.
    from armani.data.dataset import dataset_tokenizer
    from armani.formats.dataset import Index
    tok = dataset_tokenizer(synth_ds)
    long = sum(tok.count(c) > 48 for s in ("train", "val") for r in Index(synth_ds, s) for c in r["captions"])
    assert json.loads((tokens / "tokens.json").read_text())["captions_cut"] == long
    from armani.recipes.tokens import encode_caption
    caps = [c for r in Index(synth_ds, "val") for c in r["captions"]]
    n = max(tok.count(c) for c in caps)
    assert all(encode_caption(tok, c, n)[2] for c in caps)
    cut = [c for c in caps if not encode_caption(tok, c, n - 1)[2]]
    assert cut and all(tok.count(c) == n for c in cut) and encode_caption(tok, cut[0], n - 1)[1] == n - 1
    # Round trip: the stored codes are what the tokenizer gives for the same samples.
    from armani.data.dataset import GarmentDataset
    from armani.inference.image_tokens import load_image_tokenizer
    st = load_image_tokenizer(run)
    ds = GarmentDataset(synth_ds, "val", image_size=48, tokenizer=st.tokenizer, max_text_len=st.max_text_len,
                        augment=False, caption="first")
    items = [ds[i] for i in range(4)]
    b = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "has_mask", "text", "text_len")}
    idx = st.encode(b["image"], b["text"], b["text_len"], b["mask"], b["has_mask"])
    assert np.array_equal(idx.flatten(1).numpy(), ts.image[:4].astype(np.int64))
    assert st.decode(idx).shape == (4, 3, 48, 48)

    for model, name in ((run, "img"), (tmp_path / "sk", "sk")):
        out = tmp_path / f"{name}.json"
        assert main(["-q", "eval", "recon", "--model", str(model), "--data", str(synth_ds), "--json", str(out),
                     "--grid", str(tmp_path / f"{name}.png"), "--max-samples", "20"]) == 0
        rep = json.loads(out.read_text())
        assert rep["psnr"] > 0 and -1 <= rep["ssim"] <= 1 and 0 < rep["codebook_usage"] <= 1
        assert rep["perplexity"] >= 1 and (tmp_path / f"{name}.png").is_file()
        if name == "img":
            assert 0 <= rep["text_code_change"] <= 1 and 0 <= rep["text_code_change_removed"] <= 1
            assert 0 <= rep["maskclip_score"] <= 100 and 0 <= rep["maskclip_score_real"] <= 100
            assert rep["colour_error"] > 0 and 0 <= rep["colour_kept"] <= 1
            by = rep["colour_by_name"]  # per SynthFashion colour name, every image counted once
            assert sum(d["images"] for d in by.values()) == rep["samples"] and set(by) <= set(COLORS)
        else:
            assert rep["text_code_change"] is None and rep["maskclip_score"] is None  # no fusion, no parents
            assert "colour_error" not in rep
    out = capsys.readouterr().out
    assert "PSNR" in out and "codes changed by the caption" in out and "CIEDE2000" in out


def test_colour_loss_sees_hue_not_detail():
    from armani.losses.vq import colour_loss
    red = torch.tensor([200, 30, 36.]).view(1, 3, 1, 1) / 127.5 - 1
    orange = torch.tensor([242, 122, 32.]).view(1, 3, 1, 1) / 127.5 - 1
    x = red.expand(2, 3, 16, 16).clone()
    assert colour_loss(x, x.clone()) == 0
    noise = x + 0.2 * torch.randn(2, 3, 16, 16).sign()  # fine detail averages out within 8 x 8 blocks
    shifted = orange.expand(2, 3, 16, 16).clone().requires_grad_(True)
    assert colour_loss(x, shifted) > 5 * colour_loss(x, noise)
    colour_loss(x, shifted).backward()
    assert shifted.grad.abs().sum() > 0


def test_cli_vqgan_errors(synth_ds, tiny_parents, tmp_path, capsys):
    base = ["-q", "train", "vqgan", "--data", str(synth_ds), "--out", str(tmp_path / "x")]
    assert main(base) == 2  # no segmenter for the perceptual term
    assert "--segmenter" in capsys.readouterr().err
    assert main(base + ["--segmenter", str(tiny_parents / "seg")]) == 2  # no MaskCLIP for fusion
    assert "--maskclip" in capsys.readouterr().err
    # MaskCLIP's grid must match the latent grid (64 px / 8 is not 48 px / 8).
    assert main(base + ["--segmenter", str(tiny_parents / "seg"), "--maskclip", str(tiny_parents / "clip")]) == 2
    assert "grid" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_presets_build_and_step(preset):
    from armani.config import from_dict, load_raw
    raw = load_raw("vqgan", preset)
    cfg = from_dict(VQGANConfig, raw["model"])
    torch.manual_seed(0)
    m = VQModel(cfg)
    n = sum(p.numel() for p in m.parameters())
    if preset == "paper":
        assert (cfg.image_size, cfg.grid, cfg.num_codes) == (256, 16, 1024)  # the paper's 16 x 16 codes of 1024
        assert 40e6 < n < 80e6
    else:
        assert (cfg.image_size, cfg.grid) == (64, 8)
    x = torch.rand(1, 3, cfg.image_size, cfg.image_size) * 2 - 1
    text = torch.nn.functional.normalize(torch.randn(1, cfg.grid ** 2, cfg.text_dim), dim=-1)
    rec, idx, terms = m(x, text, torch.ones(1, cfg.grid ** 2, dtype=torch.bool))
    loss = (rec - x).abs().mean() + terms["codebook"] + terms["commit"]
    loss.backward()
    assert torch.isfinite(loss) and idx.shape == (1, cfg.grid, cfg.grid)
    assert m.encoder.net[0].weight.grad is not None


def test_semantic_loss_reaches_pixels_through_frozen_nets():
    from armani.losses.vq import semantic_loss
    from armani.models.maskclip import MaskCLIP, MaskCLIPConfig
    from armani.models.segmenter import Segmenter, SegmenterConfig
    torch.manual_seed(0)
    seg = Segmenter(SegmenterConfig(image_size=32, channels=(4, 8))).requires_grad_(False)
    clip = MaskCLIP(MaskCLIPConfig(image_size=32, patch=8, mask_width=16, mask_layers=1, mask_heads=2,
                                   vocab_size=50, max_text_len=12, text_width=16, text_layers=0,
                                   embed_dim=8)).requires_grad_(False)
    t, tv, _ = clip.encode_text(torch.randint(3, 50, (2, 12)), torch.tensor([6, 9]))
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    loss = semantic_loss(x, seg, clip, t, tv)
    assert loss.shape == (2,) and ((loss >= 0) & (loss <= 2)).all()
    loss.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_psnr_and_ssim_known_values():
    from armani.eval.recon import psnr, ssim
    x = torch.rand(2, 3, 24, 24) * 0.8
    assert torch.allclose(psnr(x, x + 0.1), torch.full((2,), 20.0, dtype=torch.float64))  # MSE 0.01
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    s = ssim(x, noisy)
    assert (s < 0.9).all() and (s > -1).all()


def test_balanced_l1_makes_blank_sketches_costly():
    from armani.losses.vq import balanced_l1
    x = -torch.ones(1, 1, 16, 16)
    x[..., 8, :] = 1  # one edge line: 1/16 of the pixels
    blank = -torch.ones_like(x)
    assert (x - blank).abs().mean() < 0.2  # plain L1 barely minds an empty sketch
    assert torch.isclose(balanced_l1(x, blank), torch.tensor(1.0))  # the balanced one does
    assert balanced_l1(x, x) == 0


def test_semantic_contrastive_loss_hand_computed():
    """Two images, one mask token each, captions of one word each: the loss is the symmetric
    cross entropy of the 2 x 2 similarity matrix at MaskCLIP's temperature (eq. 6-8)."""
    import math

    from armani.losses.contrastive import tokenwise_contrastive_loss
    m = torch.tensor([[[1.0, 0.0]], [[0.6, 0.8]]])       # (B=2, N=1, D=2), unit vectors
    t = torch.tensor([[[0.8, 0.6]], [[0.0, 1.0]]])       # (C=2, L=1, D=2)
    ones = torch.ones(2, 1, dtype=torch.bool)
    scale = 10.0
    s = [[0.8, 0.0], [0.96, 0.8]]  # s[i][j] = m_i . t_j
    rows = -sum(math.log(math.exp(scale * s[i][i]) / sum(math.exp(scale * x) for x in s[i])) for i in range(2)) / 2
    cols = -sum(math.log(math.exp(scale * s[j][j]) / sum(math.exp(scale * s[i][j]) for i in range(2)))
                for j in range(2)) / 2
    got = tokenwise_contrastive_loss(m, ones, t, ones, torch.tensor(math.log(scale)))["loss"]
    assert abs(float(got) - 0.5 * (rows + cols)) < 1e-5
    # Without negatives (1 - D) the second image scores well on its own caption (0.8) even
    # though it matches the first caption better (0.96); with them it is penalised.
    from armani.losses.contrastive import pair_similarity
    assert torch.allclose(1 - pair_similarity(m, ones, t, ones), torch.tensor([0.2, 0.2]))


def test_semantic_contrastive_term_reaches_pixels(tiny_parents):
    from armani.losses.vq import semantic_term
    seg = load_bundle(tiny_parents / "seg", "segmenter").model
    clip = load_bundle(tiny_parents / "clip", "maskclip").model
    t, tv, _ = clip.encode_text(torch.randint(3, 50, (3, 12)), torch.tensor([6, 9, 7]))
    x = (torch.rand(3, 3, 48, 48) * 2 - 1).requires_grad_(True)
    loss = semantic_term("contrastive", x, seg, clip, t, tv)
    assert loss.dim() == 0 and 0 < float(loss.detach()) < 2 * math.log(3) + 1
    loss.backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="contrastive"):
        semantic_term("bogus", x, seg, clip, t, tv)


def test_text_code_change_on_a_toy_model(synth_ds, tiny_parents):
    """The probe counts what the caption decides: nothing when the word has no weight or the
    swapped caption is the same; something when the codes are the words alone."""
    from armani.data.dataset import GarmentDataset
    from armani.inference.image_tokens import ImageTokenizer
    seg = load_bundle(tiny_parents / "seg", "segmenter").model
    clip = load_bundle(tiny_parents / "clip", "maskclip").model
    ds = GarmentDataset(synth_ds, "train", image_size=48, max_text_len=48, augment=False, caption="first")
    items = [ds[i] for i in range(6)]
    b = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "has_mask", "text", "text_len")}
    args = (b["image"], b["text"], b["text_len"], b["mask"], b["has_mask"])

    def probe(weight, same=False):
        torch.manual_seed(0)
        cfg = VQGANConfig(**{**TINY, "image_size": 48, "channels": (8, 16, 16, 16), "text_dim": 8,
                             "fusion_weight": weight, "num_codes": 64})
        st = ImageTokenizer(VQModel(cfg).eval(), clip, seg, None, 48, tiny_parents)
        a = list(args)
        if same:
            a[1], a[2] = a[1][:1].expand_as(a[1]), a[2][:1].expand_as(a[2])
        idx, counts = st.text_probe(*a)
        assert torch.equal(idx, st.encode(*a))  # the probe's codes are the tokenizer's
        return counts
    none = probe(0.0)
    assert none["positions"] > 0 and none["swapped"] == 0 and none["removed"] == 0
    words = probe(1.0)
    assert 0 < words["swapped"] <= words["positions"] and words["removed"] > 0
    assert probe(1.0, same=True)["swapped"] == 0


def test_perceptual_every_skips_steps(synth_ds, tiny_parents, tmp_path):
    from torch.utils.data import default_collate

    from armani.train.stage1 import vqgan_task
    vq_model = {"image_size": 48, "channels": [8, 8, 16, 16], "z_channels": 16, "num_codes": 32, "code_dim": 4}
    cfg = _write_cfg(tmp_path / "v.json", vq_model, {"disc_weight": 0.0, "perceptual_every": 3})
    task, _ = vqgan_task(synth_ds, cfg, maskclip=tiny_parents / "clip", segmenter=tiny_parents / "seg")
    model = task.build_model()
    ds = task.train_dataset()
    batch = default_collate([ds[i] for i in range(2)])
    seen = []
    for step in range(4):
        task.step = step
        seen.append("perceptual" in task.compute_loss(model, batch))
    assert seen == [True, False, False, True]
