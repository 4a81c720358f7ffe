"""The web demo: its generation function without Gradio, the `/generate` endpoint through
gradio_client, and the page in a real (headless) browser."""
import os
import shutil
import socket

import numpy as np
import pytest

import armani
from armani.demo import run_generation
from armani.inference.pipeline import GenerationError


@pytest.fixture(scope="module")
def shipped():
    return armani.load()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _canvas(size=256, stroke=True) -> dict:
    """An image editor's value: a transparent canvas with one black stroke painted on it."""
    layer = np.zeros((size, size, 4), np.uint8)
    if stroke:
        layer[60:200, 120:130] = (0, 0, 0, 255)
        layer[60:70, 60:200] = (0, 0, 0, 255)
    return {"background": np.zeros((size, size, 4), np.uint8), "layers": [layer], "composite": layer}


def test_text_sketch_and_partial(shipped):
    r = run_generation(shipped, "a red dress", n=2, seed=3)
    assert len(r.images) == 2 and r.images[0].shape == (64, 64, 3) and "from: prompt; seed 3" in r.note
    again = run_generation(shipped, "a red dress", n=2, seed=3)
    assert np.array_equal(r.images[0], again.images[0])
    drawn = run_generation(shipped, "a dress", sketch=_canvas(), n=1, seed=0)
    plain = run_generation(shipped, "a dress", n=1, seed=0)
    assert not np.array_equal(drawn.images[0], plain.images[0])  # the stroke reached the model
    assert "from: prompt + sketch;" in drawn.note
    assert drawn.sheet.shape[1] > plain.images[0].shape[1]
    # An untouched canvas is no sketch.
    empty = run_generation(shipped, "a dress", sketch=_canvas(stroke=False), n=1, seed=0)
    assert np.array_equal(empty.images[0], plain.images[0])
    photo = np.full((64, 64, 3), 255, np.uint8)
    photo[10:60, 16:48] = (200, 30, 30)
    keep = np.zeros((64, 64, 4), np.uint8)
    keep[16:40, :, 3] = 255
    part = run_generation(shipped, None, partial={"background": photo, "layers": [keep], "composite": photo},
                          n=1, seed=0)
    assert part.images[0].shape == (64, 64, 3)
    boxed = run_generation(shipped, None, partial=photo, keep_box="0,16,64,40", n=1, seed=0)
    assert np.array_equal(boxed.images[0], part.images[0])  # painting the band = giving its box


def test_bad_input_is_one_message(shipped):
    with pytest.raises(GenerationError, match="paint over the part"):
        run_generation(shipped, "a dress", partial=np.full((64, 64, 3), 255, np.uint8))
    with pytest.raises(GenerationError, match="nothing to generate"):
        run_generation(shipped, "  ")
    with pytest.raises(GenerationError, match="samples must be"):
        run_generation(shipped, "a dress", n=500)


def test_unknown_words_are_named(shipped):
    r = run_generation(shipped, "an emerald velvet kimono with sequins", n=1, seed=0)
    assert "does not know" in r.note and "emerald" in r.note and "kimono" in r.note and "with" not in r.note
    assert "does not know" not in run_generation(shipped, "a red T-shirt with a white logo", n=1, seed=0).note


def test_api_warns_of_unknown_words(shipped):
    from armani.inference.pipeline import UnknownWordsWarning
    with pytest.warns(UnknownWordsWarning, match="emerald, velvet"):
        armani.generate(shipped, text="an emerald velvet dress", n=1, seed=0)


def test_missing_gradio_is_one_line(monkeypatch, capsys):
    import builtins

    from armani.cli import main
    real = builtins.__import__

    def no_gradio(name, *a, **k):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("no gradio")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert main(["demo"]) == 2
    assert "pip install -e '.[demo]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(shipped):
    pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")
    from armani.demo import build_demo
    port = _free_port()
    demo = build_demo(shipped)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.mark.slow
def test_generate_endpoint(served):
    from gradio_client import Client
    gallery, sheet, note = Client(served, verbose=False).predict(text="a red dress", n=2, seed=0,
                                                                 api_name="/generate")
    assert len(gallery) == 2 and os.path.isfile(gallery[0]["image"]) and os.path.isfile(sheet)
    assert "from: prompt; seed 0" in note


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_in_a_real_browser(served, tmp_path):
    """Headless Chromium: type a prompt, draw a stroke on the sketch canvas, click Generate,
    find the samples in the gallery; the screenshot is kept in the test's tmp folder."""
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(served)
        page.get_by_label("prompt").fill("a blue dress")
        canvas = page.locator("#sketch canvas").first
        canvas.wait_for()
        page.locator("#sketch button[aria-label='Brush']").click()
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=12)
        page.mouse.up()
        page.locator("#generate").click()
        page.locator("#gallery img").first.wait_for(timeout=60_000)
        shots = os.environ.get("ARMANI_SCREENSHOT") or str(tmp_path / "demo.png")
        page.screenshot(path=shots, full_page=True)
        n = page.locator("#gallery img").count()
        note = page.locator("#note").inner_text()
        browser.close()
    assert n == 4 and "from: prompt + sketch;" in note  # the stroke drawn reached the model
