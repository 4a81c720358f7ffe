from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from armani.config import from_dict, load_raw
from armani.formats.bundle import load_bundle, save_bundle
from armani.losses.contrastive import (
    global_contrastive_loss,
    pair_similarity,
    token_similarity,
    tokenwise_contrastive_loss,
)
from armani.models.maskclip import MaskCLIP, MaskCLIPConfig
from armani.models.segmenter import Segmenter, SegmenterConfig

TINY = MaskCLIPConfig(image_size=32, patch=8, mask_width=32, mask_layers=1, mask_heads=2, vocab_size=50,
                      max_text_len=12, text_width=32, text_layers=1, text_heads=2, embed_dim=16)


def brute_similarity(m, mv, t, tv):
    B, C = m.shape[0], t.shape[0]
    sm, st = torch.zeros(B, C), torch.zeros(B, C)
    for b in range(B):
        for c in range(C):
            s = m[b] @ t[c].T
            rows = [max(float(s[i, j]) for j in range(s.shape[1]) if tv[c, j]) for i in range(s.shape[0]) if mv[b, i]]
            cols = [max(float(s[i, j]) for i in range(s.shape[0]) if mv[b, i]) for j in range(s.shape[1]) if tv[c, j]]
            sm[b, c], st[b, c] = sum(rows) / len(rows), sum(cols) / len(cols)
    return sm, st


def test_tokenwise_similarity_matches_hand_computation():
    # Two masks of 2 tokens, two texts of 3 tokens (last one padding), 2-d embeddings.
    m = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    t = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]])
    mv = torch.tensor([[True, True], [True, False]])
    tv = torch.tensor([[True, True, False], [True, True, False]])
    sm, st = token_similarity(m, mv, t, tv)
    # mask 0 vs text 0: token (1,0) best 1.0; token (0,1) best 0.8 -> 0.9.
    # text 0 vs mask 0: token (1,0) best 1.0, token (0.6,0.8) best 0.8 -> 0.9.
    # mask 1 (one valid token (1,0)) vs text 1: best 0.0 (padding (1,0) excluded).
    assert sm[0, 0].item() == pytest.approx(0.9) and st[0, 0].item() == pytest.approx(0.9)
    assert sm[1, 1].item() == pytest.approx(0.0) and st[1, 1].item() == pytest.approx(0.0)
    bsm, bst = brute_similarity(m, mv, t, tv)
    assert torch.allclose(sm, bsm) and torch.allclose(st, bst)
    # The loss by hand: symmetric cross entropy at logit scale 1.
    out = tokenwise_contrastive_loss(m, mv, t, tv, torch.tensor(0.0))
    lm = 0.5 * (F.cross_entropy(sm, torch.arange(2)) + F.cross_entropy(st.T, torch.arange(2)))
    assert out["loss"].item() == pytest.approx(lm.item())
    assert torch.allclose(pair_similarity(m, mv, t, tv), 0.5 * (sm.diag() + st.diag()))


def test_loss_is_symmetric_in_its_two_sides():
    g = torch.Generator().manual_seed(0)
    m = F.normalize(torch.randn(4, 5, 8, generator=g), dim=-1)
    t = F.normalize(torch.randn(4, 7, 8, generator=g), dim=-1)
    mv = torch.rand(4, 5, generator=g) > 0.3
    tv = torch.rand(4, 7, generator=g) > 0.3
    mv[:, 0] = tv[:, 0] = True
    sm, st = token_similarity(m, mv, t, tv)
    sm2, st2 = token_similarity(t, tv, m, mv)  # swap the roles of masks and texts
    assert torch.allclose(sm, st2.T) and torch.allclose(st, sm2.T)
    a = tokenwise_contrastive_loss(m, mv, t, tv, torch.tensor(2.0))["loss"]
    b = tokenwise_contrastive_loss(t, tv, m, mv, torch.tensor(2.0))["loss"]
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    p = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    q = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    assert global_contrastive_loss(p, q, torch.tensor(1.0))["loss"].item() == pytest.approx(
        global_contrastive_loss(q, p, torch.tensor(1.0))["loss"].item())


