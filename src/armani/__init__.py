"""armani: an open implementation of ARMANI (part-level garment-text alignment for
unified cross-modal fashion design, ACM MM 2022)."""
__version__ = "0.1.0"
