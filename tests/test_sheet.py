"""Contact sheets: labels keep their spaces."""
import numpy as np
from PIL import Image, ImageDraw

from armani.report.sheet import Row, label_font, render


def _widest_gap(text: str, font) -> int:
    """The widest run of blank pixel columns inside the ink of `text`."""
    im = Image.new("L", (200, 24), 255)
    ImageDraw.Draw(im).text((2, 2), text, fill=0, font=font)
    ink = (np.asarray(im) < 128).any(0)
    xs = np.nonzero(ink)[0]
    best = run = 0
    for c in ink[xs[0]:xs[-1] + 1]:
        run = 0 if c else run + 1
        best = max(best, run)
    return best


def test_sheet_labels_keep_their_spaces():
    font = label_font()
    # A space is wider than any gap between the letters of a word.
    assert _widest_gap("no sketch", font) > _widest_gap("nosketch", font) + 1
    sheet = render([Row("text", "a red dress", None, None, np.zeros((2, 16, 16, 3), np.uint8))])
    assert sheet.shape == (20 + 128, 240 + 4 * 128, 3)
