from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from PIL import Image

from armani.cli import main


def test_synth_check_show_tokenizer(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["-q", "data", "synth", "--out", str(out), "--n", "60", "--size", "32", "--seed", "2",
                 "--workers", "1", "--vocab-size", "300", "--holdout", "t-shirt:zipper,coat:hood"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["num_samples"] == 60 and meta["image_size"] == [32, 32] and meta["tokenizer"]
    assert meta["synth"]["holdout"] == ["t-shirt:zipper", "coat:hood"]
    assert main(["-q", "data", "check", str(out), "--json", str(tmp_path / "rep.json")]) == 0
    assert json.loads((tmp_path / "rep.json").read_text())["ok"] is True
    assert main(["-q", "data", "show", str(out), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size[1] > 4 * 128
    assert main(["-q", "data", "tokenizer", str(out), "--vocab-size", "280"]) == 0
    assert "wrote" in capsys.readouterr().out
    # Existing output is kept unless --overwrite.
    assert main(["-q", "data", "synth", "--out", str(out), "--n", "5"]) == 2


def test_check_fails_on_broken_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["-q", "data", "synth", "--out", str(out), "--n", "10", "--size", "32", "--workers", "1"]) == 0
    (out / "images" / "00000" / "0000003.png").write_bytes(b"not a png")
    assert main(["-q", "data", "check", str(out)]) == 1
    assert "0000003" in capsys.readouterr().out
    assert main(["-q", "data", "check", str(tmp_path / "missing")]) == 1


def test_bad_arguments_exit_cleanly(tmp_path, capsys):
    assert main(["-q", "data", "synth", "--out", str(tmp_path / "x"), "--n", "5", "--holdout", "hat:brim"]) == 2
    assert "bad hold-out item" in capsys.readouterr().err
    assert main(["-q", "data", "show", str(tmp_path)]) == 2


@pytest.mark.slow
def test_quickstart_runs_and_resumes(tmp_path, capsys, monkeypatch):
    from armani.recipes.quickstart import PROFILES
    out = tmp_path / "qs"
    args = ["-q", "quickstart", "--out", str(out), "--n", "120", "--size", "32", "--profile", "tiny"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    stages = ["synth", "check", "preview", "segmenter", "maskclip", "vqgan", "sketch-vq", "tokenize",
              "transformer", "evaluate", "export", "generate", "colours", "fidelity"]
    assert list(summary["stage_seconds"]) == stages
    assert summary["total_seconds"] == pytest.approx(sum(summary["stage_seconds"].values()), abs=0.05)
    assert summary["dataset"]["samples"] == 120 and (out / "preview.png").is_file()
    m = summary["metrics"]
    assert 0 <= m["segmenter"]["miou"] <= 1 and m["vqgan"]["psnr"] > 0 and m["transformer"]["text"] > 0
    assert all(m[k]["stopped_by"] == "max_steps" and m[k]["steps"] == m[k]["planned_steps"] == 2
               for k in ("segmenter", "maskclip", "vqgan", "sketch-vq", "transformer"))
    assert summary["capped"] == {} and m["vqgan"]["colour_error"] > 0
    col = summary["colours"]
    assert len(col["colours"]) == 13 and all(len(r["got"]) == 4 for r in col["colours"])
    assert m["generation"]["colour_accuracy"] == col["accuracy"]
    assert set(summary["generation"]["sheets"]) == {"text", "text+sketch", "text+partial", "sketch", "partial"}
    fid = summary["fidelity"]["modes"]
    assert set(fid) == set(summary["generation"]["sheets"]) and summary["fidelity"]["keep"] == "exact"
    assert all(0 <= r["silhouette_iou"] <= 1 for r in fid.values()) and fid["partial"]["kept_psnr"] > 0
    report = (out / "report.html").read_text()
    for f in summary["generation"]["sheets"].values():
        assert (out / f).is_file() and f in report
    assert "<h2>Colours</h2>" in report and "a navy skirt" in report and "Warning" not in report
    assert "Does each mode follow its condition?" in report and "garment category" in report
    assert summary["fidelity"]["category_judge"]["judge"] == "packaged SynthFashion judge"
    # A summary first, a curve for every training stage (each logs every step in `tiny`), the rest folded.
    assert report.index("<h2>Summary</h2>") < report.index("<h2>Training curves</h2>") < report.index("<details>")
    assert report.count("<svg") == len(list((out / "runs").glob("*/metrics.jsonl"))) == 5
    assert "headline figures are far from their reference" in report  # 2 steps a stage: far from everything
    assert json.loads((out / "model" / "armani.json").read_text())["sampling"]["temperature"] == 1.0
    # The model card: data, components, the quickstart's figures; no path of this machine anywhere.
    card = (out / "model" / "README.md").read_text()
    assert "dataset `synthfashion`" in card and "120 samples" in card and "| transformer |" in card
    assert "| generation | colour_accuracy |" in card and "| vqgan | psnr |" in card
    assert "| fidelity | sketch.silhouette_iou |" in card and "| fidelity | partial.kept_psnr |" in card
    assert "## What it can do" in card and "| MaskCLIP | word-part pointing accuracy |" in card
    assert not any(str(tmp_path) in f.read_text() for f in (out / "model").rglob("*") if f.suffix in (".json", ".md"))
    assert main(["-q", "export", "--model", str(out), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "README.md").read_text()
    assert "dataset `synthfashion`" in again and "| generation | colour_accuracy |" in again
    assert main(["-q", "generate", "--model", str(out / "model"), "--text", "a blue dress", "--n", "2",
                 "--out", str(tmp_path / "gen")]) == 0
    # The exported folder's MaskCLIP component finds the pipeline's tokenizer (it has none of its own).
    assert main(["-q", "eval", "generate", "--model", str(out / "model"), "--data", str(out / "data"), "--n", "2",
                 "--samples", "2", "--temperature", "0.5", "--json", str(tmp_path / "gen.json")]) == 0
    rep = json.loads((tmp_path / "gen.json").read_text())
    assert rep["maskclip_score"] is not None and rep["sampling"]["temperature"] == 0.5
    assert 0 < rep["sample_variety"] < 1 and rep["ci95"]["sample_variety"]
    # Every command that takes --model takes a quickstart folder, a pipeline folder and a run alike.
    rec = json.loads((out / "data" / "index.jsonl").read_text().splitlines()[0])
    img, mask = str(out / "data" / rec["image"]), str(out / "data" / rec["mask"])
    runs = out / "runs"
    commands = {"transformer": [["generate", "--text", "a dress", "--n", "1", "--out", str(tmp_path / "g")],
                                ["eval", "colours", "--samples", "1"],
                                ["eval", "generate", "--data", str(out / "data"), "--n", "2",
                                 "--html", str(tmp_path / "g.html")],
                                ["export", "--out", str(tmp_path / "x")]],
                "vqgan": [["eval", "recon", "--data", str(out / "data"), "--max-samples", "4"]],
                "maskclip": [["eval", "alignment", "--data", str(out / "data"), "--max-samples", "4"],
                             ["align", "--image", img, "--mask", mask, "--text", "a shirt with a collar",
                              "--out", str(tmp_path / "a.png")]],
                "segmenter": [["eval", "segmenter", "--data", str(out / "data")]]}
    for run, cmds in commands.items():
        for cmd in cmds:
            for model in (out, out / "model", runs / run):
                assert main(["-q", *cmd, "--model", str(model)]) == 0, (cmd, model)
    capsys.readouterr()
    assert main(["-q", "eval", "colours", "--model", str(out / "model"), "--samples", "1", "--temperature", "0",
                 "--json", str(tmp_path / "col.json")]) == 0
    rep = json.loads((tmp_path / "col.json").read_text())
    assert rep["sampling"]["temperature"] == 0 and len(rep["colours"]) == 13
    assert main(["-q", "eval", "colours", "--model", str(out / "model"), "--samples", "1", "--all-nouns",
                 "--json", str(tmp_path / "wide.json")]) == 0
    wide = json.loads((tmp_path / "wide.json").read_text())
    assert wide["prompts"] == 143 and wide["samples"] == 143 and len(wide["colours"]) == 13
    assert all(len(r["got"]) == 11 for r in wide["colours"])
    assert wide["accuracy"] == pytest.approx(sum(r["accuracy"] for r in wide["colours"]) / 13)
    assert main(["-q", "eval", "colours", "--model", str(out / "model"), "--top-p", "2"]) == 2
    assert main(["-q", "eval", "alignment", "--model", str(out / "model" / "maskclip"), "--data", str(out / "data"),
                 "--max-samples", "8"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done already") == len(stages)
    # Interrupted in stage 2: the finished stages are skipped and training resumes from its checkpoint.
    del summary["stage_seconds"]["transformer"], summary["stage_seconds"]["evaluate"]
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("done already") == len(stages) - 2 and "[transformer]" in printed
    assert main(["-q", "quickstart", "--out", str(out), "--n", "50", "--size", "32"]) == 2  # settings differ
    # A stage stopped by its time cap instead of its steps is flagged in the summary, the report
    # and the last lines printed; a profile's sampling settings go into the exported model.
    tiny = json.loads(json.dumps(PROFILES["tiny"]))
    tiny["transformer"]["train"].update(max_steps=50, max_minutes=0.0)
    tiny["sampling"] = {"temperature": 0.5}
    monkeypatch.setitem(PROFILES, "tiny", tiny)
    assert main(args + ["--fresh"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["capped"]) == ["transformer"] and "step 1 of 50" in summary["capped"]["transformer"]
    assert summary["metrics"]["transformer"]["stopped_by"] == "max_minutes"
    assert json.loads((out / "model" / "armani.json").read_text())["sampling"]["temperature"] == 0.5
    assert summary["generation"]["sampling"]["temperature"] == 0.5
    assert "Warning: transformer stopped by its 0-minute cap" in (out / "report.html").read_text()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("warning: transformer stopped by")


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "armani", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("armani ")


def test_readme_commands_match_ci():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert "torch==2.13.0" in first and "armani quickstart" in first
    assert "torch==2.13.0" in second and "pytest" in second
    assert second in (REPO / ".ci" / "run").read_text()


def test_generate_bad_input_and_many_images(tmp_path, capsys):
    out = tmp_path / "gen"
    # Not UTF-8 (a byte the terminal could not decode arrives as a lone surrogate).
    assert main(["-q", "generate", "--text", "a red dress \udcff", "--n", "1", "--out", str(out)]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    (tmp_path / "file.png").write_bytes(b"x")
    assert main(["-q", "generate", "--text", "a red dress", "--n", "1", "--out", str(tmp_path / "file.png")]) == 2
    assert "is a file" in capsys.readouterr().err
    # More images than one batch: drawn batch by batch, so --n 18 begins with --n 16's images.
    assert main(["-q", "generate", "--text", "an emerald velvet kimono", "--n", "18", "--seed", "4",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "does not know" in err and "emerald" in err and "kimono" in err
    assert len(list(out.glob("sample-*.png"))) == 18
    assert main(["-q", "generate", "--text", "an emerald velvet kimono", "--n", "16", "--seed", "4",
                 "--out", str(tmp_path / "two")]) == 0
    assert (out / "sample-15.png").read_bytes() == (tmp_path / "two" / "sample-15.png").read_bytes()
    assert json.loads((out / "generation.json").read_text())["unknown_words"] == ["emerald", "velvet", "kimono"]
    # The same seed and batch size give the same images; another batch size draws others after the first batch.
    assert main(["-q", "generate", "--text", "an emerald velvet kimono", "--n", "18", "--seed", "4",
                 "--batch-size", "16", "--device", "cpu", "--out", str(tmp_path / "three")]) == 0
    assert (out / "sample-17.png").read_bytes() == (tmp_path / "three" / "sample-17.png").read_bytes()
    if not torch.cuda.is_available():
        assert main(["-q", "generate", "--text", "a red dress", "--device", "cuda", "--out", str(out)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_generate_batches_any_n():
    """generate_batches: batch after batch, the first seeded with the seed itself, so the first
    images of a larger n are those of a smaller one; `armani.load` picks the device."""
    import armani
    from armani.inference.pipeline import generate_batches, generate_from, prepare, resolve_device
    g = armani.load()
    assert g.device == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cond = prepare(g, "a blue dress")
    sizes = [len(b) for b in generate_batches(g, cond, 10, seed=3, batch_size=4)]
    assert sizes == [4, 4, 2]
    many = generate_from(g, cond, 10, seed=3, batch_size=4)
    assert many.shape == (10, 64, 64, 3) and (many[:4] == generate_from(g, cond, 4, seed=3)).all()
    assert not (many[4:8] == many[:4]).all()  # later batches have seeds of their own
    with pytest.raises(ValueError, match="batch_size"):
        generate_from(g, cond, 2, seed=0, batch_size=0)


@pytest.mark.slow
def test_generate_300_images(tmp_path):
    out = tmp_path / "many"
    assert main(["-q", "generate", "--text", "a black jacket with a zipper", "--n", "300", "--batch-size", "100",
                 "--seed", "1", "--out", str(out)]) == 0
    assert len(list(out.glob("sample-*.png"))) == 300 and (out / "sheet.png").is_file()


def test_only_bad_input_is_exit_2_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """A UserError (bad input) is one line and exit 2; any other exception, a ValueError
    included, is a bug and propagates with its traceback."""
    import armani.cli.generate as gen
    from armani.errors import UserError

    def raises(exc):
        def cmd(args):
            raise exc
        return cmd
    monkeypatch.setattr(gen, "cmd_export", raises(UserError("the model folder is empty")))
    assert main(["export", "--model", "m", "--out", "o"]) == 2
    assert capsys.readouterr().err.strip() == "armani: error: the model folder is empty"
    monkeypatch.setattr(gen, "cmd_export", raises(ValueError("internal: shapes disagree")))
    with pytest.raises(ValueError, match="internal"):
        main(["export", "--model", "m", "--out", "o"])


def test_every_registered_task_has_a_train_command_and_the_one_signature():
    import inspect

    from armani.cli import build_parser
    from armani.train.registry import TASKS, make_task
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = next(a for a in sub.choices["train"]._actions if isinstance(a, argparse._SubParsersAction))
    assert set(train.choices) == set(TASKS)
    for name, spec in TASKS.items():
        module, fn = spec.factory.split(":")
        f = getattr(__import__(f"armani.train.{module}", fromlist=[fn]), fn)
        params = list(inspect.signature(f).parameters.values())
        assert [p.name for p in params[:2]] == ["tokens" if spec.reads == "tokens" else "data", "config"], name
        assert {p.name for p in params if p.kind is p.KEYWORD_ONLY} == {"maskclip", "segmenter"}, name
        assert params[-1].kind is inspect.Parameter.VAR_KEYWORD, name
        flags = {a.option_strings[0] for a in train.choices[name]._actions if a.option_strings}
        assert {f"--{p}" for p in spec.parents} | {f.flag for f in spec.flags} <= flags, name
    with pytest.raises(ValueError, match="takes no trained maskclip"):
        make_task("segmenter", "anywhere", maskclip="m")
    with pytest.raises(ValueError, match="unknown training task"):
        make_task("gan", "anywhere")