def test_invalid_tokens_never_win_or_count():
    g = torch.Generator().manual_seed(1)
    m = F.normalize(torch.randn(3, 4, 6, generator=g), dim=-1)
    t = F.normalize(torch.randn(3, 5, 6, generator=g), dim=-1)
    mv = torch.tensor([[True, True, False, False]] * 3)
    tv = torch.tensor([[True, True, True, False, False]] * 3)
    base = token_similarity(m, mv, t, tv)
    # Make the invalid tokens perfect matches for everything: nothing may change.
    m2, t2 = m.clone(), t.clone()
    m2[:, 2:] = t[:, :1]
    t2[:, 3:] = m[:, :1]
    after = token_similarity(m2, mv, t2, tv)
    assert torch.allclose(base[0], after[0]) and torch.allclose(base[1], after[1])
    model = MaskCLIP(TINY)
    idx = model.align(m2, t2, tv)
    assert (idx < 3).all()


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 32, 32, dtype=torch.long)
    ids = torch.zeros(n, 12, dtype=torch.long)
    lens = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        label = 1 + i % 14
        y, x = torch.randint(0, 24, (2,), generator=g).tolist()
        masks[i, y:y + 8, x:x + 8] = label
        words = [3 + label, 20 + i]
        ids[i, :4] = torch.tensor([1, *words, 2])
        lens[i] = 4
    return masks, ids, lens


def test_background_and_padding_ignored_by_encoders():
    model = MaskCLIP(TINY).eval()
    masks, ids, lens = _batch()
    m, mv, _ = model.encode_mask(masks)
    assert (mv.sum(1) >= 1).all() and (mv.sum(1) <= 4).all()  # an 8x8 square touches 1 to 4 patches
    t, tv, _ = model.encode_text(ids, lens)
    assert tv.sum(1).tolist() == [2] * 6  # [BOS], [EOS] and padding are not words
    ids2 = ids.clone()
    ids2[:, 5:] = 7  # change padding ids: valid token features must not move
    t2, _, _ = model.encode_text(ids2, lens)
    assert torch.allclose(t[tv], t2[tv], atol=1e-6)


def test_gradients_reach_both_encoders_and_overfit_one_batch():
    torch.manual_seed(0)
    model = MaskCLIP(TINY)
    masks, ids, lens = _batch()
    loss = model(masks, ids, lens)["loss"]
    loss.backward()
    assert model.mask_encoder.embed.weight.grad.abs().sum() > 0
    assert model.text_encoder.tok.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad is not None
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    first = loss.item()
    for _ in range(60):
        opt.zero_grad()
        loss = model(masks, ids, lens)["loss"]
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    with torch.no_grad():
        m, mv, _ = model.encode_mask(masks)
        t, tv, _ = model.encode_text(ids, lens)
        sm, _ = token_similarity(m, mv, t, tv)
    assert (sm.diag() > sm.masked_fill(torch.eye(6, dtype=torch.bool), -9).amax(1)).all()  # matched > shuffled


def test_save_load_bit_identical(tmp_path):
    torch.manual_seed(0)
    for kind, model in (("maskclip", MaskCLIP(TINY)), ("segmenter", Segmenter(SegmenterConfig(channels=(4, 8))))):
        save_bundle(tmp_path / kind, model, kind)
        loaded = load_bundle(tmp_path / kind, kind).model
        for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
        with pytest.raises(ValueError, match="holds a"):
            load_bundle(tmp_path / kind, "vqgan")


def test_segmenter_is_differentiable_to_pixels():
    seg = Segmenter(SegmenterConfig(image_size=32, channels=(4, 8, 16)))
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = seg(x)
    assert out.shape == (2, 15, 32, 32)
    out[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    feats = seg.features(x)
    assert [f.shape[-1] for f in feats] == [32, 16, 8]


@pytest.mark.slow
@pytest.mark.parametrize("kind,cls", [("maskclip", MaskCLIPConfig), ("segmenter", SegmenterConfig)])
def test_paper_presets_build_and_step(kind, cls):
    preset = "paper" if kind == "maskclip" else "large"
    cfg = from_dict(cls, load_raw(kind, preset)["model"])
    torch.manual_seed(0)
    if kind == "maskclip":
        model = MaskCLIP(cfg)
        text_params = sum(p.numel() for p in model.text_encoder.parameters())
        assert 55e6 < text_params < 70e6  # the paper's 63M text side with CLIP's 49,408-token vocabulary
        masks = torch.zeros(2, 256, 256, dtype=torch.long)
        masks[:, 64:192, 64:192] = 1
        masks[1, 100:110, 120:130] = 7
        ids = torch.randint(3, 1000, (2, 77))
        loss = model(masks, ids, torch.tensor([20, 30]))["loss"]
    else:
        model = Segmenter(cfg)
        loss = model(torch.randn(1, 3, 256, 256)).logsumexp(1).mean()
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
