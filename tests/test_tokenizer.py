from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from armani.data.tokenizer import CaptionTokenizer, train_bpe

TEXTS = ["A navy shirt with a pointed collar and six white buttons",
         "a red T-shirt with a white logo", "Black trousers with two pockets and a belt"] * 20


def test_round_trip_and_padding():
    tok = CaptionTokenizer(train_bpe(TEXTS, vocab_size=400))
    for text in TEXTS[:3] + ["an unseen word: zebra-print Überjacke!"]:
        ids, n = tok.encode(text, 64)
        assert ids.shape == (64,) and ids.dtype == np.int64
        assert ids[0] == tok.bos_id and ids[n - 1] == tok.eos_id and (ids[n:] == tok.pad_id).all()
        assert tok.decode(ids) == text.lower()
    assert tok.pad_id != tok.eos_id


def test_truncation_keeps_end_token():
    tok = CaptionTokenizer(train_bpe(TEXTS, vocab_size=400))
    ids, n = tok.encode(" ".join(TEXTS[:3]) * 3, 16)
    assert n == 16 and ids[-1] == tok.eos_id and ids[0] == tok.bos_id
    assert tok.count(TEXTS[0]) > 3
    with pytest.raises(ValueError):
        tok.encode("x", 1)


def test_training_is_deterministic_and_saves(tmp_path):
    a, b = train_bpe(TEXTS, vocab_size=400), train_bpe(TEXTS, vocab_size=400)
    assert a.to_str() == b.to_str()
    tok = CaptionTokenizer(a)
    tok.save(tmp_path / "tokenizer.json")
    again = CaptionTokenizer.from_file(tmp_path / "tokenizer.json")
    assert np.array_equal(again.encode(TEXTS[0], 32)[0], tok.encode(TEXTS[0], 32)[0])
    with pytest.raises(FileNotFoundError):
        CaptionTokenizer.from_file(tmp_path / "missing.json")


def test_user_tokenizer_without_pad_token(tmp_path):
    # A CLIP-like tokenizer: start/end-of-text tokens and no pad token.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "red": 2, "shirt": 3, "[UNK]": 4}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.save(str(tmp_path / "clip.json"))
    tok = CaptionTokenizer.from_file(tmp_path / "clip.json")
    ids, n = tok.encode("red shirt", 6)
    assert ids.tolist() == [0, 2, 3, 1, 1, 1] and n == 4
    assert tok.pad_id == tok.eos_id == 1
    assert tok.decode(ids).split() == ["red", "shirt"]
