"""Generation: load a trained model and make garments from text, sketches and partial images.

    from armani.inference.pipeline import ArmaniPipeline
    pipe = ArmaniPipeline.from_pretrained()     # the small SynthFashion model shipped in the package
    out = pipe(text="a red T-shirt with a white logo", n=4, seed=0)   # out.images, out.seed, ...

`from_pretrained` (`load`) accepts a pipeline folder (made by `armani export` or `armani
quickstart`: one folder with every model generation needs), a stage-2 run or bundle (the
stage-1, sketch, MaskCLIP and segmenter models are then found through the paths its config
records), or nothing (the shipped model). `generate` returns the (n, H, W, 3) uint8 RGB
images alone.

Conditions, as in training: the caption; a sketch (an edge map; dark lines on a light
background are inverted) or `sketch_from`, a photo whose Canny edges are used; a partial
image with `keep_box` (x0, y0, x1, y1 in its pixels) or `keep_mask` (non-zero = keep), of
which the stage-1 codes of the kept token cells are the condition (a cell counts as kept
when at least half of its pixels are).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import to_unit
from ..data.tokenizer import CaptionTokenizer
from ..data.transforms import letterbox
from ..data.transforms import sketch as canny
from ..errors import MissingInput, UserError
from ..formats.bundle import load_bundle, resolve_bundle
from ..formats.fsutil import check_target
from ..formats.images import MAX_PIXELS, BadFile, read_image_strict
from ..formats.pipeline import LEGACY_COMPONENTS, PIPELINE_FILE, pipeline_dir, read_pipeline, write_pipeline
from ..models.transformer import CrossModalTransformer
from .image_tokens import ImageTokenizer, keep_cells, load_image_tokenizer, tokenizers_of
from .modes import MODES, chest_band
from .sampling import SamplingConfig, batch_seed, check_seed, sample_tokens

# Sampling defaults when a pipeline records none (tuned on the shipped SynthFashion model).
DEFAULT_SAMPLING = SamplingConfig(temperature=1.0, top_k=100, top_p=None, guidance=3.0)


class UnknownWordsWarning(UserWarning):
    """A prompt has words the model never saw in its training captions."""


def unknown_words_message(words: list[str]) -> str:
    """The one wording of the unknown-words warning (CLI, API, demo)."""
    return f"words this model does not know (it reads them as noise): {', '.join(words)}"


class GenerationError(UserError):
    """Bad generation input: a missing or unreadable file, a box outside the image, ..."""


@dataclass
class ArmaniPipeline:
    """Everything generation needs, loaded: the stage-2 Transformer, stage 1 (with the
    MaskCLIP and segmenter its fusion reads), the sketch tokenizer, the caption tokenizer and
    the sampling defaults. Every image the package generates is drawn through `batches` (one
    set of conditions, n images) or `sample_rows` (a different set per image, for evaluation).

        pipe = ArmaniPipeline.from_pretrained()           # the shipped model, or a path
        out = pipe(text="a red T-shirt", n=4, seed=0)     # out.images (4, H, W, 3) uint8, out.seed
        pipe.save_pretrained("my-model", half=True)
    """
    transformer: CrossModalTransformer
    image_tokenizer: ImageTokenizer            # stage 1 (component "vqgan")
    sketch_tokenizer: ImageTokenizer | None    # the sketch tokenizer (component "sketch-vq")
    tokenizer: CaptionTokenizer
    sampling: SamplingConfig = field(default_factory=lambda: DEFAULT_SAMPLING)
    path: Path | None = None
    info: dict = field(default_factory=dict)   # a pipeline folder's armani.json, or {"source": the run}
    # Loaded from a pipeline folder: component -> what its bundle recorded of its training
    # ("trained_steps", "last_training"), carried into an export; None for a stage-2 run.
    provenance: dict | None = None

    @property
    def image_size(self) -> int:
        return int(self.image_tokenizer.vq.cfg.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None,
                        device: str | torch.device | None = "auto") -> ArmaniPipeline:
        """A pipeline folder, a quickstart folder, a stage-2 run or bundle, or None for the
        shipped model, on `device` ("auto": CUDA when there is a GPU, else the CPU)."""
        return load(path, device)

    def save_pretrained(self, out: str | os.PathLike, half: bool = False, sampling: dict | None = None,
                        about: dict | None = None, measured: dict | None = None) -> Path:
        """This pipeline as one self-contained folder with a model card (see `export`)."""
        check_target(out, "pipeline")
        return _write_pipeline(self, out, half, sampling, about, measured)

    def prepare(self, text: str | None = None, sketch=None, sketch_from=None, partial=None, keep_box=None,
                keep_mask=None) -> Conditions:
        """The inputs checked and turned into condition tokens (see the module docstring)."""
        return prepare(self, text, sketch, sketch_from, partial, keep_box, keep_mask)

    def prepare_mode(self, mode: str, caption: str | None = None, photo: np.ndarray | None = None) -> Conditions:
        """The conditions of generation mode `mode` (MODES) for a garment photo and its caption."""
        return prepare_mode(self, mode, caption, photo)

    def sampling_config(self, temperature=None, top_k=None, top_p=None, guidance=None, keep=None) -> SamplingConfig:
        """The model's sampling defaults with the given settings over them; top_k 0 turns top-k off."""
        return sampling_config(self, temperature, top_k, top_p, guidance, keep)

    def batches(self, cond: Conditions, n: int = 1, seed: int | None = None, sampling: SamplingConfig | None = None,
                batch_size: int = 64, decode: str = "auto") -> Iterator[tuple[np.ndarray, int]]:
        """`n` images of one set of conditions, `batch_size` at a time: yields ((b, H, W, 3)
        uint8, the seed of that batch). The first batch is seeded with `seed` itself (a random
        one when None), so the first images of a larger `n` are those of a smaller one; the
        batch starting at image i with seed * 1_000_003 + i (modulo 2**64). On CUDA the
        Transformer runs in bfloat16 and, with `decode` "auto", each token step is replayed
        from a CUDA graph (`inference.sampling`)."""
        n, batch_size = _whole(n, "n"), _whole(batch_size, "batch_size")
        cfg = _checked(sampling or self.sampling)
        seed = _seed(seed)
        for start in range(0, n, batch_size):
            gen = torch.Generator(device=self.device)
            gen.manual_seed(batch_seed(seed, start))
            yield self._draw([cond] * min(batch_size, n - start), cfg, gen, decode), batch_seed(seed, start)

    def sample_rows(self, rows: list[Conditions], seed: int = 0, sampling: SamplingConfig | None = None,
                    batch: int = 32, progress=None) -> np.ndarray:
        """One image for each set of conditions in `rows` (evaluation: many prompts at once),
        `batch` rows a draw, all from one random stream seeded with `seed`: the images depend
        on the seed and the batch size. (len(rows), H, W, 3) uint8."""
        cfg = _checked(sampling or self.sampling)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        out = []
        for i in range(0, len(rows), batch):
            part = rows[i:i + batch]
            out.append(self._draw(part, cfg, gen, "auto"))
            if progress:
                progress(len(part))
        return np.concatenate(out)

    @torch.no_grad()
    def _draw(self, rows: list[Conditions], cfg: SamplingConfig, gen: torch.Generator, decode: str) -> np.ndarray:
        """The one sampling step of the package: image tokens for a batch of conditions,
        decoded, with the kept cells of exact keeping put back."""
        dev, one = self.device, all(r is rows[0] for r in rows)
        if one:  # one set of conditions for the whole batch: expanded, not copied
            cat = lambda name: getattr(rows[0], name).to(dev).expand(len(rows), -1).contiguous()  # noqa: E731
        else:
            cat = lambda name: torch.cat([getattr(r, name) for r in rows]).to(dev)  # noqa: E731
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            tokens = sample_tokens(self.transformer, cat("ids"), cat("sketch_tokens"), cat("partial_tokens"),
                                   cfg, gen, decode=decode)
        images = self.decode(tokens)
        if cfg.keep != "exact":
            return images
        if one:
            return keep_composite(images, rows[0])
        return np.stack([keep_composite(im[None], r)[0] for im, r in zip(images, rows)])

    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        """Image token ids (B, image_len) -> (B, H, W, 3) uint8 RGB through the stage-1 decoder."""
        return decode_tokens(self, tokens)

    def __call__(self, text: str | None = None, sketch=None, sketch_from=None, partial=None, keep_box=None,
                 keep_mask=None, n: int = 1, seed: int | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, guidance: float | None = None,
                 keep: str | None = None, batch_size: int = 64, decode: str = "auto") -> GenerationOutput:
        """Garments from any mix of conditions (see `generate`), with what was used: the seed
        (drawn when none is given, so a run can be repeated), the seed of each batch, the
        conditions as read, the prompt's unknown words and the sampling settings."""
        cond = self.prepare(text, sketch, sketch_from, partial, keep_box, keep_mask)
        cfg = self.sampling_config(temperature, top_k, top_p, guidance, keep)
        seed = _seed(seed)
        parts = list(self.batches(cond, n, seed, cfg, batch_size, decode))
        unknown = self.tokenizer.unknown_words(cond.text) if cond.text else []
        return GenerationOutput(np.concatenate([p[0] for p in parts]), seed, [p[1] for p in parts], cond, unknown,
                                cfg)


