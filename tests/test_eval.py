"""Evaluation: the metric maths against independent computations, the foreign-network
loaders with stand-in files, the attribute judge, `eval generate`, `eval compare` and the
paper experiment end to end with the micro preset."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from armani.eval import metrics


def test_frechet_distance_matches_scipy_sqrtm():
    import scipy.linalg as scipy_linalg  # the independent reference (a test dependency)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 24))
    b = rng.normal(size=(280, 24)) @ rng.normal(size=(24, 24)) * 0.3 + 0.5
    mu1, c1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, c2 = b.mean(0), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(c1 @ c2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))
    got = metrics.frechet_distance(mu1, c1, mu2, c2)
    assert got == pytest.approx(ref, rel=1e-6)
    assert metrics.fid(a, b) == pytest.approx(ref, rel=1e-6)
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-8)


def _mmd_loops(x, y):
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 1.0
    # One subset of the whole set: a permutation, which the statistic does not depend on.
    mean, std = metrics.kid(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(_mmd_loops(x, y), rel=1e-9) and std == 0
    a, b = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))  # one distribution: KID near 0
    same, _ = metrics.kid(a, b, subsets=20, subset_size=100)
    shifted, _ = metrics.kid(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 * shifted
    with pytest.raises(ValueError):
        metrics.kid(x[:1], y)


def test_inception_score_on_known_inputs():
    c = 10
    confident = np.eye(c)[np.arange(200) % c] * 0.999 + 0.001 / c  # each class equally often, sure of each
    assert metrics.inception_score(confident, splits=1)[0] == pytest.approx(c, rel=0.02)
    same = np.tile(np.eye(c)[3], (50, 1))  # every image the same class
    assert metrics.inception_score(same, splits=5)[0] == pytest.approx(1.0, abs=1e-6)
    uniform = np.full((40, c), 1 / c)
    assert metrics.inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-9)


def test_clip_score_clamps_per_sample():
    img = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    txt = np.array([[2.0, 0.0], [-1.0, 0.0], [4.0, 3.0]])
    np.testing.assert_allclose(metrics.clip_score(img, txt), [100.0, 0.0, 96.0])


def test_bootstrap_resamples_whole_groups():
    v = np.array([1.0, 1.0, 0.0, 0.0])
    lo, hi = metrics.bootstrap_ci(v, groups=[0, 0, 1, 1], n=2000)
    assert lo == 0.0 and hi == 1.0  # two groups: the mean is 0, 0.5 or 1
    lo, hi = metrics.bootstrap_ci(np.full(30, 0.7))
    assert lo == pytest.approx(0.7) and hi == pytest.approx(0.7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    lo, hi = metrics.bootstrap_ci(x)
    assert lo < x.mean() < hi and 0.1 < hi - lo < 0.3  # about 2 x 1.96 / sqrt(400)


class _StandInInception(torch.nn.Module):
    """Scripted like the StyleGAN archive: features or probabilities of (N, 3, 299, 299) in [0, 255]."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 8)

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        assert x.shape[-1] == 299 and x.shape[-2] == 299
        f = torch.cat([x.mean((2, 3)) / 255.0, x.amax((2, 3)) / 255.0], 1)
        if return_features:
            return f
        return self.proj(x.mean((2, 3)) / 255.0).softmax(1)


