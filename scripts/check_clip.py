"""Check armani's CLIP (models/clip.py) against the `transformers` implementation.

Not part of the package or the tests (the project does not depend on `transformers`):
install it apart, e.g. `pip install --target /tmp/tf transformers huggingface_hub regex pyyaml
requests packaging --no-deps`, then `EXTRA_PATH=/tmp/tf python scripts/check_clip.py`.
Builds a tiny random `CLIPModel`, saves it in the Hugging Face layout, loads the weights
into armani's CLIP and prints the largest difference of the image and text embeddings.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import fields

sys.path[:0] = [p for p in os.environ.get("EXTRA_PATH", "").split(":") if p]

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

from armani.models.clip import CLIP, TowerConfig  # noqa: E402
from armani.models.clip import CLIPConfig as ArmaniCLIPConfig  # noqa: E402


def main() -> None:
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    cfg = CLIPConfig(text_config=dict(tower, vocab_size=100, max_position_embeddings=16, eos_token_id=99),
                     vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    ref = CLIPModel(cfg).eval()
    folder = tempfile.mkdtemp()
    ref.save_pretrained(folder, safe_serialization=True)
    raw = json.load(open(os.path.join(folder, "config.json")))
    names = {f.name for f in fields(TowerConfig)}
    pick = lambda r: TowerConfig(**{k: v for k, v in r.items() if k in names})  # noqa: E731
    ours = CLIP(ArmaniCLIPConfig(pick(raw["vision_config"]), pick(raw["text_config"]), raw["projection_dim"]))
    state = {k: v for k, v in load_file(os.path.join(folder, "model.safetensors")).items()
             if not k.endswith("position_ids")}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(3, 3, 32, 32)
    ids = torch.tensor([[98, 5, 6, 7, 99, 0, 0, 0], [98, 9, 99, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        a, b = ref.get_image_features(pixel_values=x), ours.encode_image(x)
        t = ref.get_text_features(input_ids=ids, attention_mask=(ids > 0) | (torch.arange(8) < 1))
        u = ours.encode_text(ids, torch.tensor([4, 2]))
    a = getattr(a, "pooler_output", a)
    t = getattr(t, "pooler_output", t)
    print(json.dumps({"image_max_abs_diff": float((a - b).abs().max()),
                      "text_max_abs_diff": float((t - u).abs().max())}))


if __name__ == "__main__":
    main()
