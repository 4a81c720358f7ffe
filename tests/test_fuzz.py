"""Seeded fuzzing of what reads user files: `data check`, `Index` and the training dataset on
mutated records, the folder importer on mutated sources, bundle and pipeline loading on
mutated files. Properties: no traceback (only the documented error types), no hang (each case
under an alarm), nothing written outside the output folder."""
import json
import random
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from armani.data.check import check_dataset
from armani.data.dataset import GarmentDataset
from armani.data.importers import ImportFailed, import_dataset
from armani.formats.dataset import DatasetError, Index
from armani.inference.pipeline import load, shipped_model

CASES = 40
VALUES = [None, 0, -1, 3.5, True, "", "x", "../../etc/passwd", "/etc/passwd", "images/../../x.png", [], ["a"],
          [1, 2], {}, {"a": None}, "\u202e\x00\x1b", "word " * 500, "y" * 5000]


@contextmanager
def bounded(seconds: int = 20):
    def fail(*_):
        raise TimeoutError("hang")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _mutate_line(rng: random.Random, line: bytes) -> bytes:
    how = rng.randrange(5)
    if how == 0:
        return line[: rng.randrange(len(line))] + b"\n"                  # torn
    if how == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\n"  # garbage
    rec = json.loads(line)
    key = rng.choice(sorted(rec))
    if how == 2:
        del rec[key]
    else:
        rec[key] = rng.choice(VALUES)
    return (json.dumps(rec) + "\n").encode()


@pytest.mark.slow
def test_fuzz_records(synth_ds, tmp_path):
    rng = random.Random(0)
    base = (synth_ds / "index.jsonl").read_bytes().splitlines(keepends=True)
    meta = json.loads((synth_ds / "dataset.json").read_text())
    for case in range(CASES):
        ds = tmp_path / f"ds{case}"
        shutil.copytree(synth_ds, ds)
        lines = list(base)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(lines))
            lines[i] = _mutate_line(rng, lines[i])
        (ds / "index.jsonl").write_bytes(b"".join(lines))
        if rng.random() < 0.2:
            bad = dict(meta, **{rng.choice(sorted(meta)): rng.choice(VALUES)})
            (ds / "dataset.json").write_text(json.dumps(bad))
        with bounded():
            rep = check_dataset(ds)
            assert isinstance(rep.errors, list)
            try:
                idx = Index(ds, "train")
                items = GarmentDataset(ds, "train", image_size=32, max_text_len=16)
                for j in range(min(4, len(idx))):
                    items[j]
            except DatasetError:
                pass
        shutil.rmtree(ds)


def test_fuzz_folder_import(tmp_path):
    rng = random.Random(1)
    for case in range(CASES // 2):
        work = tmp_path / f"c{case}"
        src = work / "src"
        (src / "images").mkdir(parents=True)
        (src / "masks").mkdir()
        for i in range(4):
            p = src / "images" / f"g{i}.png"
            kind = rng.randrange(4)
            if kind == 0:
                p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))))
            else:
                Image.fromarray(np.full((16 + i, 16, 3), rng.randrange(256), np.uint8)).save(p)
                if kind == 1:
                    p.write_bytes(p.read_bytes()[: rng.randrange(8, 60)])
            cap = rng.choice([b"a red dress\n", b"", b"\xff\xfe\x00 bad bytes", b"word " * 600, b"a coat\x00\x07\n"])
            (src / "images" / f"g{i}.txt").write_bytes(cap)
            if rng.random() < 0.5:
                m = src / "masks" / f"g{i}.png"
                if rng.random() < 0.5:
                    Image.fromarray(np.full((16 + i, 16), rng.randrange(40), np.uint8), mode="L").save(m)
                else:
                    m.write_bytes(b"\x89PNG garbage")
        before = sorted(p.relative_to(work) for p in work.rglob("*"))
        with bounded():
            try:
                import_dataset("folder", src, work / "out", tokenizer_vocab=300)
            except ImportFailed:
                pass
        after = sorted(p.relative_to(work) for p in work.rglob("*") if not p.relative_to(work).parts[0] == "out")
        assert after == before, "wrote outside the output folder"