def test_inception_loads_a_torchscript_file_and_refuses_pickles(tmp_path, monkeypatch):
    from armani.eval.foreign import INCEPTION_ENV, Inception, Unavailable
    path = tmp_path / "inception.pt"
    torch.jit.save(torch.jit.script(_StandInInception()), str(path))
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    feats, probs = Inception(path)(imgs, batch=2)
    assert feats.shape == (5, 6) and probs.shape == (5, 8)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(feats[:, :3], imgs.reshape(5, -1, 3).mean(1) / 255.0, atol=0.01)
    monkeypatch.setenv(INCEPTION_ENV, str(path))
    assert Inception().path == path
    monkeypatch.delenv(INCEPTION_ENV)
    with pytest.raises(Unavailable, match="--inception"):
        Inception()
    with pytest.raises(Unavailable, match="not found"):
        Inception(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(Unavailable, match="not a TorchScript"):
        Inception(bad)


def test_score_images_with_stand_in_feature_networks():
    from armani.eval.generation import Prompt, score_images
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    prompts = [Prompt(str(i), f"caption {i}", {}, real[i]) for i in range(6)]

    def feats(x):  # a stand-in Inception: colour statistics as features, a softmax as classes
        f = np.concatenate([x.reshape(len(x), -1, 3).mean(1), x.reshape(len(x), -1, 3).std(1)], 1) / 255
        e = np.exp(f[:, :4] * 5)
        return f, e / e.sum(1, keepdims=True)

    class Clip:  # a stand-in CLIP: images and captions to fixed vectors
        def images(self, x):
            return x.reshape(len(x), -1, 3).mean(1) - 128

        def texts(self, t):
            return np.tile([1.0, 0.5, -0.2], (len(t), 1))

    res = score_images(fake, prompts, 2, inception=feats, clip=Clip(), reasons={"attribute_accuracy": "no judge"})
    f_real, _ = feats(real)
    f_fake, p_fake = feats(fake)
    assert res["fid"] == pytest.approx(metrics.fid(f_real, f_fake), rel=1e-9)
    assert res["kid"] == pytest.approx(metrics.kid(f_real, f_fake, subsets=50, subset_size=6)[0], rel=1e-9)
    assert res["is"] == pytest.approx(metrics.inception_score(p_fake)[0], rel=1e-9)
    cs = metrics.clip_score(Clip().images(fake), Clip().texts([""] * 12))
    assert res["clipscore"] == pytest.approx(cs.mean())
    assert res["ci95"]["clipscore"][0] <= res["clipscore"] <= res["ci95"]["clipscore"][1]
    assert res["attribute_accuracy"] is None and res["unavailable"] == {"attribute_accuracy": "no judge"}
    assert res["maskclip_score"] is None


def _tiny_clip_folder(root):
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from armani.models.clip import CLIP, CLIPConfig, TowerConfig
    vocab = {w: i for i, w in enumerate(["<unk>", "<|startoftext|>", "<|endoftext|>", "a", "red", "blue", "dress",
                                           "shirt", "with", "zip"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A <|endoftext|>",
                                                       special_tokens=[("<|startoftext|>", 1), ("<|endoftext|>", 2)])
    root.mkdir()
    tok.save(str(root / "tokenizer.json"))
    v = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
             patch_size=8)
    t = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=10,
             max_position_embeddings=8)
    (root / "config.json").write_text(json.dumps({"vision_config": v, "text_config": t, "projection_dim": 8}))
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(TowerConfig(**v), TowerConfig(**t), 8))
    save_file({k: p.contiguous() for k, p in model.state_dict().items()}, str(root / "model.safetensors"))
    return model


def test_clip_scorer_reads_a_hugging_face_folder(tmp_path):
    from armani.eval.foreign import ClipScorer, Unavailable
    model = _tiny_clip_folder(tmp_path / "clip")
    sc = ClipScorer(tmp_path / "clip")
    ids, eot = sc.tokens(["a red dress", "a blue shirt with a zip zip zip zip"])
    assert ids[0, :5].tolist() == [1, 3, 4, 6, 2] and eot[0] == 4
    assert ids.shape == (2, 8) and ids[1, -1] == 2 and eot[1] == 7  # cut to 8, the end token kept
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    emb = sc.images(imgs)
    x = (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255 - sc.mean) / sc.std
    with torch.no_grad():
        np.testing.assert_allclose(emb, model.encode_image(x).double().numpy(), rtol=1e-4, atol=1e-5)
    assert sc.texts(["a red dress"] * 3).shape == (3, 8)
    (tmp_path / "clip" / "tokenizer.json").unlink()
    with pytest.raises(Unavailable, match="tokenizer.json"):
        ClipScorer(tmp_path / "clip")


def test_prompted_attributes_follow_the_caption():
    from armani.data.vocab import CATEGORIES, COLORS, PATTERNS
    from armani.eval.judge import prompted
    attrs = {"category": "jacket", "color": "brown", "pattern": "striped"}
    want = prompted("A brown and navy striped jacket with a brown zipper and two pockets", attrs)
    # A patterned garment's colour is not judged (its main colour is ambiguous to the eye).
    assert want == {"category": CATEGORIES.index("jacket"), "pattern": PATTERNS.index("striped"),
                    "part:zipper": True, "part:pocket": True}
    assert prompted("A jacket", attrs) == {"category": CATEGORIES.index("jacket")}
    solid = {"category": "dress", "color": "red", "pattern": "solid"}
    assert prompted("A red dress with a hood", solid) == {"category": CATEGORIES.index("dress"),
                                                          "color": list(COLORS).index("red"), "part:hood": True}
    assert "color" not in prompted("A dress in a reddish tone", solid)


