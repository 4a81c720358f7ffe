"""Stage 1 as training tasks: the cross-modal VQGAN (eq. 9-11) and the sketch tokenizer."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from ..config import TrainConfig, stage_configs, to_dict
from ..data.dataset import GarmentDataset, dataset_tokenizer
from ..data.tokenizer import CaptionTokenizer
from ..errors import UserError
from ..formats.bundle import unwrap
from ..formats.dataset import read_meta
from ..formats.pipeline import load_model
from ..losses.vq import (
    FeaturePerceptual,
    VQGANLossConfig,
    adaptive_weight,
    balanced_l1,
    colour_loss,
    hinge_d_loss,
    load_vgg16,
    semantic_term,
)
from ..models.fusion import fusion_inputs, predicted_or_true_masks
from ..models.vqgan import PatchDiscriminator, VQGANConfig, VQModel
from .loop import Task
from .probes import grad_share, probe_due


class VQGANWithDisc(nn.Module):
    """What the optimizer trains: the VQGAN and its discriminator, in one forward so that
    DDP sees every parameter once per step. Only `vq` goes into the model bundle."""

    def __init__(self, cfg: VQGANConfig, loss: VQGANLossConfig):
        super().__init__()
        self.cfg = cfg
        self.vq = VQModel(cfg)
        self.disc = (PatchDiscriminator(cfg.in_channels, loss.disc_width, loss.disc_layers)
                     if loss.disc_weight > 0 else None)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None, fuse: torch.Tensor | None = None):
        recon, idx, terms = self.vq(x, text, fuse)
        out = {"recon": recon, "idx": idx, **terms}
        if self.disc is not None:
            out["real"] = self.disc(x)
            out["fake_d"] = self.disc(recon.detach())
            # The generator's adversarial term must not move the discriminator: it sees
            # detached copies of the discriminator's parameters.
            frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
            out["fake_g"] = functional_call(self.disc, frozen, (recon,))
        return out


@dataclass
class Frozen:
    """The frozen networks a stage uses: MaskCLIP (fusion, semantic loss), the segmenter
    (masks for the semantic loss and for unannotated samples), the perceptual network, and
    for stage 2 the stage-1 model whose decoder turns token logits into pixels."""

    maskclip: nn.Module | None = None
    segmenter: nn.Module | None = None
    perceptual: FeaturePerceptual | None = None
    vq: nn.Module | None = None
    device: torch.device | None = None

    def to(self, device) -> Frozen:
        if self.device != device:
            for m in (self.maskclip, self.segmenter, self.perceptual, self.vq):
                if m is not None:
                    m.to(device)
            self.device = device
        return self


@dataclass
class VQGANTask(Task):
    data: Path = Path()
    train_cfg: TrainConfig = field(default_factory=TrainConfig)
    loss_cfg: VQGANLossConfig = field(default_factory=VQGANLossConfig)
    tokenizer: CaptionTokenizer | None = None
    max_text_len: int = 64
    sketch: bool = False            # the sketch tokenizer: edge maps in, no fusion, no semantic loss
    frozen: Frozen = field(default_factory=Frozen)
    _fixed: dict | None = None  # the samples whose reconstructions are saved at each checkpoint

    def build_model(self) -> nn.Module:
        return VQGANWithDisc(self.model_config, self.loss_cfg)

    def train_dataset(self):
        return GarmentDataset(self.data, "train", image_size=self.model_config.image_size, tokenizer=self.tokenizer,
                              max_text_len=self.max_text_len, seed=self.train_cfg.seed,
                              require_mask=self.frozen.segmenter is None and self.frozen.maskclip is not None)

    def on_checkpoint(self, model, step, run):
        """Reconstructions of a fixed set of samples: run/samples/step-XXXXXXXX.png
        (originals above their reconstructions)."""
        from ..formats.images import encode_png_rgb, write_bytes
        from ..report.sheet import pair_grid
        vq = model.vq.eval()
        dev = next(vq.parameters()).device
        if self._fixed is None:
            split = "val" if "val" in (read_meta(self.data).get("splits") or {}) else "train"
            ds = GarmentDataset(self.data, split, image_size=self.model_config.image_size, tokenizer=self.tokenizer,
                                max_text_len=self.max_text_len, augment=False, caption="first")
            items = [ds[i] for i in range(min(8, len(ds)))]
            self._fixed = {k: torch.stack([it[k] for it in items]) for k in items[0] if torch.is_tensor(items[0][k])}
        batch = {k: v.to(dev) for k, v in self._fixed.items()}
        fz = self.frozen.to(dev)
        text = fuse = None
        with torch.no_grad():
            x = self.inputs(batch)
            if fz.maskclip is not None and vq.fuses:
                mask = predicted_or_true_masks(batch, fz.segmenter)
                text, fuse, _, _ = fusion_inputs(fz.maskclip, mask, batch["text"], batch["text_len"])
            recon = vq(x, text, fuse)[0].clamp(-1, 1)
        (run / "samples").mkdir(exist_ok=True)
        write_bytes(run / "samples" / f"step-{step:08d}.png",
                    encode_png_rgb(pair_grid((x.float().cpu() + 1) / 2, (recon.float().cpu() + 1) / 2)))

    def inputs(self, batch: dict) -> torch.Tensor:
        return batch["sketch"] * 2 - 1 if self.sketch else batch["image"]

    def compute_loss(self, model, batch):
        lc, fz = self.loss_cfg, self.frozen.to(batch["image"].device)
        x = self.inputs(batch)
        text = fuse = t = tv = None
        if fz.maskclip is not None:
            mask = predicted_or_true_masks(batch, fz.segmenter)
            text, fuse, t, tv = fusion_inputs(fz.maskclip, mask, batch["text"], batch["text_len"])
            if self.model_config.fusion == "none":
                text = fuse = None
        out = model(x, text, fuse)
        recon = out["recon"].float()
        l1 = balanced_l1(x.float(), recon) if lc.balance_edges else (x.float() - recon).abs().mean()
        rec = lc.l1_weight * l1
        terms = {"l1": l1.detach()}
        if (fz.perceptual is not None and lc.perceptual_weight > 0 and lc.perceptual_every > 0
                and self.step % lc.perceptual_every == 0):
            p = fz.perceptual(recon, x.float())
            rec = rec + lc.perceptual_weight * p
            terms["perceptual"] = p.detach()
        if lc.colour_weight > 0 and not self.sketch:
            c = colour_loss(x, recon, lc.colour_pool)
            rec = rec + lc.colour_weight * c
            terms["colour"] = c.detach()
        vq = rec + out["codebook"] + out["commit"]
        zero = recon.sum() * 0
        d_loss = zero
        if "real" in out:
            gan_on = self.step >= lc.disc_start
            d_loss = hinge_d_loss(out["real"].float(), out["fake_d"].float()) * float(gan_on)
            if gan_on:
                g = -out["fake_g"].float().mean()
                w = lc.disc_weight * adaptive_weight(rec, g, unwrap(model).vq.last_layer())
                vq = vq + w * g
                terms.update(g_loss=g.detach(), adaptive_weight=w)
            terms["d_loss"] = d_loss.detach()
        sem = zero
        every = lc.semantic_every
        if (fz.maskclip is not None and fz.segmenter is not None and lc.lambda2 > 0 and every
                and self.step % every == 0):
            sem = semantic_term(lc.semantic, recon, fz.segmenter, fz.maskclip, t, tv)
            terms["semantic"] = sem.detach()
            if probe_due(self.step, lc.probe_every, every):
                p = grad_share(lc.lambda2 * sem, lc.lambda1 * vq, unwrap(model).vq.parameters())
                terms.update(semantic_grad_share=p["share"], semantic_grad_cos=p["cos"])
        loss = lc.lambda1 * vq + lc.lambda2 * sem + d_loss
        return {"loss": loss, **terms, "codebook": out["codebook"].detach(), "commit": out["commit"].detach(),
                "usage": out["usage"], "perplexity": out["perplexity"]}


def vqgan_task(data: str | os.PathLike, config=None, *, maskclip: str | os.PathLike | None = None,
               segmenter: str | os.PathLike | None = None, **train_overrides) -> tuple[VQGANTask, TrainConfig]:
    """The stage-1 task. `maskclip` is required unless fusion is `none` and the semantic
    loss is off; `segmenter` is required for the semantic loss and for unannotated samples.
    The plain VQGAN baseline is the config's `model.fusion: "none"`."""
    model_cfg, loss_cfg, train_cfg = stage_configs("vqgan", config, VQGANConfig, VQGANLossConfig, train_overrides)
    if loss_cfg.perceptual == "segmenter" and segmenter is None:
        raise UserError("the perceptual term uses the segmenter's features by default: pass --segmenter "
                         "(or set loss.perceptual to 'vgg16' with loss.vgg_weights, or to 'none')")
    needs_clip = model_cfg.fusion == "maskclip" or loss_cfg.lambda2 > 0
    if needs_clip and maskclip is None:
        raise UserError("fusion and the semantic loss need a trained MaskCLIP: pass --maskclip "
                         "(or use fusion 'none' and loss.lambda2 0 for a plain VQGAN)")
    read_meta(data)
    frozen = Frozen()
    parents: dict[str, str] = {}
    tok, max_len = None, train_cfg.max_text_len
    if maskclip is not None:
        mb = load_model(maskclip, "maskclip")
        mc = mb.model.cfg
        if mc.patch != model_cfg.factor or mc.image_size != model_cfg.image_size:
            raise UserError(f"MaskCLIP's patch grid ({mc.image_size} px / {mc.patch}) must match the VQGAN's "
                             f"latent grid ({model_cfg.image_size} px / {model_cfg.factor}) for eq. 9")
        frozen.maskclip = mb.model.requires_grad_(False).eval()
        tok = CaptionTokenizer.from_file(mb.path / mb.meta["preprocessing"].get("tokenizer", "tokenizer.json"))
        max_len = mc.max_text_len
        model_cfg = replace(model_cfg, text_dim=mc.embed_dim)
        parents["maskclip"] = str(mb.path)
    if segmenter is not None:
        sb = load_model(segmenter, "segmenter")
        frozen.segmenter = sb.model.requires_grad_(False).eval()
        parents["segmenter"] = str(sb.path)
    if loss_cfg.perceptual == "segmenter":
        frozen.perceptual = FeaturePerceptual(frozen.segmenter.features)
    elif loss_cfg.perceptual == "vgg16":
        if not loss_cfg.vgg_weights:
            raise UserError("loss.perceptual 'vgg16' needs loss.vgg_weights, a local .safetensors file")
        frozen.perceptual = FeaturePerceptual(load_vgg16(loss_cfg.vgg_weights))
    elif loss_cfg.perceptual != "none":
        raise UserError("loss.perceptual must be 'segmenter', 'vgg16' or 'none'")
    task = VQGANTask(kind="vqgan", model_config=model_cfg, data=Path(data), train_cfg=train_cfg, loss_cfg=loss_cfg,
                     tokenizer=tok, max_text_len=max_len, frozen=frozen, parents=parents,
                     preprocessing={"image_size": model_cfg.image_size, "letterbox_fill": 255, "pixel_range": [-1, 1],
                                    "input": "image", "max_text_len": max_len},
                     files={"tokenizer.json": tok.to_str()} if tok is not None else {})
    task.channels_last, task.export_prefix, task.compile_on_gpu = True, "vq.", True
    task.describe = {"loss": to_dict(loss_cfg), "perceptual_network": _perceptual_name(loss_cfg)}
    return task, train_cfg


