"""`armani demo`: a Gradio app over a generation pipeline.

The page takes a prompt, a sketch drawn on a canvas (or uploaded, or the edges of an uploaded
photo), a partial image whose region to keep is painted over it (or given as a mask or a box),
and the sampling settings; it shows the samples, the contact sheet and a note naming the prompt
words the model does not know. The same function is the API endpoint `/generate`:

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict(text="a red dress", n=2, seed=0, api_name="/generate")

Gradio is an optional dependency (`pip install -e '.[demo]'`); `run_generation` below needs
none and is what the tests call.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .formats.images import MAX_PIXELS
from .inference.pipeline import (
    ArmaniPipeline,
    GenerationError,
    as_rgb,
    load,
    unknown_words_message,
)
from .inference.sampling import check_seed
from .report.sheet import Row, render

MAX_SAMPLES = 16
MAX_UPLOAD = "50mb"  # largest file the page accepts (an image of MAX_PIXELS is far smaller as a JPEG or PNG)
EXAMPLES = ("a red T-shirt with a white logo", "a blue dress", "a black jacket with a zipper",
            "green trousers with two pockets", "a white shirt with black buttons")


class MissingExtra(RuntimeError):
    """An optional dependency is not installed."""


@dataclass
class Result:
    images: list[np.ndarray]   # the samples, (S, S, 3) uint8 each
    sheet: np.ndarray          # conditions beside the samples
    note: str                  # seed used, unknown words


def _rgb(img, what: str = "image") -> np.ndarray | None:
    """(H, W, 3|4) or (H, W) -> (H, W, 3) uint8, transparency over white (`pipeline.as_rgb`:
    value ranges and the pixel limit checked)."""
    return None if img is None else as_rgb(np.asarray(img), what)


def _editor(value) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """An image editor's value -> (background RGB, painted region bool, everything RGB).
    Accepts the editor's dict (background, layers, composite) or a plain image."""
    if value is None:
        return None, None, None
    if not isinstance(value, dict):
        img = _rgb(value)
        return img, None, img
    bg, layers, comp = value.get("background"), value.get("layers") or [], value.get("composite")
    painted = None
    for layer in layers:
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[2] == 4:
            hit = layer[..., 3] > 0
        else:
            hit = _rgb(layer).min(2) < 250
        painted = hit if painted is None else painted | hit
    if painted is not None and not painted.any():
        painted = None
    bg_rgb = _rgb(bg)
    if bg_rgb is not None and np.asarray(bg).ndim == 3 and np.asarray(bg).shape[2] == 4 \
            and not (np.asarray(bg)[..., 3] > 0).any():
        bg_rgb = None  # an empty canvas
    return bg_rgb, painted, _rgb(comp)


def _blank(img: np.ndarray | None) -> bool:
    return img is None or int(img.max()) - int(img.min()) < 8


def run_generation(g: ArmaniPipeline, text: str | None = None, sketch=None, partial=None, keep_mask=None,
                   n: int = 4, seed: int | None = -1, guidance: float | None = None, top_k: int | None = None,
                   temperature: float | None = None, keep_box: str | None = None,
                   sketch_is_photo: bool = False, sketch_upload=None, keep: str | None = None) -> Result:
    """The demo's generation, without Gradio. `sketch` and `partial` are image-editor values
    (a dict with background, layers, composite) or plain images; the region of `partial` to
    keep is what was painted over it, else `keep_mask` (white = keep), else `keep_box`
    ("x0,y0,x1,y1"). An untouched canvas is no sketch; then `sketch_upload` (an image) is the
    sketch, or with `sketch_is_photo` the photo whose edges are. A seed of -1 or None draws
    one. `keep`: "exact" (the model's default) keeps the kept cells' own tokens, "soft" only
    conditions on them. Raises GenerationError on bad input."""
    n = _integer(1 if n is None else n, "samples")
    if not 1 <= n <= MAX_SAMPLES:
        raise GenerationError(f"samples must be between 1 and {MAX_SAMPLES}, got {n}")
    seed = None if seed is None else _integer(seed, "seed")
    top_k = None if top_k is None else _integer(top_k, "top-k")
    text = (text or "").strip() or None
    _, _, drawn = _editor(sketch)
    drawn = None if _blank(drawn) else drawn
    if drawn is None and sketch_upload is not None:
        drawn = _rgb(sketch_upload)
    photo, painted, _ = _editor(partial)
    mask = _rgb(keep_mask) if keep_mask is not None else None
    box = None
    if keep_box and str(keep_box).strip():
        box = [v.strip() for v in str(keep_box).split(",")]
    if photo is None and (painted is not None or mask is not None or box is not None):
        raise GenerationError("a keep region needs a partial image: upload a photo first")
    if photo is not None:
        if painted is not None and painted.shape == photo.shape[:2]:
            mask, box = (painted * 255).astype(np.uint8), None
        elif mask is None and box is None:
            raise GenerationError("paint over the part of the partial image to keep (or give a keep mask or box)")
        elif mask is not None:
            box = None
    cond = g.prepare(text, sketch=None if sketch_is_photo else drawn, sketch_from=drawn if sketch_is_photo else None,
                     partial=photo, keep_box=box, keep_mask=mask)
    if seed is None or seed < 0:
        seed = int.from_bytes(os.urandom(3), "little")
    cfg = g.sampling_config(temperature, top_k, None, guidance, keep or None)
    try:
        cfg.check()
    except UserError as e:
        raise GenerationError(str(e)) from None
    images = np.concatenate([b for b, _ in g.batches(cond, n, check_seed(seed), cfg)])
    sheet = render([Row("", cond.text, cond.sketch, cond.partial, images)])
    used = [name for name, on in (("prompt", cond.text), ("sketch", cond.sketch is not None),
                                  ("partial image", cond.partial is not None)) if on]
    notes = [f"from: {' + '.join(used)}; seed {int(seed)}; temperature {cfg.temperature:g}, top-k {cfg.top_k or 'off'}, "
             f"guidance {cfg.guidance:g}"]
    unknown = g.tokenizer.unknown_words(text) if text else []
    if unknown:
        notes.append(unknown_words_message(unknown))
    return Result(list(images), sheet, "\n\n".join(notes))


def _integer(v, what: str) -> int:
    """A whole number from the page or an API client (a float like 4.0 is fine)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(v, bool) or not math.isfinite(f) or f != int(f):
        raise GenerationError(f"{what} must be a whole number, got {v!r}")
    return int(v) if isinstance(v, int) else int(f)


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise MissingExtra("the demo needs gradio: pip install -e '.[demo]'") from None
    return gr


def build_demo(model: str | os.PathLike | ArmaniPipeline | None = None, device: str | None = None):
    """The Gradio Blocks app (not launched)."""
    gr = _gradio()
    from PIL import Image
    # Gradio decodes uploads with Pillow before any armani code sees them: hold that decode to
    # the pixel limit of every armani reader (Pillow refuses above twice its MAX_IMAGE_PIXELS).
    Image.MAX_IMAGE_PIXELS = min(Image.MAX_IMAGE_PIXELS or MAX_PIXELS, MAX_PIXELS // 2)
    g = model if isinstance(model, ArmaniPipeline) else load(model, device)
    s = g.sampling
    brush = gr.Brush(default_size=8, colors=["#000000"], color_mode="fixed")

    # Defaults of None make these parameters optional for API clients (gradio reads the signature).
    def generate(text, sketch=None, partial=None, keep_mask=None, n=4, seed=-1, guidance=None, top_k=None,
                 temperature=None, keep_box=None, sketch_upload=None, sketch_is_photo=False, keep=None):
        try:
            r = run_generation(g, text, sketch, partial, keep_mask, n, seed, guidance, top_k, temperature,
                               keep_box, bool(sketch_is_photo), sketch_upload, keep)
        except UserError as e:
            raise gr.Error(str(e)) from None
        return r.images, r.sheet, r.note

    with gr.Blocks(title="armani") as demo:
        gr.Markdown(f"# armani\nGarments from a prompt, a sketch and/or part of a photo. Model: "
                    f"`{g.path.name if g.path else 'in memory'}` ({g.image_size} px).")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="prompt", placeholder=EXAMPLES[0], lines=2)
                gr.Examples([[e] for e in EXAMPLES], inputs=[text])
                with gr.Tab("sketch"):
                    sketch = gr.Sketchpad(label="sketch: draw the outline", type="numpy", image_mode="RGBA",
                                          canvas_size=(256, 256), brush=brush, elem_id="sketch")
                    sketch_upload = gr.Image(label="or upload a drawing (or a photo)", type="numpy")
                    sketch_is_photo = gr.Checkbox(label="the upload is a photo: use its edges", value=False)
                with gr.Tab("partial image"):
                    partial = gr.ImageEditor(label="partial: upload a photo, paint the part to keep",
                                             type="numpy", image_mode="RGBA", brush=brush,
                                             sources=["upload", "clipboard"], elem_id="partial")
                    keep_mask = gr.Image(label="or a keep mask (white = keep)", type="numpy")
                    keep_box = gr.Textbox(label="or a keep box x0,y0,x1,y1 (pixels of the photo)")
                    keep = gr.Radio(["exact", "soft"], value=s.keep, label="kept part: exact (its own tokens) or soft "
                                    "(a condition only)")
                with gr.Row():
                    n = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="samples")
                    seed = gr.Number(value=-1, precision=0, label="seed (-1: random)")
                with gr.Row():
                    guidance = gr.Slider(1, 10, value=s.guidance, step=0.5, label="guidance")
                    top_k = gr.Slider(0, 512, value=s.top_k or 0, step=1, label="top-k (0: off)")
                    temperature = gr.Slider(0, 2, value=s.temperature, step=0.05, label="temperature")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                gallery = gr.Gallery(label="samples", columns=4, elem_id="gallery")
                sheet = gr.Image(label="contact sheet", type="numpy")
                note = gr.Markdown(elem_id="note")
        button.click(generate, inputs=[text, sketch, partial, keep_mask, n, seed, guidance, top_k, temperature,
                                       keep_box, sketch_upload, sketch_is_photo, keep],
                     outputs=[gallery, sheet, note], api_name="generate")
    return demo


def launch(model=None, host: str = "127.0.0.1", port: int = 7860, share: bool = False, device: str | None = None,
           block: bool = True):
    demo = build_demo(model, device)
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                max_file_size=MAX_UPLOAD)
    return demo
