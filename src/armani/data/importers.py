"""Importers from public fashion datasets into the armani format.

Every importer yields `Candidate`s; `import_dataset` validates each one (image decodes
fully, mask has the image's shape and only known labels, captions present and at most
400 words), writes the good ones and lists the others with their reason in
`import_report.json`. Source labels are mapped onto armani's 15 with the explicit tables
below; a source label missing from a table is an error ("label out of range").
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..formats.coco_rle import decode_coco_rle
from ..formats.dataset import (
    MAX_CAPTION_CHARS,
    MAX_CAPTION_WORDS,
    DatasetWriter,
    dataset_meta,
)
from ..formats.fsutil import TooLarge, inside, read_capped
from ..formats.images import (
    BadFile,
    encode_mask_png,
    read_image_strict,
    read_label_map,
    write_bytes,
)
from ..labels import LABEL_ID, NUM_LABELS
from .tokenizer import train_bpe

log = logging.getLogger(__name__)

# --- label tables: source label id -> armani label name ------------------------------
# Human-parsing labels name whole garments, not parts: a garment becomes "body" (tops,
# dresses, coats), "skirt" or "leg"; people and accessories become background.

#: VITON-HD `image-parse-v3` (LIP-style human parsing, 20 labels).
VITONHD_TABLE: dict[int, str] = {
    0: "background", 1: "background",  # hat
    2: "background", 3: "background",  # hair, glove
    4: "background", 5: "body",        # sunglasses, upper-clothes
    6: "body", 7: "body",              # dress, coat
    8: "background", 9: "leg",         # socks, pants
    10: "background", 11: "background",  # neck/torso skin, scarf
    12: "skirt", 13: "background",     # skirt, face
    14: "background", 15: "background",  # left/right arm
    16: "background", 17: "background",  # left/right leg
    18: "background", 19: "background",  # left/right shoe
}

#: Dress Code `label_maps` (18 labels).
DRESSCODE_TABLE: dict[int, str] = {
    0: "background", 1: "background", 2: "background", 3: "background",  # bg, hat, hair, sunglasses
    4: "body", 5: "skirt", 6: "leg", 7: "body", 8: "waistband",           # upper, skirt, pants, dress, belt
    9: "background", 10: "background", 11: "background",                  # shoes, head
    12: "background", 13: "background", 14: "background", 15: "background",  # legs, arms
    16: "background", 17: "background",                                   # bag, scarf
}

#: DeepFashion-MultiModal `segm` (24 labels).
DEEPFASHION_MM_TABLE: dict[int, str] = {
    0: "background", 1: "body", 2: "body", 3: "skirt", 4: "body",  # bg, top, outer, skirt, dress
    5: "leg", 6: "leg", 7: "background", 8: "background",         # pants, leggings, headwear, eyeglass
    9: "background", 10: "waistband", 11: "background",           # neckwear, belt, footwear
    12: "background", 13: "background", 14: "background",         # bag, hair, face
    15: "background", 16: "background", 17: "background",         # skin, ring, wrist wearing
    18: "background", 19: "background", 20: "background",         # socks, gloves, necklace
    21: "body", 22: "background", 23: "background",               # rompers, earrings, tie
}

#: Fashionpedia category name -> armani label, painted in this order of priority (later
#: on top). Categories not listed (accessories, neckline, most decorations) are not drawn.
FASHIONPEDIA_TABLE: dict[str, str] = {
    # whole garments
    "shirt, blouse": "body", "top, t-shirt, sweatshirt": "body", "sweater": "body",
    "cardigan": "body", "jacket": "body", "vest": "body", "coat": "body", "dress": "body",
    "jumpsuit": "body", "cape": "body", "pants": "leg", "shorts": "leg", "skirt": "skirt",
    "tights, stockings": "leg",
    # garment parts
    "sleeve": "sleeve", "hood": "hood", "collar": "collar", "lapel": "lapel",
    "pocket": "pocket", "garment belt": "waistband", "belt": "waistband",
    # closures and decorations
    "buckle": "waistband", "zipper": "zipper", "rivet": "button", "applique": "logo",
}
_FP_GARMENT_SUPER = ("upperbody", "lowerbody", "wholebody")
_FP_PART_SUPER = ("garment parts", "closures", "decorations")


def table_lut(table: dict[int, str]) -> np.ndarray:
    """Source-id -> armani-id lookup; ids missing from the table map to -1 (invalid)."""
    lut = np.full(max(table) + 1, -1, np.int16)
    for src, name in table.items():
        lut[src] = LABEL_ID[name]
    return lut


class Skip(Exception):
    """This sample is unusable; the message says why."""


@dataclass
class Candidate:
    id: str
    image: Path
    captions: list[str] | None
    mask: Callable[[tuple[int, int]], np.ndarray] | None = None  # (h, w) -> armani label map
    sketch: Path | None = None
    attributes: dict | None = None
    source: str = ""
    files: tuple[Path, ...] = ()   # the other source files it reads (caption file, mask), checked like the image
    problem: str | None = None     # a reason to skip it found while listing


# Caps on what one source file may hold: a caption file of one sample, and a file of
# captions or annotations for the whole source (Fashionpedia's largest is about 0.2 GiB).
MAX_CAPTION_FILE_BYTES = 1 << 20
MAX_ANNOTATION_BYTES = 1 << 30


def source_problem(src: Path, path: Path) -> str | None:
    """Why a source file must not be read: a symlink leading out of SRC, a symlink loop, or
    not a regular file (a FIFO would hang the import, a device would never end)."""
    if not inside(path, src):
        return f"symlink leaves SRC: {path}"
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return f"not a regular file: {path}"
    except OSError as e:  # a symlink loop (ELOOP), a dangling link, no permission
        return f"unreadable file: {path}: {e.strerror or e}"
    return None


@dataclass
class ImportResult:
    out: Path
    imported: int
    skipped: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        reasons = Counter(s["reason"].split(":")[0] for s in self.skipped)
        why = "; ".join(f"{n} {r}" for r, n in reasons.most_common())
        return (f"imported {self.imported}, skipped {len(self.skipped)}" + (f" ({why})" if why else "")
                + f" -> {self.out}")


class ImportFailed(UserError):
    pass


def clean_captions(caps: list[str] | str | None) -> list[str]:
    """A list of captions, one string a caption: control characters become spaces, runs of
    white space one space; captions over the word or character caps are dropped."""
    if caps is None:
        raise Skip("missing caption")
    if isinstance(caps, str):
        caps = [caps]
    if not isinstance(caps, (list, tuple)) or not all(isinstance(c, str) for c in caps):
        raise Skip(f"captions must be text or a list of texts, got {type(caps).__name__}")
    caps = [" ".join("".join(ch if ch.isprintable() else " " for ch in c).split()) for c in caps]
    caps = [c for c in caps if c]
    if not caps:
        raise Skip("empty caption")
    kept = [c for c in caps if len(c.split()) <= MAX_CAPTION_WORDS]
    if not kept:
        raise Skip(f"caption over {MAX_CAPTION_WORDS} words")
    kept = [c for c in kept if len(c) <= MAX_CAPTION_CHARS]
    if not kept:
        raise Skip(f"caption over {MAX_CAPTION_CHARS} characters")
    return kept


def mapped_label_map(path: Path, lut: np.ndarray) -> Callable[[tuple[int, int]], np.ndarray]:
    def load(hw: tuple[int, int]) -> np.ndarray:
        raw = read_label_map(path).astype(np.int64)
        raw = fit_to(raw, hw, path)
        if raw.min() < 0 or raw.max() >= len(lut) or (lut[raw] < 0).any():
            bad = sorted(set(np.unique(raw).tolist()) - {i for i in range(len(lut)) if lut[i] >= 0})
            raise Skip(f"label out of range: {path.name} has source labels {bad[:8]}")
        return lut[raw].astype(np.uint8)
    return load


def fit_to(m: np.ndarray, hw: tuple[int, int], path: Path) -> np.ndarray:
    """Accept a mask of the image's size, or of the same aspect ratio (resized, nearest)."""
    if m.shape[:2] == hw:
        return m
    h, w = m.shape[:2]
    if abs(h / w - hw[0] / hw[1]) > 0.01 * hw[0] / hw[1]:
        raise Skip(f"mask size: {path.name} is {w}x{h}, image is {hw[1]}x{hw[0]}")
    return cv2.resize(m.astype(np.int32), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


# --- the importers -------------------------------------------------------------------

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _present(path: Path) -> bool:
    """Whether a source file is there at all (a dangling or looping link counts, so that it
    is reported instead of silently ignored)."""
    return path.exists() or path.is_symlink()


def _read_source(src: Path | None, path: Path, limit: int = MAX_ANNOTATION_BYTES) -> bytes:
    """The bytes of a captions or annotations file: inside SRC (unless `src` is None: a
    file the user named), a regular file, at most `limit` bytes."""
    problem = source_problem(src, path) if src is not None else None
    if problem is None and src is None and not path.is_file():
        problem = f"not a regular file: {path}"
    if problem:
        raise ImportFailed(f"cannot read {path.name}: {problem}")
    try:
        return read_capped(path, limit, "captions or annotations file")
    except TooLarge as e:
        raise ImportFailed(str(e)) from None
    except OSError as e:
        raise ImportFailed(f"cannot read {path}: {e.strerror or e}") from None


def _read_json(path: Path, src: Path | None, expect: type = dict, what: str = "an object keyed by id"):
    """A whole-source JSON file (see `_read_source`) whose top level is an `expect`."""
    try:
        doc = json.loads(_read_source(src, path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImportFailed(f"cannot read {path}: {e}") from None
    if not isinstance(doc, expect):
        raise ImportFailed(f"{path}: expected {what}, found {type(doc).__name__}")
    return doc


def _captions_jsonl(src: Path, path: Path) -> dict[str, object]:
    """captions.jsonl: image file name -> its captions (checked later by `clean_captions`)."""
    out: dict[str, object] = {}
    for n, line in enumerate(_read_source(src, path).decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise ImportFailed(f"captions.jsonl line {n}: {e}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or not rec["image"]:
            raise ImportFailed(f"captions.jsonl line {n}: expected {{\"image\": name, \"captions\": [...]}}")
        out[Path(rec["image"]).name] = rec.get("captions", rec.get("caption"))
    return out


def _caption_file(side: Path) -> list[str]:
    """A sample's `<stem>.txt`, one caption a line (at most MAX_CAPTION_FILE_BYTES)."""
    try:
        return read_capped(side, MAX_CAPTION_FILE_BYTES, "caption file").decode("utf-8", "replace").splitlines()
    except TooLarge as e:
        raise Skip(str(e)) from None
    except OSError as e:
        raise Skip(f"unreadable file: {side}: {e.strerror or e}") from None


def folder_candidates(src: Path) -> Iterator[Candidate]:
    """SRC/images/*.jpg (or SRC/*.jpg) with SRC/[images/]<stem>.txt (one caption a line) or
    SRC/captions.jsonl ({"image": name, "captions": [...]} or "caption": "..."), optional
    SRC/masks/<stem>.png (armani label ids) and SRC/sketches/<stem>.png."""
    img_dir = src / "images" if (src / "images").is_dir() else src
    jsonl = _captions_jsonl(src, src / "captions.jsonl") if _present(src / "captions.jsonl") else {}
    lut = table_lut({i: name for i, name in enumerate(LABEL_ID)})
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        caps, problem, files = None, None, []
        for side in (p.with_suffix(".txt"), src / f"{p.stem}.txt"):
            if side.exists() or side.is_symlink():
                problem = source_problem(src, side)
                if problem is None:
                    try:
                        caps = _caption_file(side)
                    except Skip as e:
                        problem = str(e)
                    files.append(side)
                break
        if caps is None:
            caps = jsonl.get(p.name)
        mask = src / "masks" / f"{p.stem}.png"
        sk = src / "sketches" / f"{p.stem}.png"
        if mask.exists():
            files.append(mask)
        yield Candidate(p.stem, p, caps, mapped_label_map(mask, lut) if mask.is_file() else None,
                        sk if sk.is_file() else None, source="folder", files=tuple(files), problem=problem)


def vitonhd_candidates(src: Path) -> Iterator[Candidate]:
    """SRC/{train,test}/image/<id>_00.jpg, image-parse-v3/<id>_00.png, im_sketch/<id>_00.png,
    SRC/captions.json keyed by <id> (3 phrases each)."""
    caps = _read_json(src / "captions.json", src) if _present(src / "captions.json") else {}
    lut = table_lut(VITONHD_TABLE)
    found = False
    for part in ("train", "test"):
        img_dir = src / part / "image"
        if not img_dir.is_dir():
            continue
        found = True
        for p in sorted(img_dir.glob("*.jpg")):
            key = p.stem[:-3] if p.stem.endswith("_00") else p.stem
            parse = src / part / "image-parse-v3" / f"{p.stem}.png"
            sk = src / part / "im_sketch" / f"{p.stem}.png"
            yield Candidate(f"{part}-{p.stem}", p, caps.get(key), mapped_label_map(parse, lut),
                            sk if sk.is_file() else None, source=f"vitonhd/{part}",
                            files=(parse,) if parse.exists() else ())
    if not found:
        raise ImportFailed(f"{src}: no train/image or test/image folder (VITON-HD layout)")


def dresscode_candidates(src: Path) -> Iterator[Candidate]:
    """SRC/{upper_body,lower_body,dresses}/images/<id>_0.jpg, label_maps/<id>_4.png,
    im_sketch/<id>_1.png; SRC/fine_captions.json keyed by the 6-digit id (list of phrases)."""
    caps = _read_json(src / "fine_captions.json", src) if _present(src / "fine_captions.json") else {}
    lut = table_lut(DRESSCODE_TABLE)
    found = False
    for cat in ("upper_body", "lower_body", "dresses"):
        img_dir = src / cat / "images"
        if not img_dir.is_dir():
            continue
        found = True
        for p in sorted(img_dir.glob("*_0.jpg")):
            key = p.stem[:-2]
            phrases = caps.get(key)
            # The phrases describe one garment: all of them joined, then each alone.
            # Anything but a list of texts goes on as it is, for `clean_captions` to refuse.
            captions = [", ".join(phrases)] + phrases if isinstance(phrases, list) and phrases \
                and all(isinstance(x, str) for x in phrases) else phrases
            lm = src / cat / "label_maps" / f"{key}_4.png"
            sk = src / cat / "im_sketch" / f"{key}_1.png"
            yield Candidate(f"{cat}-{key}", p, captions, mapped_label_map(lm, lut) if lm.is_file() else None,
                            sk if sk.is_file() else None, source=f"dresscode/{cat}",
                            files=(lm,) if lm.exists() else ())
    if not found:
        raise ImportFailed(f"{src}: no upper_body/lower_body/dresses images folder (Dress Code layout)")


def deepfashion_mm_candidates(src: Path) -> Iterator[Candidate]:
    """SRC/images/<stem>.jpg, SRC/segm/<stem>_segm.png, SRC/captions.json keyed by file name."""
    img_dir = src / "images"
    if not img_dir.is_dir():
        raise ImportFailed(f"{src}: no images folder (DeepFashion-MultiModal layout)")
    caps = _read_json(src / "captions.json", src) if _present(src / "captions.json") else {}
    lut = table_lut(DEEPFASHION_MM_TABLE)
    for p in sorted(img_dir.glob("*.jpg")):
        c = caps.get(p.name)
        segm = src / "segm" / f"{p.stem}_segm.png"
        yield Candidate(p.stem, p, c, mapped_label_map(segm, lut) if segm.is_file() else None,
                        source="deepfashion-mm", files=(segm,) if segm.exists() else ())


_FP_CAPTION_ATTRS = ("length", "silhouette", "textile pattern", "nickname", "waistline")


def _fp_caption(garments: list[dict], parts: Counter, attrs: dict[int, dict], cat_names: dict) -> str:
    """"a knee-length fit and flare dress with two sleeves and a neckline" from names."""
    from .vocab import NUMBER_WORDS

    def attr_word(a: dict) -> str:
        word = a["name"].split("(")[0].strip()
        if a.get("supercategory") == "length" and "length" not in word:
            word += "-length"
        return word

    phrases = []
    for g in garments:
        adj = [attr_word(attrs[i]) for i in g.get("attribute_ids", [])
               if i in attrs and attrs[i].get("supercategory") in _FP_CAPTION_ATTRS
               and attrs[i]["name"] not in ("symmetrical", "asymmetrical")]
        phrases.append(" ".join(adj[:4] + [cat_names[g["category_id"]].split(",")[0].strip()]))
    text = " and ".join(f"a {p}" for p in phrases)
    part_words = []
    for name, n in sorted(parts.items()):
        word = name.split(",")[0].strip()
        part_words.append(f"a {word}" if n == 1 else f"{NUMBER_WORDS[min(n, 9)]} {word}s")
    if part_words:
        text += " with " + (", ".join(part_words[:-1]) + " and " + part_words[-1] if len(part_words) > 1
                            else part_words[0])
    return text


def _fp_table(data: dict, key: str, need: dict[str, type | tuple[type, ...]], path: Path) -> list[dict]:
    """`data[key]`: a list of objects each with the keys `need` of the types given, else
    ImportFailed naming the first one that is not (a missing table is an empty one)."""
    rows = data.get(key, [])
    if not isinstance(rows, list):
        raise ImportFailed(f"{path}: '{key}' must be a list, found {type(rows).__name__}")
    for n, row in enumerate(rows):
        bad = [k for k, t in need.items() if not isinstance(row, dict) or not isinstance(row.get(k), t)
               or isinstance(row.get(k), bool)]
        if bad:
            raise ImportFailed(f"{path}: {key}[{n}] needs {', '.join(f'{k!r} ({_tname(need[k])})' for k in bad)}")
    return rows


def _tname(t) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


_ID = (int, str)


def fashionpedia_candidates(src: Path, annotations: Path | None = None) -> Iterator[Candidate]:
    """COCO-style JSON with polygon (or RLE) annotations of garments and garment parts;
    images in SRC/images or SRC. Captions are composed from category, part and attribute names.
    The tables the importer reads are checked first: a missing or mistyped key is one error
    naming it, never a caption or mask made of the wrong values."""
    named = annotations is not None
    if annotations is None:
        jsons = sorted(src.glob("*.json"))
        if len(jsons) != 1:
            raise ImportFailed(f"{src}: expected one annotation .json, found {len(jsons)} "
                               "(pass --annotations PATH)")
        annotations = jsons[0]
    data = _read_json(annotations, None if named else src, dict, "a COCO-style object")
    cats = {c["id"]: c for c in _fp_table(data, "categories", {"id": _ID, "name": str}, annotations)}
    cat_names = {i: c["name"] for i, c in cats.items()}
    attrs = {a["id"]: a for a in _fp_table(data, "attributes", {"id": _ID, "name": str}, annotations)}
    by_image: dict[int, list[dict]] = {}
    for a in _fp_table(data, "annotations", {"image_id": _ID, "category_id": _ID}, annotations):
        by_image.setdefault(a["image_id"], []).append(a)
    images = _fp_table(data, "images", {"id": _ID, "file_name": str}, annotations)
    order = list(FASHIONPEDIA_TABLE)
    img_dir = src / "images" if (src / "images").is_dir() else src
    for im in images:
        anns = by_image.get(im["id"], [])
        problem = None
        if any(not isinstance(a.get("attribute_ids", []), list)
               or not all(isinstance(i, _ID) and not isinstance(i, bool) for i in a.get("attribute_ids", []))
               for a in anns):
            problem = "bad annotation: attribute_ids must be a list of ids"
        garments = sorted((a for a in anns if cats.get(a["category_id"], {}).get("supercategory")
                           in _FP_GARMENT_SUPER), key=lambda a: -_number(a.get("area")))
        parts = Counter(cat_names[a["category_id"]] for a in anns
                        if cats.get(a["category_id"], {}).get("supercategory") in _FP_PART_SUPER)
        caption = _fp_caption(garments, parts, attrs, cat_names) if garments and problem is None else None

        def mask(hw, anns=anns, im=im):
            h, w = hw
            if (im.get("height"), im.get("width")) not in ((h, w), (None, None)):
                raise Skip(f"mask size: annotations say {im.get('width')}x{im.get('height')}, "
                           f"image is {w}x{h}")
            out = np.zeros((h, w), np.uint8)
            drawn = [a for a in anns if cat_names.get(a["category_id"]) in FASHIONPEDIA_TABLE]
            drawn.sort(key=lambda a: order.index(cat_names[a["category_id"]]))
            for a in drawn:
                v = LABEL_ID[FASHIONPEDIA_TABLE[cat_names[a["category_id"]]]]
                seg = a.get("segmentation")
                if isinstance(seg, dict):
                    out[decode_coco_rle(seg["counts"], h, w)] = v
                elif isinstance(seg, list):
                    polys = [np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32)
                             for p in seg if len(p) >= 6]
                    if polys:
                        cv2.fillPoly(out, polys, int(v))
                elif seg is not None:
                    raise Skip(f"bad mask annotation: segmentation is a {type(seg).__name__}")
            return out

        yield Candidate(str(im["id"]), img_dir / im["file_name"], None if caption is None else [caption],
                        mask, source="fashionpedia", problem=problem)


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


FORMATS: dict[str, Callable[..., Iterator[Candidate]]] = {
    "folder": folder_candidates,
    "vitonhd": vitonhd_candidates,
    "dresscode": dresscode_candidates,
    "fashionpedia": fashionpedia_candidates,
    "deepfashion-mm": deepfashion_mm_candidates,
}


def _split_for(key: str, val_fraction: float, test_fraction: float) -> str:
    u = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


def _safe_id(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def import_dataset(fmt: str, src: str | os.PathLike, out: str | os.PathLike, strict: bool = False,
                   overwrite: bool = False, max_side: int | None = None, val_fraction: float = 0.05,
                   test_fraction: float = 0.05, tokenizer_vocab: int | None = 2048,
                   annotations: str | os.PathLike | None = None,
                   progress: Callable[[int], None] | None = None) -> ImportResult:
    """Import `src` (layout `fmt`) into a new dataset at `out`. See the module docstring."""
    if fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    src = Path(src)
    if not src.is_dir():
        raise ImportFailed(f"source folder not found: {src}")
    kwargs = {"annotations": Path(annotations)} if annotations and fmt == "fashionpedia" else {}
    skipped: list[dict] = []
    captions_seen: list[str] = []
    seen_ids: set[str] = set()
    with DatasetWriter(out, overwrite=overwrite) as w:
        for cand in FORMATS[fmt](src, **kwargs):
            sid = _safe_id(cand.id)
            try:
                if sid in seen_ids:
                    raise Skip(f"duplicate id: {sid}")
                rec = _import_one(cand, sid, w, max_side, val_fraction, test_fraction, src)
            except (Skip, BadFile) as e:
                reason = str(e) if isinstance(e, Skip) else f"unreadable file: {e}"
                skipped.append({"id": cand.id, "image": str(cand.image), "reason": reason})
                if strict:
                    raise ImportFailed(f"{cand.id}: {reason} (--strict)") from None
                continue
            finally:
                if progress:
                    progress(1)
            seen_ids.add(sid)
            w.add(rec)
            if rec["split"] == "train":
                captions_seen.extend(rec["captions"])
        imported = sum(w.counts.values())
        if imported == 0:
            raise ImportFailed(f"nothing imported from {src}: "
                               + ("; ".join(s["reason"] for s in skipped[:3]) or "no samples found"))
        meta = dataset_meta(Path(out).name, None, fmt, imported_from=str(src))
        extra = {"import_report.json": json.dumps({"format": fmt, "src": str(src), "imported": imported,
                                                   "skipped": skipped}, indent=2) + "\n"}
        if tokenizer_vocab:
            extra["tokenizer.json"] = train_bpe(captions_seen or ["garment"],
                                                vocab_size=tokenizer_vocab).to_str()
            meta["tokenizer"] = "tokenizer.json"
        final = w.commit(meta, extra)
    return ImportResult(final, imported, skipped)


def _import_one(cand: Candidate, sid: str, w: DatasetWriter, max_side: int | None,
                val_fraction: float, test_fraction: float, src: Path) -> dict:
    if cand.problem:
        raise Skip(cand.problem)
    for f in (cand.image, *cand.files, *((cand.sketch,) if cand.sketch is not None else ())):
        problem = source_problem(src, f)
        if problem:
            raise Skip(problem)
    captions = clean_captions(cand.captions)
    img = read_image_strict(cand.image)
    try:
        mask = cand.mask(img.shape[:2]) if cand.mask is not None else None
    except (Skip, BadFile):
        raise
    except Exception as e:  # noqa: BLE001 - a malformed annotation skips its sample, not the import
        raise Skip(f"bad mask annotation: {type(e).__name__}: {e}") from None
    if mask is not None and mask.max(initial=0) >= NUM_LABELS:
        raise Skip("label out of range")
    shard = hashlib.sha1(sid.encode()).hexdigest()[:2]
    resize = max_side is not None and max(img.shape[:2]) > max_side
    if resize:
        s = max_side / max(img.shape[:2])
        size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        img_rel = f"images/{shard}/{sid}.jpg"
        write_bytes(w.path(img_rel), buf.tobytes())
    else:
        img_rel = f"images/{shard}/{sid}{cand.image.suffix.lower()}"
        shutil.copyfile(cand.image, w.path(img_rel))
    mask_rel = None
    if mask is not None:
        mask_rel = f"masks/{shard}/{sid}.png"
        write_bytes(w.path(mask_rel), encode_mask_png(mask))
    rec = {"id": sid, "split": _split_for(sid, val_fraction, test_fraction), "image": img_rel,
           "captions": captions, "mask": mask_rel, "attributes": cand.attributes, "source": cand.source}
    if cand.sketch is not None and not resize:
        try:
            read_label_map(cand.sketch)
            rec["sketch"] = f"sketches/{shard}/{sid}.png"
            shutil.copyfile(cand.sketch, w.path(rec["sketch"]))
        except BadFile:
            pass  # sketches are optional and derived on the fly when absent
    return rec