def _perceptual_name(lc: VQGANLossConfig) -> str:
    return {"segmenter": "the segmenter's encoder (frozen)", "vgg16": f"VGG16 from {lc.vgg_weights}",
            "none": "none"}[lc.perceptual]


def sketch_task(data: str | os.PathLike, config=None, *, maskclip=None, segmenter=None,
                **train_overrides) -> tuple[VQGANTask, TrainConfig]:
    """The sketch tokenizer (section 3.4): a plain VQ autoencoder on Canny edge maps (it takes
    no trained parents)."""
    model_cfg, loss_cfg, train_cfg = stage_configs("sketch-vq", config, VQGANConfig, VQGANLossConfig,
                                                   train_overrides)
    model_cfg = replace(model_cfg, in_channels=1, fusion="none")
    loss_cfg = replace(loss_cfg, perceptual="none", lambda2=0.0)
    tok = dataset_tokenizer(data)  # captions are not used, but the dataset reads them
    task = VQGANTask(kind="vqgan", model_config=model_cfg, data=Path(data), train_cfg=train_cfg, loss_cfg=loss_cfg,
                     tokenizer=tok, sketch=True,
                     preprocessing={"image_size": model_cfg.image_size, "input": "sketch", "pixel_range": [-1, 1]})
    task.channels_last, task.export_prefix = True, "vq."
    task.describe = {"loss": to_dict(loss_cfg), "perceptual_network": "none"}
    return task, train_cfg