def test_fuzz_pipeline_files(tmp_path):
    rng = random.Random(2)
    src = shipped_model()
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.suffix in (".json", ".safetensors"))
    for case in range(CASES // 2):
        pipe = tmp_path / f"p{case}"
        shutil.copytree(src, pipe)
        f = pipe / rng.choice(files)
        data = f.read_bytes()
        how = rng.randrange(3)
        if how == 0:
            f.write_bytes(data[: rng.randrange(len(data))])
        elif how == 1:
            b = bytearray(data)
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(min(len(b), 400))] = rng.randrange(256)
            f.write_bytes(bytes(b))
        elif f.suffix == ".json":
            doc = json.loads(data)
            target = doc.get("config", doc) if isinstance(doc.get("config"), dict) else doc
            target[rng.choice(sorted(target))] = rng.choice(VALUES + [10**6, 4096])
            f.write_text(json.dumps(doc))
        with bounded():
            try:
                load(pipe)
            except (ValueError, FileNotFoundError):
                pass
        shutil.rmtree(pipe)


@pytest.mark.parametrize("value", ["../segmenter", "/tmp"])
def test_fuzz_component_paths(tmp_path, value):
    pipe = tmp_path / "p"
    shutil.copytree(shipped_model(), pipe)
    meta = json.loads((pipe / "armani.json").read_text())
    meta["components"]["maskclip"] = value
    (pipe / "armani.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="inside the pipeline"):
        load(Path(pipe))


# --- boundaries: reads stay inside SRC and the dataset, sizes are bounded, bad values are one line ---

def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def _folder(src: Path, n: int = 2) -> Path:
    (src / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((16, 16, 3), 90 + i, np.uint8)).save(src / "images" / f"g{i}.png")
    return src


def test_caption_files_leading_out_of_src_are_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text('{"image": "g0.png", "captions": ["the private key"]}\n')
    src = _folder(tmp_path / "src")
    (src / "captions.jsonl").symlink_to(secret)
    with pytest.raises(ImportFailed, match="leaves SRC"):
        import_dataset("folder", src, tmp_path / "out", tokenizer_vocab=None)
    viton = tmp_path / "viton"
    (viton / "train" / "image").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(viton / "train" / "image" / "a_00.jpg")
    (tmp_path / "caps.json").write_text('{"a": ["the private key"]}')
    (viton / "captions.json").symlink_to(tmp_path / "caps.json")
    with pytest.raises(ImportFailed, match="leaves SRC"):
        import_dataset("vitonhd", viton, tmp_path / "out2", tokenizer_vocab=None)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_symlink_loops_are_bad_files_not_tracebacks(synth_ds, tmp_path, capsys):
    from armani.cli import main
    ds = tmp_path / "ds"
    shutil.copytree(synth_ds, ds)
    rec = json.loads((ds / "index.jsonl").read_text().splitlines()[0])
    img = ds / rec["image"]
    img.unlink()
    img.symlink_to(img)  # ELOOP
    with bounded(60):
        assert main(["data", "check", str(ds)]) == 1
        assert rec["id"] in capsys.readouterr().out
        items = GarmentDataset(ds, rec["split"], image_size=32, max_text_len=16)
        items.max_bad_fraction = 0.5
        for j in range(len(items)):
            items[j]  # the looping sample is replaced, never raised
        assert len(items.bad) == 1
    src = _folder(tmp_path / "src", 3)
    (src / "images" / "g1.png").unlink()
    (src / "images" / "g1.png").symlink_to(src / "images" / "g1.png")
    (src / "images" / "g2.txt").symlink_to(src / "images" / "g2.txt")
    (src / "images" / "g0.txt").write_text("a red dress\n")
    res = import_dataset("folder", src, tmp_path / "out", tokenizer_vocab=None)
    assert res.imported == 1 and len(res.skipped) == 2
    pipe = tmp_path / "pipe"
    shutil.copytree(shipped_model(), pipe)
    w = next(pipe.rglob("*.safetensors"))
    w.unlink()
    w.symlink_to(w)
    with pytest.raises(ValueError):
        load(pipe)


def test_a_huge_caption_file_is_skipped_unread(tmp_path):
    from armani.data.importers import MAX_CAPTION_FILE_BYTES
    src = _folder(tmp_path / "src")
    (src / "images" / "g0.txt").write_text("a red dress\n")
    with open(src / "images" / "g1.txt", "wb") as f:
        f.write(b"a blue coat\n")
        f.truncate(MAX_CAPTION_FILE_BYTES * 64)  # sparse: 64 MiB claimed, nothing on disk
    res = import_dataset("folder", src, tmp_path / "out", tokenizer_vocab=None)
    assert res.imported == 1 and "over" in res.skipped[0]["reason"]


@pytest.mark.parametrize("where,key,value", [
    ("transformer", "layers", 50000), ("transformer", "heads", 0), ("vqgan", "z_channels", -8),
    ("transformer", "width", 0), ("segmenter", "channels", [4, 0])])
def test_implausible_bundle_configs_are_refused_fast(tmp_path, where, key, value):
    pipe = tmp_path / "pipe"
    shutil.copytree(shipped_model(), pipe)
    meta = json.loads((pipe / "armani.json").read_text())
    cfg_file = pipe / meta["components"].get(where, where) / "config.json"
    if not cfg_file.is_file():
        pytest.skip(f"no {where} component")
    doc = json.loads(cfg_file.read_text())
    target = doc["config"] if isinstance(doc.get("config"), dict) else doc
    if key not in target:
        pytest.skip(f"{where} has no {key}")
    target[key] = value
    cfg_file.write_text(json.dumps(doc))
    from armani.errors import UserError
    with bounded(10), pytest.raises(UserError):
        load(pipe)


@pytest.mark.parametrize("flags", [["--temperature", "nan"], ["--guidance", "inf"], ["--top-p", "nan"],
                                   ["--seed", str(2**70)], ["--seed", "-1"],
                                   ["--partial", "PHOTO", "--keep-box", "0,0,inf,10"],
                                   ["--partial", "PHOTO", "--keep-box", "0,0,nan,10"]])
def test_bad_generation_values_are_one_line(tmp_path, capsys, flags):
    from armani.cli import main
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(photo)
    flags = [str(photo) if f == "PHOTO" else f for f in flags]
    assert main(["-q", "generate", "--text", "a red dress", "--n", "1", *flags, "--out", str(tmp_path / "g")]) == 2
    _err_line(capsys)
    assert not (tmp_path / "g").exists()


def test_a_seed_near_two_to_the_64_works_across_batches(tmp_path):
    from armani.cli import main
    out = tmp_path / "g"
    assert main(["-q", "generate", "--text", "a red dress", "--n", "3", "--batch-size", "1",
                 "--seed", str(2**64 - 1), "--out", str(out)]) == 0
    assert len(list(out.glob("sample-*.png"))) == 3


def _bad_pipeline(tmp_path, edit) -> Path:
    pipe = tmp_path / "pipe"
    if pipe.exists():
        shutil.rmtree(pipe)
    shutil.copytree(shipped_model(), pipe)
    edit(pipe)
    return pipe


def _edit_json(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _swap_components(pipe: Path) -> None:
    def swap(meta):
        comp = meta["components"]
        comp["sketch-vq"], comp["vqgan"] = comp["vqgan"], comp["sketch-vq"]
    _edit_json(pipe / "armani.json", swap)


@pytest.mark.parametrize("edit", [
    lambda p: _edit_json(p / "armani.json", lambda m: m.__setitem__("sampling", "hot")),
    lambda p: _edit_json(p / "armani.json", lambda m: m.__setitem__("sampling", {"temperature": "nan"})),
    lambda p: _edit_json(p / "armani.json", lambda m: m.__setitem__("sampling", {"temperature": float("nan")})),
    lambda p: _edit_json(p / "transformer" / "config.json", lambda m: m.__setitem__("parents", ["a", 3])),
    lambda p: _edit_json(p / "transformer" / "config.json", lambda m: m.__setitem__("parents", {"vqgan": 7})),
    _swap_components,
], ids=["sampling-text", "sampling-value-text", "sampling-nan", "parents-list", "parents-value", "swapped"])
def test_malformed_pipeline_metadata_is_one_line(tmp_path, capsys, edit):
    from armani.cli import main
    pipe = _bad_pipeline(tmp_path, edit)
    with bounded(60):
        assert main(["-q", "generate", "--model", str(pipe), "--text", "a red dress", "--n", "1",
                     "--out", str(tmp_path / "g")]) == 2
    _err_line(capsys)


@pytest.mark.parametrize("argv", [
    ["generate", "--text", "a red dress", "--n", "1", "--out", "/proc/armani-x"],
    ["data", "synth", "--n", "8", "--size", "32", "--out", "/proc/armani-x"],
    ["export", "--model", "SHIPPED", "--out", "/proc/armani-x"],
])
def test_an_out_that_cannot_be_written_is_one_line(capsys, argv):
    from armani.cli import main
    argv = [str(shipped_model() / "transformer") if a == "SHIPPED" else a for a in argv]
    assert main(["-q", *argv]) == 2
    _err_line(capsys)


def test_demo_on_a_port_in_use_is_one_line(capsys):
    pytest.importorskip("gradio")
    import socket

    from armani.cli import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with bounded(120):
            assert main(["-q", "demo", "--port", str(port)]) == 2
    assert "cannot serve" in _err_line(capsys)


def _fp_doc(**over) -> dict:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "height": 16, "width": 16}],
           "categories": [{"id": 1, "name": "dress", "supercategory": "wholebodies"}],
           "attributes": [], "annotations": [{"image_id": 1, "category_id": 1, "area": 10,
                                              "segmentation": [[0, 0, 10, 0, 10, 10]]}]}
    doc.update(over)
    return doc


