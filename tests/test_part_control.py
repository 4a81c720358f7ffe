"""The part-control test's pieces: its prompt pairs, the parts each category makes optional,
the two-way paired bootstrap and the judge's per-part gate."""
import itertools
import re
from collections import Counter

import numpy as np
import pytest

from armani.data.part_prompts import OPTIONAL_PARTS, prompt_pair, with_part
from armani.data.synth import make_sample
from armani.data.vocab import CATEGORIES, JUDGE_PARTS, parts_named
from armani.eval.metrics import two_way_bootstrap
from armani.eval.part_control import arm_summary, paired_summary, summarise


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z-]+", text.lower())


def test_prompt_pairs_differ_only_in_the_part():
    seen = 0
    for i in range(60):
        s = make_sample(3, i, 64)
        a = s["attributes"]
        for p in OPTIONAL_PARTS[a["category"]]:
            named, unnamed = prompt_pair(a, s["parts"], p, seed=i)
            assert p in parts_named(named) and p not in parts_named(unnamed), (p, named, unnamed)
            assert parts_named(named) - {p} == parts_named(unnamed), (p, named, unnamed)
            # What is taken out is the part's phrase and the words that joined it.
            extra = list((Counter(_words(named)) - Counter(_words(unnamed))).elements())
            assert not set(_words(unnamed)) - set(_words(named)) - {"and", "a", "plain", "front"}, (named, unnamed)
            phrase = {w for w in extra if w not in ("and", "with")}
            assert phrase and all(re.search(rf"\b{re.escape(w)}\b", named.lower()) for w in phrase)
            assert parts_named(" ".join(phrase)) == {p}, (p, phrase, named)
            seen += 1
    assert seen > 150


def test_a_part_the_garment_has_keeps_its_own_words():
    for i in range(200):
        s = make_sample(5, i, 64)
        a = s["attributes"]
        if a["zipper"] and "zipper" in OPTIONAL_PARTS[a["category"]]:
            named, _ = prompt_pair(a, s["parts"], "zipper", seed=i)
            assert a["zipper_color"] in named  # its own colour, not a stand-in
            assert with_part(a, s["parts"], "zipper")[0] == a
            return
    pytest.fail("no garment with a zip in 200 samples")


def test_optional_parts_are_drawn_on_some_garments_and_not_on_others():
    from armani.data.synth import render, sample_attributes
    from armani.labels import LABEL_ID
    rng = np.random.default_rng(0)
    for cat in CATEGORIES:
        has = np.zeros(len(JUDGE_PARTS), int)
        n = 120
        for _ in range(n):
            a = sample_attributes(rng, cat)
            _, mask = render(a, 64, rng)
            present = set(np.unique(mask).tolist())
            has += [LABEL_ID[p] in present for p in JUDGE_PARTS]
        for j, p in enumerate(JUDGE_PARTS):
            if p in OPTIONAL_PARTS[cat]:
                assert 0 < has[j] < n, (cat, p, has[j])
            else:  # never drawn, or always: naming it tells nothing
                assert has[j] in (0, n) or has[j] >= 0.97 * n or has[j] <= 0.03 * n, (cat, p, has[j])


def _exact_quantiles(block: np.ndarray, q) -> np.ndarray:
    """Every equally likely two-way resample of a small (S, K) block, enumerated."""
    s, k = block.shape
    vals = [block[np.ix_(rs, cs)].mean() for rs in itertools.product(range(s), repeat=s)
            for cs in itertools.product(range(k), repeat=k)]
    return np.quantile(vals, q), np.mean(vals), np.std(vals)


def test_two_way_bootstrap_matches_the_enumerated_distribution():
    rng = np.random.default_rng(1)
    block = rng.normal(size=(2, 4))
    (lo, hi), mean, std = _exact_quantiles(block, [0.025, 0.975])
    draws = two_way_bootstrap([block], n=20000, seed=3)
    assert draws.mean() == pytest.approx(mean, abs=0.01)
    assert draws.std() == pytest.approx(std, rel=0.03)
    assert np.quantile(draws, [0.025, 0.975]) == pytest.approx([lo, hi], abs=0.03)


def test_two_way_bootstrap_of_several_blocks_is_the_mean_of_their_means():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 3)) + 5
    draws = two_way_bootstrap([a, b], n=4000, seed=0)
    assert draws.mean() == pytest.approx((a.mean() + b.mean()) / 2, abs=0.05)
    # Seeds are resampled once for both blocks: with one seed row the interval shrinks to the pairs' own.
    one = two_way_bootstrap([a[:1], b[:1]], n=4000, seed=0)
    assert one.std() < draws.std() * 3


def _runs(effects: dict[str, np.ndarray], samples: int = 1) -> list[dict]:
    """Per-seed records whose pairs have the given (seeds, pairs) effects: named 1 / unnamed 0
    gives an effect of 1, and so on."""
    s = next(iter(effects.values())).shape[0]
    pairs = [{"part": p, "category": "coat", "holdout": False} for p, e in effects.items() for _ in range(e.shape[1])]
    runs = []
    for k in range(s):
        eff = np.concatenate([e[k] for e in effects.values()])
        named = (eff > 0).astype(float)[:, None].repeat(samples, 1)
        unnamed = (eff < 0).astype(float)[:, None].repeat(samples, 1)
        nan = np.full((2 * len(pairs), samples), np.nan)
        runs.append({"pairs": pairs, "named": named.tolist(), "unnamed": unnamed.tolist(), "category": nan,
                     "color": nan, "pattern": nan, "gap_pairs": [], "gap": []})
    return runs


def test_paired_difference_is_exact_when_arms_differ_by_a_constant_pattern():
    rng = np.random.default_rng(4)
    hood = rng.integers(0, 2, size=(3, 6)).astype(float)
    zip_ = rng.integers(-1, 2, size=(3, 5)).astype(float)
    a = _runs({"hood": hood, "zipper": zip_})
    b = _runs({"hood": np.zeros_like(hood), "zipper": np.zeros_like(zip_)})
    d = paired_summary(a, b, ["hood", "zipper"])["part_control"]
    assert d["hood"]["effect"] == pytest.approx(hood.mean())
    assert d["mean"]["effect"] == pytest.approx((hood.mean() + zip_.mean()) / 2)
    # Paired: the same resamples for both arms, so the difference of an arm with itself is 0 exactly.
    same = paired_summary(a, a, ["hood", "zipper"])["part_control"]["mean"]
    assert same["effect"] == 0 and same["ci95"] == [0, 0]


def test_the_judge_gate_leaves_out_parts_it_reads_badly():
    from armani.eval.judge import PART_GATE, scored_parts
    parts = {"hood": {"balanced_accuracy": 0.97}, "zipper": {"balanced_accuracy": PART_GATE - 0.01},
             "logo": {"balanced_accuracy": None}}
    assert scored_parts(parts) == ["hood"]
    runs = _runs({"hood": np.ones((3, 4)), "zipper": -np.ones((3, 4))})
    s = arm_summary(runs, scored_parts(parts))
    assert set(s["part_control"]) == {"hood", "mean"} and s["part_control"]["mean"]["effect"] == 1
    assert s["part_control_unscored"]["zipper"]["effect"] == -1 and "mean" not in s["part_control_unscored"]
    assert s["part_control"]["hood"]["named"] == 1 and s["part_control"]["hood"]["unnamed"] == 0


def test_summarise_reports_each_key_and_their_mean():
    out = summarise({"a": np.full((2, 3), 0.5), "b": np.zeros((2, 2))})
    assert out["a"]["effect"] == 0.5 and out["a"]["ci95"] == [0.5, 0.5] and out["a"]["pairs"] == 3
    assert out["mean"]["effect"] == 0.25


@pytest.mark.parametrize("preset", ["cpu", "gpu", "micro"])
def test_every_preset_gives_the_tokenizers_and_maskclip_one_grid(preset, tmp_path):
    """The fused codebook needs MaskCLIP's mask tokens on stage 1's latent grid, and stage 2
    the sketch tokens on a grid of their own; a preset that breaks this fails here, not on a
    lent GPU."""
    import json

    from armani.models.maskclip import MaskCLIPConfig
    from armani.models.vqgan import VQGANConfig
    from armani.recipes.experiment import PRESETS, stage_config
    p = PRESETS[preset]

    def model(kind, cls):
        raw = json.loads(open(stage_config(tmp_path, kind, kind, p)).read())["model"]
        base = json.loads(open(f"src/armani/configs/{kind}-cpu.json").read())["model"]
        fields = cls.__dataclass_fields__
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in {**base, **raw}.items() if k in fields})

    vq, sk, mc = model("vqgan", VQGANConfig), model("sketch-vq", VQGANConfig), model("maskclip", MaskCLIPConfig)
    assert vq.image_size == sk.image_size == mc.image_size == p["size"]
    assert mc.image_size // mc.patch == vq.grid
    assert p["size"] % vq.factor == 0 and p["size"] % sk.factor == 0
    assert p["seeds"] >= 3 and "dalle" in p["arms"] and "armani" in p["arms"]


def test_the_pyramid_judge_maps_parts_at_a_quarter_size_and_round_trips(tmp_path):
    import torch

    from armani.formats.bundle import load_bundle, save_bundle
    from armani.models.judge import AttributeJudge, JudgeConfig
    cfg = JudgeConfig(image_size=32, channels=(4, 8, 8, 16), part_map="pyramid", pyramid_width=8)
    m = AttributeJudge(cfg).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = m(x)
    assert out["part_map"].shape == (2, len(JUDGE_PARTS), 8, 8)
    assert torch.equal(out["parts"], out["part_map"].amax((2, 3)))
    # The deeper levels reach the map: changing their weights changes it.
    with torch.no_grad():
        m.lateral[-1].weight.add_(1.0)
    assert not torch.allclose(m(x)["part_map"], out["part_map"])
    save_bundle(tmp_path / "j", m, "judge")
    back = load_bundle(tmp_path / "j", "judge").model.eval()
    assert back.cfg.part_map == "pyramid" and torch.equal(back(x)["part_map"], m(x)["part_map"])
    with pytest.raises(ValueError, match="part_map"):
        AttributeJudge(JudgeConfig(part_map="fpn"))
