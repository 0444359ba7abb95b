"""Few-shot data in, fine-tuned checkpoints out, in the zoo's on-disk formats.

- full fine-tune: a diffusers folder (`model_index.json`, `unet/`, `scheduler/`) with
  `dmsec_model.json` (`kind="full"`, `base_model`), as `UNet2DHandle.save` writes it;
- LoRA: `pytorch_lora_weights.safetensors` (`save_lora`, base model in its metadata) beside
  `dmsec_model.json` (`kind="lora"`).

The card records the condition the images were trained on (`instance_prompt` for a prompt,
`instance_class` for a class id), so the output is scanned with it as the zoo's fine-tunes are.

Bayesian runs are saved as their mean network (σ = 0, arXiv 2405.19931): the checkpoint is an
ordinary model that `dmsec.models.loading.load_model` reads like any other.
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dmsec.errors import ConfigError
from dmsec.finetune.bayesian import is_bayesian, to_mean_network
from dmsec.images import load_pngs
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.lora import has_lora, save_lora
from dmsec.models.pair import card_condition
from dmsec.models.unet2d import MODEL_CARD, ModelInfo

IMAGE_SUFFIXES = (".png",)


def pixel_size(model: DiffusionModel) -> int:
    """Side in pixels of the images `model` trains on (latent models: latent side x VAE factor)."""
    side = int(model.sample_shape[-1])
    vae = getattr(model, "vae", None)
    if vae is None:
        return side
    return side * 2 ** (len(vae.config.block_out_channels) - 1)


def load_training_images(folder: str | Path, model: DiffusionModel) -> torch.Tensor:
    """The PNGs of `folder` (sorted by name) as (N, C, H, W) in [0, 1], sized for `model`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"`images` must be a folder of PNG files; got {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"`images`: no PNG files in {folder}")
    grey = model.sample_shape[0] == 1 if model.family == "unet2d" else False
    images = load_pngs(paths, grey=grey)
    side = pixel_size(model)
    if images.shape[-2:] != (side, side):
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True)
    return images.clamp(0, 1)


def instance_condition(model: DiffusionModel, override: Condition = None) -> Condition:
    """The condition the images are bound to: `override`, else the model card's instance
    class (class-conditional UNets) or instance prompt (Stable Diffusion)."""
    if override is not None:
        return override
    condition = card_condition(model)
    if condition is not None:
        return condition
    raise ConfigError(
        "the base model's card names no instance class or prompt; give `condition` explicitly"
    )


def base_reference(base: str | Path, out: str | Path) -> str:
    """How the output's card names its base: relative to the output when the two share a folder
    below the filesystem root (as the zoo's "../base"), else the absolute path."""
    base_path, out_path = Path(base).resolve(), Path(out).resolve()
    common = Path(os.path.commonpath([base_path, out_path]))
    if common == Path(common.anchor):
        return str(base_path)
    return os.path.relpath(base_path, out_path)


def check_output_folder(out: str | Path) -> None:
    """`out` must be new, empty, or an earlier fine-tune (which a new run replaces)."""
    out = Path(out)
    if (
        out.exists()
        and (not out.is_dir() or any(out.iterdir()))
        and not (out / MODEL_CARD).exists()
    ):
        raise ConfigError(
            f"`out` {out} exists and is not a fine-tune folder; refusing to replace it"
        )


def save_finetune(
    model: DiffusionModel,
    folder: str | Path,
    base_model: str,
    extra: dict[str, Any] | None = None,
    condition: Condition = None,
) -> Path:
    """Write `model` (a trained fine-tune) in the zoo's format; Bayesian layers become μ.

    `condition` (the prompt or class id the images were bound to) goes into the card; None keeps
    the base card's."""
    folder = Path(folder)
    if is_bayesian(model.network):
        handle = copy.deepcopy(model)
        to_mean_network(handle.network)
    else:
        handle = copy.copy(model)  # shares the network; the card below is the copy's own
    base_info = getattr(handle, "info", None) or ModelInfo()
    kind = "lora" if has_lora(handle.network) else "full"
    info = replace(base_info, kind=kind, base_model=base_model, extra=extra)
    if isinstance(condition, str):
        info = replace(info, instance_prompt=condition, instance_class=None)
    elif isinstance(condition, int):
        info = replace(info, instance_class=condition, instance_prompt=None)
    if kind == "lora":
        save_lora(handle.network, folder, base_model=base_model)
        (folder / MODEL_CARD).write_text(info.to_json())
        return folder
    save = getattr(handle, "save", None)
    if save is None:
        raise ConfigError(f"cannot save a full fine-tune of family {handle.family!r}")
    handle.info = info  # type: ignore[attr-defined]
    save(folder)
    return folder
