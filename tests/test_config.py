"""Config values are checked where they come in: a bad value names its key."""
import json

import pytest

from armani.cli import main
from armani.config import TrainConfig, from_dict
from armani.errors import UserError
from armani.models.transformer import TransformerConfig


@pytest.mark.parametrize("cls,values,words", [
    (TrainConfig, {"lr": "fast"}, "TrainConfig.lr must be a finite number"),
    (TrainConfig, {"lr": float("nan")}, "TrainConfig.lr must be a finite number"),
    (TrainConfig, {"max_steps": True}, "TrainConfig.max_steps must be a whole number"),
    (TrainConfig, {"max_steps": 0}, "TrainConfig.max_steps must be a whole number of at least 1"),
    (TrainConfig, {"betas": [0.9]}, "TrainConfig.betas must be a list of 2 values"),
    (TrainConfig, {"mixed_precision": "fp16"}, "TrainConfig.mixed_precision must be one of"),
    (TrainConfig, {"max_minutes": -2}, "TrainConfig.max_minutes must be 0 or more"),
    (TransformerConfig, {"width": "wide"}, "TransformerConfig.width must be a whole number"),
])
def test_a_bad_value_names_its_key(cls, values, words):
    with pytest.raises(UserError, match=words):
        from_dict(cls, values)


def test_good_values_pass_and_lists_become_tuples():
    cfg = from_dict(TrainConfig, {"lr": 1, "betas": [0.9, 0.95], "max_minutes": None, "max_steps": 5})
    assert cfg.betas == (0.9, 0.95) and cfg.lr == 1 and cfg.max_minutes is None


def test_a_bad_config_file_is_one_line(synth_ds, tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"train": {"warmup_steps": "ten"}}))
    code = main(["-q", "train", "segmenter", "--data", str(synth_ds), "--out", str(tmp_path / "r"),
                 "--config", str(f)])
    err = capsys.readouterr().err
    assert code == 2 and "TrainConfig.warmup_steps must be a whole number" in err and "Traceback" not in err