#: Another name of ArmaniPipeline, for code that imports it by the name it first had.
Generator = ArmaniPipeline


@dataclass
class GenerationOutput:
    """What `ArmaniPipeline.__call__` returns."""
    images: np.ndarray          # (n, H, W, 3) uint8 RGB
    seed: int                   # the seed given, or the one drawn
    batch_seeds: list[int]      # the seed of each batch of `batch_size` images, in order
    conditions: Conditions      # the conditions as the model read them (edge map, kept cells, ...)
    unknown_words: list[str]    # prompt words the model never saw in training
    sampling: SamplingConfig    # the settings used


def _seed(seed: int | None) -> int:
    """`seed` checked, or a random one when None."""
    return check_seed(seed) if seed is not None else int.from_bytes(os.urandom(6), "little")


def _checked(cfg: SamplingConfig) -> SamplingConfig:
    try:
        cfg.check()
    except ValueError as e:
        raise GenerationError(str(e)) from None
    return cfg


def shipped_model() -> Path | None:
    """The SynthFashion pipeline inside the installed package, if this build has one."""
    p = Path(str(resources.files("armani") / "pretrained" / "synthfashion"))
    return p if pipeline_dir(p) == p else None


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): CUDA when there is a GPU, else the CPU; otherwise the device named,
    which must exist."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise GenerationError(f"unknown device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r}: this machine has no CUDA GPU (use cpu or auto)")
    return dev