def test_judge_trains_and_reports(synth_ds, tmp_path):
    from armani.cli import main
    from armani.eval.judge import Judge, evaluate_judge
    cfg = tmp_path / "j.json"
    cfg.write_text(json.dumps({"model": {"image_size": 48, "channels": [4, 8]},
                               "train": {"max_steps": 3, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 3}}))
    assert main(["-q", "train", "judge", "--data", str(synth_ds), "--out", str(tmp_path / "j"),
                 "--config", str(cfg)]) == 0
    rep = evaluate_judge(tmp_path / "j", synth_ds, "test")
    assert rep["samples"] > 0 and set(rep["accuracy"]) == {"category", "color", "color_all", "pattern"}
    assert all(0 <= v <= 1 for v in rep["accuracy"].values())
    # An untrained judge is far from 95%: it must not be trusted.
    assert rep["usable"] is False and rep["trusted"] == []
    r = Judge(tmp_path / "j").read(np.full((2, 48, 48, 3), 255, np.uint8))
    assert r["parts"].shape == (2, 11) and r["category"].shape == (2,)


def test_judge_refuses_data_without_attributes(samples, tmp_path):
    from armani.data.importers import import_dataset
    from armani.train.judge import judge_task
    import_dataset("vitonhd", samples / "vitonhd", tmp_path / "v", tokenizer_vocab=300)
    with pytest.raises(ValueError, match="attributes"):
        judge_task(tmp_path / "v")


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from armani.recipes.experiment import ExperimentConfig, run_experiment
    out = tmp_path_factory.mktemp("exp") / "paper"
    summary = run_experiment(ExperimentConfig(out, "micro", quiet=True), log=lambda *_: None)
    return out, summary


@pytest.mark.slow
def test_experiment_micro_end_to_end(micro):
    from armani.recipes.experiment import EVAL_MODES, PRESETS
    out, summary = micro
    preset = PRESETS["micro"]
    arms = preset["arms"]
    res = json.loads((out / "results.json").read_text())
    assert set(arms) <= set(res) and res["equal_steps"] is True
    scored = res["judge"]["scored_parts"]
    assert scored and res["judge"]["part_gate"] == preset["part_gate"]
    for v in arms:
        r = res[v]
        assert r["seeds"] == [0, 1, 2] and len(r["steps"]) == 3
        pc = r["part_control"]
        assert set(pc) - {"mean"} <= set(scored) and "mean" in pc
        for d in pc.values():
            assert -1 <= d["effect"] <= 1 and d["ci95"][0] <= d["effect"] + 1e-9 <= d["ci95"][1] + 2e-9
        assert {"category", "color", "pattern"} & set(r["attributes"])
        assert "mean" in r["likelihood_gap"] and r["stage1"]["judge_ceiling"]["parts"]
        if v != "dalle":
            assert set(r["vs_baseline"]) == {"part_control", "holdout", "likelihood_gap", "attributes"}
        assert set(r["modes"]) == set(EVAL_MODES) | {"holdout"}
        for m in r["modes"].values():
            assert m["fid"] is None and "Inception" in m["unavailable"]["fid"]
            assert m["maskclip_score"] is not None and 0 <= m["maskclip_score"] <= 100
    # Every seed's raw record: the same pairs in every arm and seed (what makes the bootstrap paired).
    recs = [json.loads((out / "part_control" / f"{v}-s{k}.json").read_text()) for v in arms for k in range(3)]
    assert all(r["pairs"] == recs[0]["pairs"] for r in recs) and recs[0]["pairs"]
    assert any(p["holdout"] for p in recs[0]["pairs"]) and not all(p["holdout"] for p in recs[0]["pairs"])
    # The stage-1 variants differ where the ablations say.
    cfgs = {p.stem: json.loads(p.read_text()) for p in (out / "configs").glob("*.json")}
    assert cfgs["vqgan-plain"]["model"]["fusion"] == "none" and cfgs["vqgan-plain"]["loss"]["lambda2"] == 0
    assert cfgs["transformer-dalle"]["loss"]["semantic_every"] == 0
    assert cfgs["transformer-no_sem2"]["loss"]["semantic_every"] == 0
    assert cfgs["transformer-armani"]["loss"]["semantic_every"] == 1
    assert cfgs["transformer-dalle"]["model"]["text_encoder"] == "learned"
    assert "text_encoder" not in cfgs["transformer-armani"].get("model", {})  # the preset's: learned embeddings
    # The probes: fusion's code change where there is fusion, gradient shares where a semantic loss ran.
    p1, p2 = summary["probes"]["stage1"], summary["probes"]["stage2"]
    assert 0 <= p1["fusion"]["text_code_change"] <= 1 and p1["plain"]["text_code_change"] is None
    assert "semantic_grad_share" in p1["fusion"]
    assert set(p2) == set(arms) and all(r["nll_none"] > 0 for v in p2.values() for r in v.values())
    assert "semantic_grad_share" in p2["armani"]["0"] and "semantic_grad_share" not in p2["no_sem2"]["0"]
    table = (out / "table.md").read_text()
    assert "## Part control" in table and "| ARMANI | 2/2/2 |" in table and "minus baseline" in table
    assert "bootstrap" in table and "- fid: no Inception" in table
    assert (out / "samples" / "armani_text.html").is_file()


