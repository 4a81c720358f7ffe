"""armani: an open implementation of ARMANI (part-level garment-text alignment for
unified cross-modal fashion design, ACM MM 2022).

    import armani
    model = armani.load()            # the shipped SynthFashion model, or a path
    images = armani.generate(model, text="a red T-shirt with a white logo", n=4, seed=0)
"""
__version__ = "0.1.0"


def load(path=None, device="auto"):
    """A generation pipeline on `device` ("auto": CUDA when there is a GPU; see
    `armani.inference.pipeline.load`)."""
    from .inference.pipeline import load as _load
    return _load(path, device)


def generate(model=None, **kwargs):
    """(n, H, W, 3) uint8 garments from text, sketch and/or partial image (see
    `armani.inference.pipeline.generate`)."""
    from .inference.pipeline import generate as _generate
    return _generate(model, **kwargs)