def load(path: str | os.PathLike | None = None, device: str | torch.device | None = "auto") -> ArmaniPipeline:
    """A pipeline folder, a stage-2 run or bundle, or None for the shipped model, on `device`
    ("auto": CUDA when there is a GPU, else the CPU)."""
    device = resolve_device(device)
    if path is None:
        path = shipped_model()
        if path is None:
            raise MissingInput("this installation ships no model; pass a trained one (a pipeline folder "
                                    "or a stage-2 run)")
    path = Path(path)
    if not path.exists():
        raise MissingInput(f"no model at {path}")
    pipe = pipeline_dir(path)  # a pipeline folder, or a quickstart folder's model/
    if pipe is not None:
        return _load_pipeline(pipe, device)
    b = load_bundle(path, "transformer", device)
    parents = {LEGACY_COMPONENTS.get(k, k): v for k, v in b.meta["parents"].items()}
    if "vqgan" not in parents:
        raise UserError(f"{b.path} records no stage-1 model")
    image = load_image_tokenizer(parents["vqgan"]["path"], device=device)
    sketch = load_image_tokenizer(parents["sketch-vq"]["path"], device=device) if "sketch-vq" in parents else None
    tok = CaptionTokenizer.from_file(b.path / "tokenizer.json")
    check_fit(b.path, b.model, image, sketch, tok)
    return ArmaniPipeline(b.model, image, sketch, tok, DEFAULT_SAMPLING, b.path, {"source": str(b.path)})


