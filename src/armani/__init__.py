"""armani: an open implementation of ARMANI (part-level garment-text alignment for
unified cross-modal fashion design, ACM MM 2022).

    import armani
    pipe = armani.ArmaniPipeline.from_pretrained()   # the shipped SynthFashion model, or a path
    out = pipe(text="a red T-shirt with a white logo", n=4, seed=0)
    out.images                                       # (4, H, W, 3) uint8; out.seed, out.unknown_words
    images = armani.generate(pipe, text="a blue dress", n=4, seed=0)   # the images alone

`armani.load` is `ArmaniPipeline.from_pretrained`; both import PyTorch when first called.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(path=None, device="auto"):
    """A generation pipeline (`ArmaniPipeline`) from a pipeline folder, a quickstart folder, a
    stage-2 run or bundle, or None for the shipped model, on `device` ("auto": CUDA when there
    is a GPU)."""
    from .inference.pipeline import load as _load
    return _load(path, device)


def generate(model=None, text=None, sketch=None, sketch_from=None, partial=None, keep_box=None, keep_mask=None,
             n=1, seed=None, temperature=None, top_k=None, top_p=None, guidance=None, keep=None):
    """(n, H, W, 3) uint8 garments from any mix of a caption, a sketch (or `sketch_from`, a
    photo whose edges are used) and a partial image with its `keep_box` or `keep_mask` (see
    `armani.inference.pipeline.generate`). `model`: an `ArmaniPipeline`, or anything `load`
    takes."""
    from .inference.pipeline import generate as _generate
    return _generate(model, text, sketch, sketch_from, partial, keep_box, keep_mask, n, seed, temperature, top_k,
                     top_p, guidance, keep)


def __getattr__(name):
    # `armani.ArmaniPipeline` and `armani.GenerationOutput` without importing PyTorch at `import armani`.
    if name in ("ArmaniPipeline", "GenerationOutput"):
        from .inference import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'armani' has no attribute {name!r}")
