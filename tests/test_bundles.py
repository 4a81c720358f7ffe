"""Damaged or hostile model bundles and pipelines: one line naming the file, exit 2, and
nothing large allocated before the weights are checked."""
import json
import shutil

import numpy as np
import pytest

from armani.cli import main
from armani.formats.bundle import WEIGHTS, load_bundle
from armani.inference.pipeline import load, shipped_model


@pytest.fixture()
def pipe(tmp_path):
    dst = tmp_path / "pipe"
    shutil.copytree(shipped_model(), dst)
    return dst


def _generate(model, tmp_path, capsys) -> str:
    assert main(["-q", "generate", "--model", str(model), "--text", "a dress", "--n", "1",
                 "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    return err


def test_truncated_weights(pipe, tmp_path, capsys):
    w = pipe / "transformer" / WEIGHTS
    w.write_bytes(w.read_bytes()[:5000])
    err = _generate(pipe, tmp_path, capsys)
    assert "transformer/model.safetensors" in err and "not a readable safetensors file" in err


def test_config_without_its_config(pipe, tmp_path, capsys):
    c = json.loads((pipe / "vqgan" / "config.json").read_text())
    del c["config"]
    (pipe / "vqgan" / "config.json").write_text(json.dumps(c))
    assert "needs a string 'kind' and a 'config' object" in _generate(pipe, tmp_path, capsys)


def test_width_mismatch(pipe, tmp_path, capsys):
    c = json.loads((pipe / "transformer" / "config.json").read_text())
    c["config"]["width"] = 128
    (pipe / "transformer" / "config.json").write_text(json.dumps(c))
    err = _generate(pipe, tmp_path, capsys)
    assert "weights do not fit config.json" in err and "shape mismatch" in err


def test_huge_config_is_refused_before_it_is_built(pipe):
    import resource
    c = json.loads((pipe / "transformer" / "config.json").read_text())
    c["config"].update(width=8192, layers=64)  # about 50 GB of float32 if it were built
    (pipe / "transformer" / "config.json").write_text(json.dumps(c))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="weights do not fit"):
        load_bundle(pipe / "transformer", "transformer")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: under 200 MB more


def test_components_stay_inside_the_pipeline(pipe, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    shutil.copytree(pipe / "segmenter", outside)
    for bad in ("../elsewhere", str(outside)):
        meta = json.loads((pipe / "armani.json").read_text())
        meta["components"]["segmenter"] = bad
        (pipe / "armani.json").write_text(json.dumps(meta))
        assert "must be a folder inside the pipeline" in _generate(pipe, tmp_path, capsys)
    (pipe / "armani.json").write_text("[1, 2")
    assert "invalid JSON" in _generate(pipe, tmp_path, capsys)
    with pytest.raises(ValueError):
        load(pipe)


def test_files_with_the_older_sketch_name_still_load(tmp_path):
    """Pipelines and token folders written when the sketch tokenizer was called "sketch"
    (component, folder) and the token folder's models "image_model"/"sketch_model" load."""
    import armani
    from armani.formats.tokens import read_token_info
    old = tmp_path / "old"
    shutil.copytree(shipped_model(), old)
    (old / "sketch-vq").rename(old / "sketch")
    meta = json.loads((old / "armani.json").read_text())
    meta["components"] = {("sketch" if k == "sketch-vq" else k): ("sketch" if v == "sketch-vq" else v)
                          for k, v in meta["components"].items()}
    (old / "armani.json").write_text(json.dumps(meta))
    g = armani.load(old)
    assert g.sketch_tokenizer is not None
    a = armani.generate(g, text="a blue dress", sketch_from=np.full((64, 64, 3), 255, np.uint8), n=1, seed=0)
    b = armani.generate(armani.load(), text="a blue dress", sketch_from=np.full((64, 64, 3), 255, np.uint8),
                        n=1, seed=0)
    assert (a == b).all()
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokens.json").write_text(json.dumps({"format": "armani-tokens/1", "splits": {},
                                                 "image_model": {"path": "vq"}, "sketch_model": {"path": "sk"}}))
    info = read_token_info(tok)
    assert info["vqgan"] == {"path": "vq"} and info["sketch-vq"] == {"path": "sk"} and "image_model" not in info