def _load_pipeline(path: Path, device) -> ArmaniPipeline:
    folder = read_pipeline(path, device)
    if "transformer" not in folder.models:
        raise UserError(f"{path / PIPELINE_FILE}: names no transformer, so it cannot generate")
    image, sketch = tokenizers_of(folder)
    transformer = folder.models["transformer"]
    sampling = _recorded_sampling(path, folder.meta.get("sampling"))
    check_fit(path, transformer, image, sketch, image.tokenizer)
    provenance = {name: {k: c[k] for k in ("trained_steps", "last_training") if k in c}
                  for name, c in folder.configs.items()}
    return ArmaniPipeline(transformer, image, sketch, image.tokenizer, sampling, path, folder.meta, provenance)


def _recorded_sampling(path: Path, rec) -> SamplingConfig:
    """The sampling defaults a pipeline's armani.json records, checked."""
    rec = {} if rec is None else rec
    known = set(asdict(DEFAULT_SAMPLING))
    if not isinstance(rec, dict) or set(rec) - known:
        raise UserError(f"{path / PIPELINE_FILE}: 'sampling' must be an object with keys among "
                        f"{', '.join(sorted(known))}, got {rec!r}")
    cfg = SamplingConfig(**{**asdict(DEFAULT_SAMPLING), **rec})
    try:
        cfg.check()
    except UserError as e:
        raise UserError(f"{path / PIPELINE_FILE}: sampling: {e}") from None
    return cfg


def check_fit(where: Path, transformer: CrossModalTransformer, image: ImageTokenizer,
              sketch: ImageTokenizer | None, tokenizer: CaptionTokenizer) -> None:
    """UserError when a pipeline's models do not fit each other (the Transformer's token
    counts against stage 1, the sketch tokenizer and the caption tokenizer), so a bad folder
    fails at load, not in the middle of a generation."""
    t, vq = transformer.cfg, image.vq.cfg
    wrong = []
    if t.image_codes != vq.num_codes or t.image_len != vq.grid ** 2:
        wrong.append(f"the Transformer reads {t.image_len} image tokens of {t.image_codes} codes, stage 1 makes "
                     f"{vq.grid ** 2} of {vq.num_codes}")
    if sketch is not None and t.sketch_len and (t.sketch_codes != sketch.vq.cfg.num_codes
                                                or t.sketch_len != sketch.vq.cfg.grid ** 2):
        wrong.append(f"the Transformer reads {t.sketch_len} sketch tokens of {t.sketch_codes} codes, the sketch "
                     f"tokenizer makes {sketch.vq.cfg.grid ** 2} of {sketch.vq.cfg.num_codes}")
    if sketch is not None and sketch.vq.cfg.image_size != vq.image_size:
        wrong.append(f"the sketch tokenizer works at {sketch.vq.cfg.image_size} px, stage 1 at {vq.image_size}")
    if tokenizer.vocab_size > t.text_vocab:
        wrong.append(f"the caption tokenizer has {tokenizer.vocab_size} tokens, the Transformer reads {t.text_vocab}")
    if wrong:
        raise UserError(f"{where}: the models do not fit each other: {'; '.join(wrong)}")


def _component_provenance(g: ArmaniPipeline) -> tuple[dict, dict | None]:
    """name -> {"trained_steps", "last_training"} for each component, and the dataset facts:
    what a pipeline folder's files recorded at its export, or, for a stage-2 run, read from
    its bundles, their parents and the token folder."""
    from ..report.modelcard import dataset_facts, last_training_record
    if g.provenance is not None:
        return g.provenance, g.info.get("trained_on")
    dirs: dict[str, Path] = {"transformer": resolve_bundle(g.path)}
    metas = {"transformer": json.loads((dirs["transformer"] / "config.json").read_text())}
    def follow(child: str, name: str, as_name: str | None = None) -> None:
        rec = (metas.get(child, {}).get("parents") or {}).get(name)
        try:
            d = resolve_bundle(rec["path"]) if rec else None
        except FileNotFoundError:
            d = None
        if d is not None:
            dirs[as_name or name] = d
            metas[as_name or name] = json.loads((d / "config.json").read_text())
    follow("transformer", "vqgan")
    follow("transformer", "sketch-vq")
    follow("transformer", "sketch", "sketch-vq")
    follow("vqgan", "maskclip")
    follow("vqgan", "segmenter")
    out = {}
    for name, d in dirs.items():
        last = last_training_record(d)
        out[name] = {"trained_steps": metas[name].get("trained_steps"),
                     "last_training": {k: v for k, v in (last or {}).items() if isinstance(v, (int, float))}}
    return out, dataset_facts(metas["transformer"])


