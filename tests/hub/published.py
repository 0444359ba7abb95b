"""Metadata shaped as hubs and training tools publish it, written in our own code.

- `dreambooth_readme` / `lora_readme`: the README.md diffusers' training scripts save
  (`save_model_card` -> `load_or_create_model_card(from_training=True)`): YAML front matter with
  `license`, `library_name: diffusers`, `inference`, `base_model`, `instance_prompt`, optional
  `widget` entries (`text` + `output.url`), `tags`, then the Markdown description.
- `kohya_metadata`: the `__metadata__` strings sd-scripts' `train_network.py` writes into a LoRA
  file: `ss_*` training settings, `ss_tag_frequency` ({dataset folder: {lower-cased caption
  tag: count}}) and `ss_dataset_dirs` ({folder: {n_repeats, img_count}}), every value a string.
- Civitai model versions carry `trainedWords` and `baseModel` (see `fake_hub.CivitaiVersion`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml


def dreambooth_readme(
    repo_id: str, base_model: str, instance_prompt: str, widget: list[str] | None = None
) -> str:
    """README.md as `train_dreambooth.py` saves it (full fine-tune)."""
    meta = {
        "license": "creativeml-openrail-m",
        "library_name": "diffusers",
        "inference": True,
        "base_model": base_model,
        "instance_prompt": instance_prompt,
        "tags": ["text-to-image", "dreambooth", "diffusers-training", "stable-diffusion",
                 "stable-diffusion-diffusers"],
    }  # fmt: skip
    if widget:
        meta["widget"] = [{"text": t, "output": {"url": f"image_{i}.png"}} for i, t in enumerate(widget)]  # fmt: skip
    body = (
        f"\n# DreamBooth - {repo_id}\n\nThis is a dreambooth model derived from {base_model}. "
        f"The weights were trained on {instance_prompt} using [DreamBooth](https://dreambooth.github.io/).\n"
    )
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n{body}"


def lora_readme(repo_id: str, base_model: str, instance_prompt: str) -> str:
    """README.md as `train_dreambooth_lora.py` saves it (LoRA in diffusers' layout)."""
    meta = {
        "base_model": base_model,
        "library_name": "diffusers",
        "license": "creativeml-openrail-m",
        "inference": True,
        "instance_prompt": instance_prompt,
        "tags": ["text-to-image", "diffusers", "lora", "diffusers-training", "stable-diffusion",
                 "stable-diffusion-diffusers"],
    }  # fmt: skip
    body = f"\n# LoRA DreamBooth - {repo_id}\n\nThese are LoRA adaption weights for {base_model}.\n"
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n{body}"


def kohya_metadata(
    output_name: str,
    sd_model_name: str,
    folder: str,
    captions: list[str],
    *,
    repeats: int = 10,
    dim: int = 8,
    alpha: float = 8.0,
) -> dict[str, str]:
    """The `__metadata__` of a LoRA trained by sd-scripts on one dataset folder with these captions."""
    frequency: Counter[str] = Counter()
    for caption in captions:  # sd-scripts: split on ",", strip, lower-case, count
        frequency.update(t.strip().lower() for t in caption.split(",") if t.strip())
    return {
        "ss_session_id": "1234567890",
        "ss_training_started_at": "1733390000.0",
        "ss_output_name": output_name,
        "ss_learning_rate": "0.0001",
        "ss_text_encoder_lr": "5e-05",
        "ss_unet_lr": "0.0001",
        "ss_num_train_images": str(len(captions) * repeats),
        "ss_num_reg_images": "0",
        "ss_num_batches_per_epoch": str(len(captions) * repeats),
        "ss_num_epochs": "1",
        "ss_max_train_steps": "800",
        "ss_lr_scheduler": "cosine",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_mixed_precision": "fp16",
        "ss_v2": "False",
        "ss_base_model_version": "sd_v1",
        "ss_clip_skip": "None",
        "ss_seed": "42",
        "ss_sd_model_name": sd_model_name,
        "ss_resolution": "(512, 512)",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_tag_frequency": json.dumps({folder: dict(frequency)}),
        "ss_dataset_dirs": json.dumps({folder: {"n_repeats": repeats, "img_count": len(captions)}}),
        "ss_reg_dataset_dirs": json.dumps({}),
        "sshs_model_hash": "0" * 64,
        "sshs_legacy_hash": "0" * 8,
    }


def write_readme(folder: Path, text: str) -> Path:
    """`text` as the folder's README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(text)
    return folder
