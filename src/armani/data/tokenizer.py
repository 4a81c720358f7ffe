"""Caption tokenizer: byte-level BPE trained on a dataset's captions with Hugging Face
`tokenizers`, saved as `tokenizer.json`; or any `tokenizer.json` a user supplies (CLIP's,
for instance), loaded from a path. Fully offline."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from ..errors import MissingInput, UserError

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
_ALIASES = {
    "pad": (PAD, "<pad>", "<|pad|>"),
    "bos": (BOS, "<|startoftext|>", "<s>", "[CLS]", "<|bos|>"),
    "eos": (EOS, "<|endoftext|>", "</s>", "[SEP]", "<|eos|>"),
}


def train_bpe(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Tokenizer:
    """Train a lower-casing byte-level BPE tokenizer (no unknown tokens, exact round trip)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[PAD, BOS, EOS, UNK],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


class CaptionTokenizer:
    """Encodes captions to fixed-length id arrays: [BOS] tokens [EOS] then padding."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok = tokenizer
        vocab = tokenizer.get_vocab()
        ids = {}
        for role, names in _ALIASES.items():
            ids[role] = next((vocab[n] for n in names if n in vocab), None)
        if ids["eos"] is None:
            raise UserError("tokenizer has no end-of-text token (looked for "
                             f"{', '.join(_ALIASES['eos'])})")
        self.bos_id = ids["bos"]
        self.eos_id = ids["eos"]
        # Tokenizers without a pad token (CLIP's) pad with end-of-text; the attention
        # mask, not the id, says what is padding.
        self.pad_id = ids["pad"] if ids["pad"] is not None else ids["eos"]
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CaptionTokenizer:
        path = Path(path)
        if not path.is_file():
            raise MissingInput(f"tokenizer file not found: {path}")
        try:
            tok = Tokenizer.from_file(os.fspath(path))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception
            raise UserError(f"{path}: not a readable tokenizer.json ({e})") from None
        return cls(tok)

    @classmethod
    def of_bundle(cls, bundle_dir: str | os.PathLike) -> CaptionTokenizer:
        """The tokenizer of a MaskCLIP bundle: its own `tokenizer.json`, or, for a component of
        an exported pipeline folder, the pipeline's one (`model/maskclip` -> `model/tokenizer.json`)."""
        from ..formats.pipeline import TOKENIZER_FILE, pipeline_dir
        d = Path(bundle_dir)
        if not (d / "tokenizer.json").is_file() and pipeline_dir(d.parent) == d.parent:
            return cls.from_file(d.parent / TOKENIZER_FILE)
        return cls.from_file(d / "tokenizer.json")

    def save(self, path: str | os.PathLike) -> None:
        self.tok.save(os.fspath(path))

    def to_str(self) -> str:
        return self.tok.to_str()

    def encode(self, text: str, max_len: int) -> tuple[np.ndarray, int]:
        """-> (ids int64 of shape (max_len,), number of real tokens). Truncates, keeping EOS."""
        body = self.tok.encode(text, add_special_tokens=False).ids
        head = [self.bos_id] if self.bos_id is not None else []
        room = max_len - len(head) - 1
        if room < 1:
            raise UserError(f"max_len {max_len} leaves no room for text")
        ids = head + body[:room] + [self.eos_id]
        out = np.full(max_len, self.pad_id, dtype=np.int64)
        out[: len(ids)] = ids
        return out, len(ids)

    def count(self, text: str) -> int:
        """Tokens `encode` would need without truncation, specials included."""
        return len(self.tok.encode(text, add_special_tokens=False).ids) + 1 + (self.bos_id is not None)

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` this tokenizer has no single token for, in order, each once: the
        words the model never saw often enough in its captions to learn (they are spelt out in
        pieces, and the model reads them as noise). Punctuation and numbers are ignored."""
        norm = self.tok.normalizer.normalize_str(text) if self.tok.normalizer else text
        if self.tok.pre_tokenizer is not None:
            pieces = self.tok.pre_tokenizer.pre_tokenize_str(norm)
        else:
            pieces, pos = [], 0
            for w in norm.split():
                a = norm.index(w, pos)
                pieces.append((w, (a, a + len(w))))
                pos = a + len(w)
        out: list[str] = []
        for piece, (a, b) in pieces:
            word = norm[a:b].strip()
            if not any(ch.isalpha() for ch in word) or word in out:
                continue
            if len(self.tok.model.tokenize(piece)) != 1:
                out.append(word)
        return out

    def decode(self, ids) -> str:
        out = []
        for i in map(int, ids):
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                out.append(i)
        return self.tok.decode(out, skip_special_tokens=True)
