"""Colour-space constants shared by the pixel colour reader (`eval.colour`) and the
stage-1 colour loss (`losses.vq`)."""

#: Linear sRGB -> CIE XYZ, and the D65 white point.
SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
D65_WHITE = (0.95047, 1.0, 1.08883)
