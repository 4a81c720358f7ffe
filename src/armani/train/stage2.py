"""Stage 2 as a training task (section 3.4, eq. 12-14): the cross-modal Transformer on a
token folder made by `armani tokenize`, with condition dropout (`armani.data.tokens`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig, stage_configs, to_dict
from ..data.tokenizer import CaptionTokenizer
from ..data.tokens import ConditionDropout, TokenDataset, conditions
from ..errors import MissingInput, UserError
from ..formats.bundle import load_bundle, resolve_bundle, unwrap
from ..formats.tokens import read_token_info
from ..losses.vq import semantic_term
from ..models.transformer import CrossModalTransformer, TransformerConfig
from .loop import Task
from .probes import grad_share, probe_due
from .stage1 import Frozen


@dataclass(frozen=True)
class Stage2LossConfig(ConditionDropout):
    """Condition dropout (the fields of `ConditionDropout`) and the semantic loss (eq. 14)."""

    lambda3: float = 2.0            # eq. 14: weight of the semantic loss, the paper's value
    semantic_every: int = 0         # run the semantic loss every N steps (0: never)
    semantic_batch: int = 8         # on at most this many captioned samples of the batch
    semantic_tau: float = 1.0       # temperature of the logits -> tokens (Gumbel) or codebook mix
    semantic_input: str = "sampled"  # what eq. 14 scores: "sampled" tokens of a partly free-running
                                    # pass, or "teacher": the softmax mix of teacher-forced logits
    semantic_passes: int = 2        # "sampled": passes, each fed the previous pass's samples
    semantic: str = "similarity"    # the score: 1 - D, or "contrastive" over the semantic batch
    probe_every: int = 50           # log the semantic loss's gradient share every N steps (0: never)


def soft_decode(vq: nn.Module, logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """The teacher-forced path of eq. 14: logits (B, N, K) -> the softmax-weighted mix of
    codebook vectors -> decoded images (B, C, H, W)."""
    return decode_mix(vq, (logits.float() / tau).softmax(-1))


def decode_mix(vq: nn.Module, weights: torch.Tensor) -> torch.Tensor:
    """Weights over the codes (B, N, K), one-hot or soft -> the weighted codebook vectors
    (renormalised when the codebook is) -> decoded images (B, C, H, W). Differentiable."""
    q = vq.quantizer
    z = weights.float() @ q.codes().float()  # (B, N, D)
    if q.normalize:
        z = F.normalize(z, dim=-1)
    b, n, d = z.shape
    g = int(round(n ** 0.5))
    return vq.decode(z.transpose(1, 2).reshape(b, d, g, g))


def sampled_tokens(model: nn.Module, text: torch.Tensor, sketch: torch.Tensor, partial: torch.Tensor,
                   image: torch.Tensor, passes: int, tau: float = 1.0) -> torch.Tensor:
    """What the model generates, differentiably: straight-through Gumbel-softmax samples (B, N, K)
    (one-hot forward, softmax gradients) of a partly free-running pass. Pass 1 samples every
    token given the true tokens before it; each later pass feeds the previous pass's samples
    back in, so token i is conditioned on the model's own tokens (`passes` = N would be fully
    free-running). Gradients reach the Transformer through every pass."""
    tokens = image
    for _ in range(max(1, passes)):
        logits = model(text, sketch, partial, tokens)
        tokens = F.gumbel_softmax(logits.float(), tau=tau, hard=True)
    return tokens


@dataclass
class TransformerTask(Task):
    compile_on_gpu: bool = True
    tokens: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)
    loss_cfg: Stage2LossConfig = field(default_factory=Stage2LossConfig)
    frozen: Frozen = field(default_factory=Frozen)

    def build_model(self) -> nn.Module:
        model = CrossModalTransformer(self.model_config)
        model.check_ids = False  # no host sync per step: the token folder's ids are checked when read
        if self.model_config.text_encoder == "maskclip":
            model.clip_text.load_state_dict(self.frozen.maskclip.text_encoder.state_dict())
        return model

    def train_dataset(self):
        return TokenDataset(self.tokens, "train", self.loss_cfg, self.train_cfg.seed)

    def compute_loss(self, model, batch):
        text, sketch, partial = conditions(self.model_config, batch)
        image = batch["image"]
        logits = model(text, sketch, partial, image)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), image.flatten())
        out = {"nll": nll.detach()}
        loss = nll
        lc = self.loss_cfg
        every = lc.semantic_every
        if lc.lambda3 > 0 and every and self.step % every == 0 and self.frozen.segmenter is not None:
            rows = batch["has_text"].nonzero()[:, 0][:lc.semantic_batch]
            if len(rows) > (lc.semantic == "contrastive"):  # the contrastive score needs a negative
                fz = self.frozen.to(image.device)
                if lc.semantic_input == "teacher":
                    images = soft_decode(fz.vq, logits[rows], lc.semantic_tau)
                else:
                    # the bare module: extra forward passes must not go through a DDP wrapper
                    picked = sampled_tokens(unwrap(model), text[rows], sketch[rows], partial[rows], image[rows],
                                            lc.semantic_passes, lc.semantic_tau)
                    images = decode_mix(fz.vq, picked)
                with torch.no_grad():
                    t, tv, _ = fz.maskclip.encode_text(batch["text"][rows], batch["text_len"][rows])
                sem = semantic_term(lc.semantic, images, fz.segmenter, fz.maskclip, t, tv)
                loss = loss + lc.lambda3 * sem
                out["semantic"] = sem.detach()
                if probe_due(self.step, lc.probe_every, every):
                    p = grad_share(lc.lambda3 * sem, nll, model.parameters())
                    out.update(semantic_grad_share=p["share"], semantic_grad_cos=p["cos"])
        return {"loss": loss, **out}

    def on_checkpoint(self, model, step, run):
        """Samples of the model so far: run/samples/step-XXXXXXXX.png, the first 4 validation
        images (their tokens decoded) above samples from their captions alone (guidance 3)."""
        from ..formats.images import encode_png_rgb, write_bytes
        from ..inference.sampling import SamplingConfig, sample_tokens
        from ..report.sheet import pair_grid
        if self.frozen.vq is None:
            return
        split = "val" if "val" in read_token_info(self.tokens)["splits"] else "train"
        ds = TokenDataset(self.tokens, split, self.loss_cfg, dropout=False)
        items = [ds[i] for i in range(min(4, len(ds)))]
        dev = next(model.parameters()).device
        batch = {k: torch.stack([it[k] for it in items]).to(dev) for k in items[0]}
        batch.update(has_sketch=torch.zeros_like(batch["has_text"]), has_partial=torch.zeros_like(batch["has_text"]))
        text, sketch, partial = conditions(self.model_config, batch)
        vq = self.frozen.to(dev).vq
        g = self.model_config.image_len ** 0.5
        with torch.no_grad():
            # Four images: eager decoding (no CUDA graph captured in the middle of training).
            tokens = sample_tokens(model.eval(), text, sketch, partial, SamplingConfig(top_k=100, guidance=3.0),
                                   torch.Generator(device=dev).manual_seed(0), decode="cache")
            shape = (len(items), int(g), int(g))
            real = vq.decode_indices(batch["image"].view(shape)).clamp(-1, 1)
            fake = vq.decode_indices(tokens.view(shape)).clamp(-1, 1)
        (run / "samples").mkdir(exist_ok=True)
        write_bytes(run / "samples" / f"step-{step:08d}.png",
                    encode_png_rgb(pair_grid((real.float().cpu() + 1) / 2, (fake.float().cpu() + 1) / 2)))

    def batch_items(self, batch: dict) -> int:
        return int(batch["image"].shape[0])


def transformer_task(tokens: str | os.PathLike, config=None, *, maskclip=None, segmenter=None,
                     **train_overrides) -> tuple[TransformerTask, TrainConfig]:
    """The stage-2 task on a token folder. The semantic loss (when its config turns it on)
    loads the stage-1 bundle the tokens record and that bundle's segmenter and MaskCLIP (it
    takes no others)."""
    model_cfg, loss_cfg, train_cfg = stage_configs("transformer", config, TransformerConfig, Stage2LossConfig,
                                                   train_overrides)
    info = read_token_info(tokens)
    if "train" not in info["splits"]:
        raise UserError(f"{tokens} has no split 'train'; it has {', '.join(info['splits'])}")
    model_cfg = replace(model_cfg, text_vocab=int(info["vocab_size"]), text_len=int(info["max_text_len"]),
                        image_codes=int(info["image_codes"]), image_len=int(info["image_grid"]) ** 2,
                        sketch_codes=int(info["sketch_codes"] or 1),
                        sketch_len=int(info["sketch_grid"]) ** 2 if info.get("sketch_grid") else 0)
    parents = {"vqgan": info["vqgan"]["path"]}
    if info.get("sketch-vq"):
        parents["sketch-vq"] = info["sketch-vq"]["path"]
    for name, p in parents.items():
        try:
            resolve_bundle(p)
        except FileNotFoundError:
            raise MissingInput(f"the token folder {tokens} was made with the {name} model at {p}, which is "
                                    "gone; generation needs it (tokenize again with the model you have)") from None
    if loss_cfg.semantic_input not in ("sampled", "teacher"):
        raise UserError("loss.semantic_input must be 'sampled' or 'teacher'")
    # The stage-1 decoder: for checkpoint samples, and with the segmenter and MaskCLIP for eq. 14;
    # MaskCLIP's text encoder also for text_encoder "maskclip".
    vb = load_bundle(parents["vqgan"], "vqgan")
    frozen = Frozen(vq=vb.model.requires_grad_(False).eval())
    rec = vb.meta.get("parents", {})
    semantic = loss_cfg.lambda3 > 0 and loss_cfg.semantic_every
    for need, what, fix in ((semantic, "the semantic loss", "set loss.semantic_every to 0"),
                            (model_cfg.text_encoder == "maskclip", "text_encoder 'maskclip'",
                             "set model.text_encoder to 'learned'")):
        if need and ("segmenter" not in rec or "maskclip" not in rec):
            raise UserError(f"{what} needs the segmenter and MaskCLIP the stage-1 model was trained with, "
                             f"and it records none; {fix}")
    if semantic or model_cfg.text_encoder == "maskclip":
        frozen.maskclip = load_bundle(rec["maskclip"]["path"], "maskclip").model.requires_grad_(False).eval()
    if semantic:
        frozen.segmenter = load_bundle(rec["segmenter"]["path"], "segmenter").model.requires_grad_(False).eval()
    if model_cfg.text_encoder == "maskclip":
        mc = frozen.maskclip.cfg
        if mc.vocab_size != model_cfg.text_vocab or mc.max_text_len != model_cfg.text_len:
            raise UserError(f"MaskCLIP's vocabulary and caption length ({mc.vocab_size}, {mc.max_text_len}) differ "
                             f"from the tokens' ({model_cfg.text_vocab}, {model_cfg.text_len})")
        eos = CaptionTokenizer.from_file(Path(tokens) / info["tokenizer"]).eos_id
        model_cfg = replace(model_cfg, clip_text_width=mc.text_width, clip_text_layers=mc.text_layers,
                            clip_text_heads=mc.text_heads, clip_embed_dim=mc.embed_dim, text_eos=eos)
    tok_text = (Path(tokens) / info["tokenizer"]).read_text()
    task = TransformerTask(kind="transformer", model_config=model_cfg, tokens=Path(tokens), train_cfg=train_cfg,
                           loss_cfg=loss_cfg, frozen=frozen, parents=parents,
                           preprocessing={"image_size": int(info["image_size"]),
                                          "max_text_len": int(info["max_text_len"]),
                                          "tokenizer": "tokenizer.json", "tokens": str(tokens)},
                           files={"tokenizer.json": tok_text})
    task.describe = {"loss": to_dict(loss_cfg)}
    return task, train_cfg