@pytest.mark.parametrize("doc", [
    _fp_doc(images={"1": "a.jpg"}), _fp_doc(categories=[{"id": 1}]),
    _fp_doc(annotations=[{"image_id": 1}]), _fp_doc(images=[{"id": 1, "file_name": 3}]),
    ["not", "an", "object"]], ids=["images-dict", "category-no-name", "annotation-no-category",
                                   "file-name-number", "top-list"])
def test_importer_metadata_of_the_wrong_shape_is_one_error(tmp_path, doc):
    src = tmp_path / "fp"
    src.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(src / "a.jpg")
    (src / "ann.json").write_text(json.dumps(doc))
    with bounded(), pytest.raises(ImportFailed):
        import_dataset("fashionpedia", src, tmp_path / "out", tokenizer_vocab=None)


@pytest.mark.parametrize("caps", ["[]", "null", '"a red dress"'])
def test_a_caption_file_that_is_not_an_object_is_one_error(tmp_path, caps):
    viton = tmp_path / "viton"
    (viton / "train" / "image").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(viton / "train" / "image" / "a_00.jpg")
    (viton / "captions.json").write_text(caps)
    with pytest.raises(ImportFailed, match="expected"):
        import_dataset("vitonhd", viton, tmp_path / "out", tokenizer_vocab=None)


