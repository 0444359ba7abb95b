"""Writers for the layouts hubs carry, used to make the zoos' fixtures (never to load).

`write_kohya_lora`: a diffusers/PEFT LoRA state dict (keys like
`down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`) rewritten as kohya's
trainers save it (`lora_unet_down_blocks_0_..._to_q.lora_down.weight`, `.lora_up.weight` and a
scalar `.alpha` per module), through diffusers' own `convert_state_dict_to_kohya`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def write_kohya_lora(
    unet_state: dict[str, torch.Tensor],
    te_state: dict[str, torch.Tensor] | None,
    path: str | Path,
    alpha: float | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write PEFT-layout LoRA weights (UNet, optionally text encoder) as one kohya file.

    `alpha` None keeps alpha = rank per module (scale 1, what PEFT's lora_alpha = r means).
    """
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    peft = {f"unet.{k}": v for k, v in unet_state.items()}
    peft |= {f"text_encoder.{k}": v for k, v in (te_state or {}).items()}
    kohya = convert_state_dict_to_kohya(peft)
    kohya = {k.replace("lora_te1_", "lora_te_"): v for k, v in kohya.items()}  # SD 1.x naming
    if alpha is not None:
        kohya = {
            k: torch.tensor(float(alpha)) if k.endswith(".alpha") else v for k, v in kohya.items()
        }
    else:
        kohya = {k: v.float() if k.endswith(".alpha") else v for k, v in kohya.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in kohya.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return path
