from __future__ import annotations

from pathlib import Path

import pytest

from armani.data.make_synth import write_synth

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def synth_ds(tmp_path_factory) -> Path:
    """A small SynthFashion set shared by the read-only tests."""
    return write_synth(tmp_path_factory.mktemp("synth") / "ds", n=240, size=48, seed=3, workers=1,
                       tokenizer_vocab=512)


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES
