"""Networks trained elsewhere that the standard metrics need: Inception-v3 (FID, KID, IS) and
CLIP (CLIPScore). Nothing is downloaded: each takes a local path, from an argument or an
environment variable, and when it is missing the metric is reported unavailable with the
reason, while everything else still runs.

- Inception: a TorchScript archive such as `inception-2015-12-05.pt`, the one the StyleGAN
  and clean-fid tools use (`--inception PATH` or `ARMANI_INCEPTION`). It is called as
  `net(x, return_features=True)` -> (N, 2048) pool features and `net(x, no_output_bias=True)`
  -> (N, 1008) class probabilities, with x (N, 3, 299, 299) float RGB in [0, 255].
  Resize protocol: images are resized to 299 x 299 here with bicubic interpolation
  (torch `interpolate`, align_corners False, no antialias: 64 px garments are upsampled) from
  uint8 RGB, then clamped to [0, 255]; the archive's own resize is then the identity. FIDs are
  only comparable between runs with the same protocol and image size.
  TorchScript archives are read with `torch.jit.load`. A plain pickle file is refused, but a
  TorchScript archive holds code that runs when it is loaded and called: give only Inception
  files from a source you trust.
- CLIP: a folder in the Hugging Face layout (`config.json`, `model.safetensors`,
  `tokenizer.json`; e.g. a copy of `openai/clip-vit-base-patch32`), given as `--clip DIR` or
  `ARMANI_CLIP`. Loaded into `armani.models.clip.CLIP`; images are resized (bicubic) to the
  model's size and normalised with its mean and std.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

INCEPTION_ENV = "ARMANI_INCEPTION"
CLIP_ENV = "ARMANI_CLIP"
INCEPTION_SIZE = 299
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Unavailable(Exception):
    """A metric cannot be computed; the message says why (and what to pass)."""


def locate(path: str | os.PathLike | None, env: str, what: str, flag: str) -> Path:
    p = path or os.environ.get(env)
    if not p:
        raise Unavailable(f"no {what}: pass {flag} PATH or set {env} (nothing is downloaded)")
    p = Path(p).expanduser()
    if not p.exists():
        raise Unavailable(f"{what} not found at {p}")
    return p


def _batches(images: np.ndarray, size: int):
    for i in range(0, len(images), size):
        yield torch.from_numpy(np.ascontiguousarray(images[i:i + size])).permute(0, 3, 1, 2).float()


class Inception:
    """Inception-v3 features and class probabilities of uint8 RGB images (N, H, W, 3)."""

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        p = locate(path, INCEPTION_ENV, "Inception weights", "--inception")
        if not zipfile.is_zipfile(p):
            raise Unavailable(f"{p} is not a TorchScript archive (a zip); plain pickles are not loaded")
        try:
            with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; it still loads
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(p), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - any failure means the file is not usable
            raise Unavailable(f"could not load the TorchScript Inception at {p}: {e}") from None
        self.path, self.device = p, torch.device(device)

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 255] -> (N, 3, 299, 299) by the documented protocol."""
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bicubic", align_corners=False)
        return x.clamp(0, 255)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for x in _batches(images, batch):
            x = self.preprocess(x.to(self.device))
            feats.append(self.net(x, return_features=True).double().cpu().numpy())
            probs.append(self.net(x, no_output_bias=True).double().cpu().numpy())
        return np.concatenate(feats), np.concatenate(probs)


def _tower(cls, raw: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


class ClipScorer:
    """Image and text embeddings from a local CLIP in the Hugging Face layout."""

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        from ..models.clip import CLIP, CLIPConfig, TowerConfig
        p = locate(path, CLIP_ENV, "CLIP model", "--clip")
        need = [p / f for f in ("config.json", "model.safetensors", "tokenizer.json")]
        missing = [f.name for f in need if not f.is_file()]
        if missing:
            raise Unavailable(f"{p} lacks {', '.join(missing)} (a Hugging Face CLIP folder with safetensors "
                              "weights and tokenizer.json)")
        raw = json.loads(need[0].read_text())
        cfg = CLIPConfig(_tower(TowerConfig, raw.get("vision_config", {})),
                         _tower(TowerConfig, raw.get("text_config", {})), int(raw.get("projection_dim", 512)))
        model = CLIP(cfg)
        state = {k: v for k, v in load_file(str(need[1])).items() if not k.endswith("position_ids")}
        res = model.load_state_dict(state, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise Unavailable(f"{need[1]} does not fit a CLIP of {need[0]}: missing {res.missing_keys[:4]}, "
                              f"unexpected {res.unexpected_keys[:4]}")
        self.model = model.float().eval().to(device)
        self.tokenizer = Tokenizer.from_file(str(need[2]))
        pre = p / "preprocessor_config.json"
        pp = json.loads(pre.read_text()) if pre.is_file() else {}
        self.mean = torch.tensor(pp.get("image_mean", CLIP_MEAN), device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pp.get("image_std", CLIP_STD), device=device).view(1, 3, 1, 1)
        self.path, self.device = p, torch.device(device)

    @torch.no_grad()
    def images(self, images: np.ndarray, batch: int = 64) -> np.ndarray:
        s = self.model.cfg.vision.image_size
        out = []
        for x in _batches(images, batch):
            x = F.interpolate(x.to(self.device) / 255.0, size=(s, s), mode="bicubic", align_corners=False)
            out.append(self.model.encode_image((x.clamp(0, 1) - self.mean) / self.std).double().cpu().numpy())
        return np.concatenate(out)

    def tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP's byte-level BPE with its start and end tokens, cut to the context length (the
        end token kept), zero-padded; and each caption's end-token position."""
        n = self.model.cfg.text.max_position_embeddings
        ids = torch.zeros(len(texts), n, dtype=torch.long)
        eot = torch.zeros(len(texts), dtype=torch.long)
        for i, t in enumerate(texts):
            e = self.tokenizer.encode(t).ids
            if len(e) > n:
                e = e[: n - 1] + e[-1:]
            ids[i, : len(e)] = torch.tensor(e)
            eot[i] = len(e) - 1
        return ids, eot

    @torch.no_grad()
    def texts(self, texts: list[str], batch: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch):
            ids, eot = self.tokens(texts[i:i + batch])
            out.append(self.model.encode_text(ids.to(self.device), eot.to(self.device)).double().cpu().numpy())
        return np.concatenate(out)