# --- the Python API: wrong types and value ranges are one GenerationError naming the value ---

@pytest.fixture(scope="module")
def gen():
    return load()


@pytest.mark.parametrize("kwargs", [{"text": 5}, {"text": "a red dress", "n": "3"}, {"text": "a red dress", "n": 0},
                                    {"text": "a red dress", "seed": "x"}, {"text": "a red dress", "seed": 2**64},
                                    {"text": "a red dress", "temperature": float("nan")},
                                    {"text": "a red dress", "top_k": "many"},
                                    {"sketch": np.full((8, 8), 300, np.int32)},
                                    {"sketch": np.full((8, 8), -1.0)},
                                    {"sketch": np.zeros((8, 8), object)},
                                    {"sketch": np.broadcast_to(np.zeros((1, 1), np.uint8), (20000, 20000))},
                                    {"sketch": "no/such/file.png"},
                                    {"partial": np.zeros((32, 32, 3), np.uint8), "keep_box": (0, 0, float("inf"), 9)},
                                    {"partial": np.zeros((32, 32, 3), np.uint8), "keep_box": "left half"}])
def test_api_refuses_bad_values_with_one_error(gen, kwargs):
    from armani.errors import UserError
    from armani.inference.pipeline import generate
    with bounded(60), pytest.raises(UserError):
        generate(gen, n=kwargs.pop("n", 1), **kwargs)


def test_api_reads_float_and_binary_arrays_as_images(gen):
    from armani.inference.pipeline import prepare
    edges = np.zeros((64, 64), np.uint8)
    edges[10:54, 20] = edges[10:54, 44] = edges[10, 20:45] = edges[53, 20:45] = 255
    as_uint8 = prepare(gen, sketch=edges).sketch_tokens
    assert (prepare(gen, sketch=edges / 255.0).sketch_tokens == as_uint8).all()
    assert (prepare(gen, sketch=edges > 0).sketch_tokens == as_uint8).all()
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    keep = np.zeros((64, 64), np.uint8)
    keep[16:48, 16:48] = 1
    ones = prepare(gen, partial=photo, keep_mask=keep).partial_tokens
    assert (ones == prepare(gen, partial=photo, keep_mask=keep * 255).partial_tokens).all()
    assert (ones != gen.transformer.cfg.image_empty).any()