@pytest.mark.slow
def test_experiment_resumes_without_retraining(micro):
    from armani.recipes.experiment import PRESETS, ExperimentConfig, run_experiment
    out, summary = micro
    before = (out / "summary.json").read_text()
    seen = []
    run_experiment(ExperimentConfig(out, "micro", quiet=True), log=seen.append)
    assert seen and all("done already" in line for line in seen), seen
    assert json.loads((out / "summary.json").read_text())["stage_seconds"] == json.loads(before)["stage_seconds"]
    with pytest.raises(ValueError, match="--fresh"):
        run_experiment(ExperimentConfig(out, "micro", seed=1, quiet=True))
    # Other evaluation settings: the models are kept, only the evaluation runs again.
    seen.clear()
    again = run_experiment(ExperimentConfig(out, "micro", quiet=True, prompts=2), log=seen.append)
    ran = [s for s in seen if "done already" not in s]
    arms, seeds = PRESETS["micro"]["arms"], PRESETS["micro"]["seeds"]
    assert all(s.startswith("[eval-") for s in ran) and len(ran) == 2 * len(arms) * seeds
    assert again["results"]["armani"]["modes"]["text"]["prompts"] == 2


@pytest.mark.slow
def test_eval_generate_cli_writes_every_metric(micro, tmp_path, capsys):
    from armani.cli import main
    from armani.eval.generation import METRICS
    out, _ = micro
    js = tmp_path / "gen.json"
    assert main(["-q", "eval", "generate", "--model", str(out / "runs" / "transformer-armani-s0"), "--data",
                 str(out / "data"), "--task", "text+partial", "--n", "3", "--samples", "2",
                 "--judge", str(out / "runs" / "judge"), "--json", str(js)]) == 0
    rep = json.loads(js.read_text())
    assert set(METRICS) <= set(rep) and rep["prompts"] == 3 and rep["samples_per_prompt"] == 2
    assert rep["fid"] is None and rep["unavailable"]["fid"].startswith("no Inception")
    assert rep["maskclip_score"] is not None  # the model's own MaskCLIP and segmenter
    assert rep["attribute_accuracy"] is None and "judge reads" in rep["unavailable"]["attribute_accuracy"]
    assert rep["attribute_hits"] and rep["real_images"]["maskclip_score"] is not None
    page = js.with_suffix(".html").read_text()
    assert page.count("data:image/png") >= 3 * (1 + 1 + 2)
    assert "unavailable" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_compare_writes_a_questionnaire(micro, tmp_path):
    from armani.cli import main
    out, _ = micro
    page = tmp_path / "q.html"
    runs = out / "runs"
    assert main(["-q", "eval", "compare", str(runs / "transformer-armani-s0"), str(runs / "transformer-dalle-s0"),
                 "--data", str(out / "data"), "--n", "3", "--names", "armani,dalle", "--out", str(page)]) == 0
    doc = page.read_text()
    assert doc.count("type=radio") == 6 and '"names": ["armani", "dalle"]' in doc and "tallies.json" in doc
    assert main(["-q", "eval", "compare", str(runs / "transformer-armani-s0"), "--data", str(out / "data")]) == 2
    assert main(["-q", "eval", "compare", str(runs / "transformer-armani-s0"), str(runs / "transformer-dalle-s0"),
                 "--data", str(out / "data"), "--names", "x"]) == 2
