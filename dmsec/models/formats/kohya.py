"""kohya-ss / LyCORIS LoRA and LoCon files, converted to the diffusers layout by diffusers' API.

A kohya file names each adapted module with underscores (`lora_unet_down_blocks_0_attentions_0_
transformer_blocks_0_attn1_to_q`, `lora_te_text_model_encoder_layers_0_mlp_fc1`; `lora_te1_` /
`lora_te2_` for SDXL's two text encoders) and stores `.lora_down.weight` (A: r x in, or
r x in x k x k for a LoCon conv), `.lora_up.weight` (B) and a scalar `.alpha`; the update is
W + (alpha / r) * B @ A, and a missing alpha means alpha = r. SDXL files from kohya's trainer use
the original (sgm) block names (`input_blocks_4_1_...`). Any file name; alone, or beside a
`dmsec_model.json` card.

Conversion, on a state dict already loaded through `safe_load`:
1. fold each module's alpha into its up matrix (B <- B * alpha / r), so every module has scale 1:
   exact, and it spares peft's `alpha_pattern` the module-name matching diffusers' alpha names
   do not always survive;
2. diffusers' public `StableDiffusionLoraLoaderMixin.lora_state_dict`, given that dict and the
   base UNet's config: it maps sgm block names to diffusers' and kohya names to the prefixed
   diffusers layout (`unet.*`, `text_encoder.*`, `text_encoder_2.*`), as `load_lora_weights`
   does. Only step 1's arithmetic is ours.
A file with a `lora_down` but no `lora_up` (or the reverse), or keys diffusers cannot place, is a
`CheckpointError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dmsec.errors import CheckpointError
from dmsec.models.family import Family, family_of_adapter
from dmsec.models.formats.base import CheckpointFormat, Probe, any_key
from dmsec.models.formats.unsupported import variant_of

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel

KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
KOHYA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")


def module_names(state: Mapping[str, Any]) -> list[str]:
    """The kohya module names of a state dict (`<name>.lora_down.weight` -> `<name>`)."""
    return sorted({k.split(".", 1)[0] for k in state})


def fold_alphas(state: dict[str, torch.Tensor], path: str | Path) -> dict[str, torch.Tensor]:
    """Scale each module's `lora_up` by alpha / rank and drop the `.alpha` keys (float32 out)."""
    unknown = sorted(k for k in state if not k.endswith(KOHYA_SUFFIXES))
    if unknown:
        raise CheckpointError(path, f"kohya file has tensors of no known kind: {unknown[:3]}")
    out: dict[str, torch.Tensor] = {}
    for name in module_names(state):
        down, up = state.get(f"{name}.lora_down.weight"), state.get(f"{name}.lora_up.weight")
        if down is None or up is None:
            raise CheckpointError(
                path, f"kohya module {name!r} lacks its lora_down or lora_up weight"
            )
        rank = int(down.shape[0])
        if up.ndim < 2 or int(up.shape[1]) != rank:
            raise CheckpointError(
                path,
                f"kohya module {name!r}: lora_up {list(up.shape)} does not fit lora_down "
                f"{list(down.shape)} (rank {rank})",
            )
        alpha = state.get(f"{name}.alpha")
        value = 0.0 if alpha is None else float(alpha.float().reshape(-1)[0])
        scale = value / rank if value else 1.0  # kohya: no alpha, or 0, means alpha = rank
        out[f"{name}.lora_down.weight"] = down.float()
        out[f"{name}.lora_up.weight"] = up.float() * scale
    return out


def kohya_to_diffusers(
    state: dict[str, torch.Tensor], unet_config: Any, path: str | Path
) -> dict[str, torch.Tensor]:
    """A kohya LoRA/LoCon state dict -> diffusers' prefixed layout (see the module docstring)."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    folded = fold_alphas(state, path)
    stray = sorted(k for k in folded if not k.startswith(KOHYA_PREFIXES))
    if stray:  # diffusers converts a file only when every key is kohya's
        raise CheckpointError(path, f"kohya file mixes in keys of another layout: {stray[:3]}")
    try:
        converted, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(
            folded, unet_config=unet_config
        )
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(path, f"kohya LoRA keys could not be converted: {first}") from None
    if alphas:  # folded above, so diffusers found none; anything else is a bug here
        raise CheckpointError(path, f"unexpected alphas after folding: {sorted(alphas)[:3]}")
    return dict(converted)


class KohyaLora(CheckpointFormat):
    """kohya-ss / LyCORIS LoRA and LoCon (`lora_unet_*`, `lora_te*_*`, `.alpha`)."""

    name = "kohya-lora"
    title = "kohya / LyCORIS LoRA or LoCon"
    kind = "adapter"

    def matches(self, probe: Probe) -> bool:
        keys = probe.tensor_names
        return not probe.is_folder and any_key(keys, KOHYA_PREFIXES) and variant_of(keys) is None

    def family(self, header: Mapping[str, Any]) -> Family:
        return family_of_adapter(header)

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        from dmsec.models.lora import inject_lora_state
        from dmsec.models.safe_load import load_state_dict

        assert base is not None
        state = kohya_to_diffusers(load_state_dict(path), getattr(base.network, "config", None), path)  # fmt: skip
        inject_lora_state(base, state, path)
        return base