def export(model: str | os.PathLike, out: str | os.PathLike, half: bool = False, sampling: dict | None = None,
           about: dict | None = None, measured: dict | None = None) -> Path:
    """Pack a stage-2 run (and every model it depends on), a pipeline folder or a quickstart
    folder into one self-contained pipeline folder with a model card (`README.md`). `half`
    stores float weights as float16 (half the size; loaded back as float32); `measured`
    (component -> figure -> value) goes into the card. No file names a path of this machine."""
    check_target(out, "pipeline")  # before the models load: only a pipeline folder is replaced
    return _write_pipeline(load(model), out, half, sampling, about, measured)


def _write_pipeline(g: ArmaniPipeline, out, half: bool, sampling: dict | None, about: dict | None,
                    measured: dict | None) -> Path:
    from ..report.modelcard import model_card
    st, sk = g.image_tokenizer, g.sketch_tokenizer
    mods = {"transformer": g.transformer, "vqgan": st.vq, "sketch-vq": sk.vq if sk else None,
            "maskclip": st.maskclip, "segmenter": st.segmenter}
    mods = {k: m for k, m in mods.items() if m is not None}
    trained, data = _component_provenance(g) if g.path is not None else ({}, None)
    keep = {k: g.info[k] for k in ("name", "trained_by", "note", "measured") if k in g.info} \
        if g.provenance is not None else {}
    fields = {"image_size": g.image_size, "max_text_len": g.image_tokenizer.max_text_len,
              "sampling": {**asdict(g.sampling), **(sampling or {})}}
    extra = {**({"trained_on": data} if data else {}), **keep, **(about or {}),
             **({"measured": measured} if measured else {})}
    return write_pipeline(out, mods, g.tokenizer.save, fields, extra, half, model_card, trained)


# --- conditions -------------------------------------------------------------------------

