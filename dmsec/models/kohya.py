"""kohya-ss / LyCORIS LoRA and LoCon files -> the diffusers LoRA layout, by diffusers' own code.

A kohya file names each adapted module with underscores (`lora_unet_down_blocks_0_attentions_0_
transformer_blocks_0_attn1_to_q`, `lora_te_text_model_encoder_layers_0_mlp_fc1`) and stores
`.lora_down.weight` (A: r x in, or r x in x k x k for a LoCon conv), `.lora_up.weight` (B) and a
scalar `.alpha`; the update is W + (alpha / r) * B @ A, and a missing alpha means alpha = r.
SDXL files from kohya's trainer use the original (sgm) block names (`input_blocks_4_1_...`).

Conversion, on a state dict already loaded through `safe_load`:
1. fold each module's alpha into its up matrix (B <- B * alpha / r), so every module has scale 1:
   exact, and it spares peft's `alpha_pattern` the module-name matching diffusers' alpha names
   do not always survive;
2. sgm block names -> diffusers' (`_maybe_map_sgm_blocks_to_diffusers`, needs the UNet config);
3. kohya names -> diffusers' prefixed layout (`unet.*`, `text_encoder.*`, `text_encoder_2.*`)
   with `_convert_non_diffusers_lora_to_diffusers`, the function `load_lora_weights` runs.
Steps 2-3 are diffusers' shipped conversion code; only step 1's arithmetic is ours. A file with
a `lora_down` but no `lora_up` (or the reverse), or keys diffusers cannot place, is a
`CheckpointError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dmsec.errors import CheckpointError

SGM_MARKERS = ("input_blocks", "middle_block", "output_blocks")
KOHYA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")


def module_names(state: dict[str, torch.Tensor]) -> list[str]:
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
    from diffusers.loaders.lora_conversion_utils import (
        _convert_non_diffusers_lora_to_diffusers,
        _maybe_map_sgm_blocks_to_diffusers,
    )

    folded = fold_alphas(state, path)
    try:
        if any(m in k for k in folded for m in SGM_MARKERS):
            folded = _maybe_map_sgm_blocks_to_diffusers(folded, unet_config)
        converted, alphas = _convert_non_diffusers_lora_to_diffusers(folded)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CheckpointError(path, f"kohya LoRA keys could not be converted: {first}") from None
    if alphas:  # folded above, so diffusers found none; anything else is a bug here
        raise CheckpointError(path, f"unexpected alphas after folding: {sorted(alphas)[:3]}")
    return dict(converted)
