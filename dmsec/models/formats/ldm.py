"""Full checkpoints in the original Stable Diffusion single-file layout, loaded onto a base.

Civitai's "Checkpoint" models are mostly one `.safetensors` file in the layout of the original
(CompVis / Stability) code: the UNet under `model.diffusion_model.*` (`input_blocks`,
`middle_block`, `output_blocks`), the VAE under `first_stage_model.*` (`encoder.down.0.block.0`),
the CLIP text encoder under `cond_stage_model.transformer.*` (SD 1.x) or OpenCLIP under
`cond_stage_model.model.*` (SD 2.x); some carry the UNet alone.

The file is read through `safe_load` and converted component by component with diffusers'
shipped converters (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint`, `convert_open_clip_checkpoint`) using the *base model's* diffusers
configs for the architecture — a single file has no config of its own — then loaded strictly:
a missing, extra or mis-shaped tensor is a `CheckpointError`. Components the file lacks stay the
base's. The family (diffusers' `infer_diffusers_model_type` on the header's shapes) is checked
first, so an SDXL file against an SD 1.x base says so instead of failing on tensor names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dmsec.errors import CheckpointError
from dmsec.models.family import Family, family_of_checkpoint
from dmsec.models.formats.base import CheckpointFormat, Probe, any_key
from dmsec.models.formats.peft_lora import has_lora_keys
from dmsec.models.formats.unsupported import variant_of
from dmsec.models.weights import load_weights_into

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel

LDM_UNET_PREFIX = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
IGNORED_SUFFIXES = ("position_ids",)  # a buffer older exports carry; not a weight


def _has(state: Mapping[str, Any], prefixes: str | tuple[str, ...]) -> bool:
    return any(k.startswith(prefixes) for k in state)


def _converted(fn: Any, path: Path, what: str, *args: Any) -> dict[str, torch.Tensor]:
    """Run one of diffusers' converters; its KeyErrors on foreign layouts become ours."""
    try:
        out = fn(*args)
    except (KeyError, ValueError, IndexError, AttributeError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(path, f"the {what} in this checkpoint could not be converted: {first}") from None  # fmt: skip
    return {k: v for k, v in out.items() if v is not None and not k.endswith(IGNORED_SUFFIXES)}


def ldm_components(state: Mapping[str, Any]) -> tuple[str, ...]:
    """Which components a single-file checkpoint carries: ("unet", "vae", "text_encoder")."""
    found = ["unet"] if _has(state, LDM_UNET_PREFIX) else []
    found += ["vae"] if _has(state, VAE_PREFIXES) else []
    found += ["text_encoder"] if _has(state, (CLIP_PREFIX, OPEN_CLIP_PREFIX)) else []
    return tuple(found)


def load_ldm_into(handle: Any, state: dict[str, torch.Tensor], path: Path) -> tuple[str, ...]:
    """Replace `handle`'s components with the single-file checkpoint's (in place).

    Returns the components replaced. `handle` supplies the architecture (its diffusers configs).
    """
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    components = ldm_components(state)
    if "unet" not in components:
        raise CheckpointError(path, "single-file checkpoint has no UNet (model.diffusion_model.*)")
    network = handle.network
    unet = _converted(convert_ldm_unet_checkpoint, path, "UNet", state, dict(network.config))
    load_weights_into(network, unet, path)
    for name in components[1:]:
        if getattr(handle, name, None) is None:
            raise CheckpointError(path, f"has {name} weights but the base model has no {name}")
    vae: Any = getattr(handle, "vae", None)
    text_encoder: Any = getattr(handle, "text_encoder", None)
    if "vae" in components:
        weights = _converted(convert_ldm_vae_checkpoint, path, "VAE", state, dict(vae.config))
        load_weights_into(vae, weights, path)
    if "text_encoder" in components:
        if _has(state, CLIP_PREFIX):
            weights = _converted(convert_ldm_clip_checkpoint, path, "text encoder", state)
        else:
            weights = _converted(
                convert_open_clip_checkpoint, path, "text encoder", text_encoder, state
            )
        if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattens CLIPTextModel
            weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
        load_weights_into(text_encoder, weights, path)
    return components


class LdmCheckpoint(CheckpointFormat):
    """A full model in the original SD single-file layout (`model.diffusion_model.*`)."""

    name = "ldm-checkpoint"
    title = "single-file checkpoint (original SD layout)"
    kind = "full"

    def matches(self, probe: Probe) -> bool:
        keys = probe.tensor_names
        return (
            not probe.is_folder
            and any_key(keys, (LDM_UNET_PREFIX,))
            and not has_lora_keys(keys)
            and variant_of(keys) is None
        )

    def family(self, header: Mapping[str, Any]) -> Family:
        return family_of_checkpoint(header)

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        from dmsec.models.safe_load import load_state_dict

        assert base is not None
        load_ldm_into(base, load_state_dict(path, allow_pickle=allow_pickle), path)
        return base