def _pixels(a: np.ndarray, what: str) -> np.ndarray:
    """An image array as uint8 in 0..255: uint8 as it is, bool as 0/255, other integers
    within 0..255, floats finite and within [0, 1] (scaled by 255) or [0, 255]."""
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise GenerationError(f"the {what} must be an array of numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise GenerationError(f"the {what} has values that are not finite (NaN or infinity)")
    lo, hi = (a.min(), a.max()) if a.size else (0, 0)
    if lo < 0 or hi > 255:
        raise GenerationError(f"the {what} has values from {lo:g} to {hi:g}; image arrays must lie in 0..255 "
                              "(or 0..1 for floats)")
    if np.issubdtype(a.dtype, np.floating) and hi <= 1:
        a = a * 255.0
    return np.round(a).astype(np.uint8)


def as_rgb(src, what: str) -> np.ndarray:
    """A condition image: a file path, or an (H, W), (H, W, 1|3|4) array (or PIL image) ->
    (H, W, 3) uint8; transparency goes over white. Files and arrays alike are held to the
    pixel limit of every reader (`formats.images.MAX_PIXELS`)."""
    if not isinstance(src, (str, os.PathLike, np.ndarray)):
        if hasattr(src, "__array_interface__") or hasattr(src, "getbands"):  # a PIL image
            src = np.asarray(src)
        else:
            raise GenerationError(f"the {what} must be a file path or an image array, got {type(src).__name__}")
    if isinstance(src, np.ndarray):
        if src.ndim == 3 and src.shape[2] == 1:
            src = src[..., 0]
        if not (src.ndim == 2 or (src.ndim == 3 and src.shape[2] in (3, 4))) or 0 in src.shape:
            raise GenerationError(f"the {what} must be an (H, W), (H, W, 3) or (H, W, 4) array, got {src.shape}")
        if src.shape[0] * src.shape[1] > MAX_PIXELS:
            raise GenerationError(f"the {what} is {src.shape[1]} x {src.shape[0]}, over the {MAX_PIXELS:,}-pixel "
                                  "limit")
        img = _pixels(src, what)
        if img.ndim == 2:
            return np.repeat(img[..., None], 3, 2)
        if img.shape[2] == 4:
            alpha = img[..., 3:4].astype(np.float32) / 255.0
            return np.round(img[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
        return np.ascontiguousarray(img)
    p = Path(src)
    if not p.is_file():
        raise GenerationError(f"{what}: no such file: {p}")
    try:
        return read_image_strict(p)
    except BadFile as e:
        raise GenerationError(f"{what}: {e}") from None


def _gray(src, what: str) -> np.ndarray:
    """(H, W) uint8; an array of only 0s and 1s is taken as 0/255 (a binary map)."""
    g = as_rgb(src, what).mean(2).astype(np.uint8)
    return g * 255 if g.size and int(g.max()) <= 1 else g


def sketch_map(g: ArmaniPipeline, sketch=None, sketch_from=None) -> np.ndarray | None:
    """The edge map (S, S) uint8 in {0, 255} (edges 255) the sketch condition is made of."""
    s = g.image_size
    if sketch is not None and sketch_from is not None:
        raise GenerationError("give a sketch or a photo to take one from, not both")
    if sketch_from is not None:
        return canny(letterbox(as_rgb(sketch_from, "sketch photo"), s))
    if sketch is None:
        return None
    gray = _gray(sketch, "sketch")
    if gray.mean() > 127:  # dark lines on a light background
        gray = 255 - gray
    small = letterbox(gray, s, fill=0)
    return np.where(small > 40, 255, 0).astype(np.uint8)


def _box(keep_box) -> tuple[int, int, int, int]:
    """Four finite numbers x0, y0, x1, y1 (a sequence, or text "x0,y0,x1,y1"), rounded."""
    vals = keep_box.split(",") if isinstance(keep_box, str) else keep_box
    try:
        nums = [float(v) for v in vals]
    except (TypeError, ValueError):
        nums = []
    if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
        raise GenerationError(f"keep box must be four finite numbers x0,y0,x1,y1, got {keep_box!r}")
    return tuple(int(round(v)) for v in nums)


def keep_map(g: ArmaniPipeline, image: np.ndarray, keep_box=None, keep_mask=None) -> np.ndarray:
    """The kept pixels (S, S) bool of a partial image after letterboxing. A keep mask keeps
    its light pixels (over 127), or, when it holds only 0s and 1s, its non-zero ones."""
    h, w = image.shape[:2]
    if (keep_box is None) == (keep_mask is None):
        raise GenerationError("a partial image needs exactly one of a keep box (x0,y0,x1,y1) or a keep mask")
    if keep_box is not None:
        x0, y0, x1, y1 = _box(keep_box)
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise GenerationError(f"keep box {x0},{y0},{x1},{y1} is not a non-empty box inside the "
                                  f"{w} x {h} image")
        full = np.zeros((h, w), np.uint8)
        full[y0:y1, x0:x1] = 1
    else:
        full = (_gray(keep_mask, "keep mask") > 127).astype(np.uint8)
        if full.shape != (h, w):
            raise GenerationError(f"the keep mask is {full.shape[1]} x {full.shape[0]}, the partial image "
                                  f"{w} x {h}: they must match")
    return letterbox(full, g.image_size, fill=0, nearest=True).astype(bool)


@dataclass
class Conditions:
    text: str | None
    ids: torch.Tensor            # (1, text_len) token ids, EMPTY when no text
    lengths: torch.Tensor        # (1,)
    sketch: np.ndarray | None    # the edge map used
    sketch_tokens: torch.Tensor  # (1, sketch_len)
    partial: np.ndarray | None   # the partial image as the model sees it (blank outside the kept cells)
    partial_tokens: torch.Tensor  # (1, image_len)
    kept_image: np.ndarray | None = None   # (S, S, 3) uint8: the partial image through stage 1
    kept_weight: np.ndarray | None = None  # (S, S) float32: 1 on the kept cells, feathered to 0 outside


def kept_weight(cells_px: np.ndarray, feather: int) -> np.ndarray:
    """(S, S) float32 blending weight of the kept pixels `cells_px` (bool): 1 on them, falling
    linearly to 0 over `feather` pixels outside them (the seam between kept and sampled cells)."""
    m = torch.from_numpy(np.asarray(cells_px, np.float32))[None, None]
    w, ring = m.clone(), m
    for k in range(1, feather + 1):
        ring = torch.nn.functional.max_pool2d(ring, 3, 1, 1)
        w = torch.maximum(w, ring * (1 - k / (feather + 1)))
    return w[0, 0].numpy()


def keep_composite(images: np.ndarray, cond: Conditions) -> np.ndarray:
    """(B, S, S, 3) uint8 samples with the kept cells of `cond`'s partial image put back: there the
    pixels are the partial image's own stage-1 reconstruction, blended into the sampled pixels
    over a few pixels outside them. Unchanged without a partial image."""
    if cond.kept_image is None:
        return images
    w = cond.kept_weight[None, ..., None]
    out = w * cond.kept_image[None].astype(np.float32) + (1 - w) * images.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@torch.no_grad()
def prepare(g: ArmaniPipeline, text: str | None = None, sketch=None, sketch_from=None, partial=None, keep_box=None,
            keep_mask=None) -> Conditions:
    """Checks the inputs and turns them into condition tokens."""
    c, dev, s = g.transformer.cfg, g.device, g.image_size
    text = text.strip() if isinstance(text, str) else text
    if text is not None and not isinstance(text, str):
        raise GenerationError("text must be a string")
    if not text and sketch is None and sketch_from is None and partial is None:
        raise GenerationError("nothing to generate from: give a prompt, a sketch or a partial image")
    if partial is None and (keep_box is not None or keep_mask is not None):
        raise GenerationError("a keep box or keep mask needs a partial image")
    ids = torch.full((1, c.text_len), c.text_empty, dtype=torch.long)
    lengths = torch.zeros(1, dtype=torch.long)
    if text:
        need = g.tokenizer.count(text)
        if need > c.text_len:
            raise GenerationError(f"the prompt is {need} tokens long; this model reads at most {c.text_len}")
        arr, n = g.tokenizer.encode(text, c.text_len)
        ids, lengths = torch.from_numpy(arr)[None], torch.tensor([n])
    edges = sketch_map(g, sketch, sketch_from)
    sk_tok = torch.full((1, c.sketch_len), c.sketch_empty, dtype=torch.long)
    if edges is not None:
        if g.sketch_tokenizer is None or c.sketch_len == 0:
            raise GenerationError("this model was trained without sketches")
        x = torch.from_numpy(edges > 0).float()[None, None].to(dev) * 2 - 1
        sk_tok = g.sketch_tokenizer.encode(x).flatten(1).cpu()
    part_tok = torch.full((1, c.image_len), c.image_empty, dtype=torch.long)
    shown = kept_image = weight = None
    if partial is not None:
        img = as_rgb(partial, "partial image")
        keep = keep_map(g, img, keep_box, keep_mask)
        small = letterbox(img, s)
        grid = g.image_tokenizer.vq.cfg.grid
        cells = keep_cells(torch.from_numpy(keep)[None].float(), grid)
        if not bool(cells.any()):
            raise GenerationError(f"the kept region covers no token cell (a cell is {s // grid} px here and "
                                  "counts when at least half of it is kept): keep a larger area")
        x = to_unit(small)[None].to(dev)
        if text and g.image_tokenizer.vq.cfg.fusion == "maskclip" and g.image_tokenizer.maskclip is not None:
            codes = g.image_tokenizer.encode(x, ids.to(dev), lengths.to(dev))
        else:  # no caption to fuse: the encoder's own features
            codes = g.image_tokenizer.vq.encode(x)[1]
        part_tok = torch.where(cells, codes.flatten(1).cpu(), torch.full_like(part_tok, c.image_empty))
        cell_px = torch.repeat_interleave(torch.repeat_interleave(cells.view(grid, grid), s // grid, 0), s // grid, 1)
        shown = np.where(cell_px.numpy()[..., None], small, 255).astype(np.uint8)
        kept_image = decode_tokens(g, codes.flatten(1))[0]
        weight = kept_weight(cell_px.numpy(), max(1, s // grid // 2))
    return Conditions(text or None, ids, lengths, edges, sk_tok, shown, part_tok, kept_image, weight)


@torch.no_grad()
def prepare_mode(g: ArmaniPipeline, mode: str, caption: str | None = None,
                 photo: np.ndarray | None = None) -> Conditions:
    """The conditions of generation mode `mode` (see MODES) for a garment photo and its caption:
    the caption (text modes), the photo's edges (sketch modes), the photo with the chest band
    kept (partial modes)."""
    if mode not in MODES:
        raise GenerationError(f"unknown generation mode {mode!r}; modes: {', '.join(MODES)}")
    partial = "partial" in mode
    return prepare(g, caption if "text" in mode else None, sketch_from=photo if "sketch" in mode else None,
                   partial=photo if partial else None, keep_box=chest_band(g.image_size) if partial else None)


def generate_batches(g: ArmaniPipeline, cond: Conditions, n: int = 1, seed: int | None = None,
                     sampling: SamplingConfig | None = None, batch_size: int = 64,
                     decode: str = "auto") -> Iterator[np.ndarray]:
    """`ArmaniPipeline.batches` without the seeds: yields (b, H, W, 3) uint8 arrays."""
    for images, _ in g.batches(cond, n, seed, sampling, batch_size, decode):
        yield images


def _whole(v, name: str) -> int:
    """A count of at least 1, or GenerationError naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise GenerationError(f"{name} must be a whole number of at least 1, got {v!r}")
    return int(v)


def generate_from(g: ArmaniPipeline, cond: Conditions, n: int = 1, seed: int | None = None,
                  sampling: SamplingConfig | None = None, batch_size: int = 64, decode: str = "auto") -> np.ndarray:
    """(n, H, W, 3) uint8: `generate_batches` gathered."""
    return np.concatenate(list(generate_batches(g, cond, n, seed, sampling, batch_size, decode)))


@torch.no_grad()
def decode_tokens(g: ArmaniPipeline, tokens: torch.Tensor) -> np.ndarray:
    """Image token ids (B, image_len) -> (B, H, W, 3) uint8 RGB through the stage-1 decoder."""
    grid = g.image_tokenizer.vq.cfg.grid
    images = g.image_tokenizer.decode(tokens.view(tokens.shape[0], grid, grid))
    return ((images.float().cpu() + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def generate(model: ArmaniPipeline | str | os.PathLike | None = None, text: str | None = None, sketch=None,
             sketch_from=None, partial=None, keep_box=None, keep_mask=None, n: int = 1, seed: int | None = None,
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             guidance: float | None = None, keep: str | None = None) -> np.ndarray:
    """Garments from any mix of conditions -> (n, H, W, 3) uint8 RGB. `model` is a loaded
    ArmaniPipeline or anything `load` accepts. Sampling settings left as None keep the model's
    defaults; the same seed gives the same images. `keep` ("exact", the default, or "soft"):
    whether the kept cells of a partial image are its own tokens or only a condition. Prompt
    words the model does not know raise an `UnknownWordsWarning` (the model reads them as
    noise). `ArmaniPipeline.__call__` does the same and also returns the seed it used."""
    g = model if isinstance(model, ArmaniPipeline) else load(model)
    out = g(text, sketch, sketch_from, partial, keep_box, keep_mask, n, seed, temperature, top_k, top_p, guidance,
            keep)
    if out.unknown_words:
        warnings.warn(unknown_words_message(out.unknown_words), UnknownWordsWarning, stacklevel=2)
    return out.images


def sampling_config(g: ArmaniPipeline, temperature=None, top_k=None, top_p=None, guidance=None,
                    keep=None) -> SamplingConfig:
    """The model's sampling defaults with the given settings over them; top_k 0 turns top-k off."""
    cfg = asdict(g.sampling)
    given = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "guidance": guidance, "keep": keep}
    cfg.update({k: v for k, v in given.items() if v is not None})
    if cfg["top_k"] == 0:
        cfg["top_k"] = None
    return SamplingConfig(**cfg)
