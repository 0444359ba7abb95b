"""Writers for the layouts hubs carry, used to make the zoos' fixtures (never to load).

`write_kohya_lora`: a diffusers/PEFT LoRA state dict (keys like
`down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`) rewritten as kohya's
trainers save it (`lora_unet_down_blocks_0_..._to_q.lora_down.weight`, `.lora_up.weight` and a
scalar `.alpha` per module), through diffusers' own `convert_state_dict_to_kohya`. Conv layers
(resnets' conv1/conv2, samplers) come out as LyCORIS LoCon modules: the same three tensors, the
down matrix a k x k convolution and the up matrix a 1 x 1 one.

`write_single_file_checkpoint`: a diffusers UNet2DConditionModel (+ AutoencoderKL + CLIP text
encoder, or the UNet alone) in the original Stable Diffusion single-file layout
(`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`). diffusers
ships only the opposite direction (`single_file_utils.convert_ldm_*`), so this map is written
here from the original layout's rules; tests/models/test_single_file.py checks that diffusers'
converters read every tensor back to where it came from.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

LDM_UNET = "model.diffusion_model."
LDM_VAE = "first_stage_model."
LDM_CLIP = "cond_stage_model.transformer."
# diffusers ResnetBlock2D names -> the original UNet's ResBlock names
_UNET_RESNET = (
    ("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)  # fmt: skip
_VAE_ATTENTION = (
    ("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"),
)  # fmt: skip


def _rename_head(rest: str, table: tuple[tuple[str, str], ...]) -> str:
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def write_kohya_lora(
    unet_state: dict[str, torch.Tensor],
    te_state: dict[str, torch.Tensor] | None,
    path: str | Path,
    alpha: float | Mapping[str, float] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write PEFT-layout LoRA weights (UNet, optionally text encoder) as one kohya file.

    `alpha` None keeps alpha = rank per module (scale 1, what PEFT's lora_alpha = r means); a
    number sets every module's alpha; a mapping gives it per module, keyed by the module's name
    in the PEFT state dict (the key before `.lora_A.weight`; see `peft_alphas`). kohya's scale is
    alpha / rank, PEFT's lora_alpha / r, so a module's kohya alpha is its PEFT lora_alpha.
    """
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    # kohya files keep CLIP's `text_model.` prefix, which transformers >= 5.6 no longer has
    te = {(k if k.startswith("text_model.") else f"text_model.{k}"): k for k in te_state or {}}
    peft = {f"unet.{k}": v for k, v in unet_state.items()}
    peft |= {f"text_encoder.{k}": (te_state or {})[given] for k, given in te.items()}
    kohya = _sd1_names(convert_state_dict_to_kohya(peft))
    if isinstance(alpha, Mapping):
        given_names = {f"unet.{k}": k for k in unet_state} | {f"text_encoder.{k}": g for k, g in te.items()}  # fmt: skip
        for key, given in given_names.items():
            module = given.split(".lora_A.")[0]
            if ".lora_A." in given and module in alpha:
                one = _sd1_names(convert_state_dict_to_kohya({key: peft[key]}))
                kohya[next(k for k in one if k.endswith(".alpha"))] = torch.tensor(float(alpha[module]))  # fmt: skip
    elif alpha is not None:
        kohya = {k: torch.tensor(float(alpha)) if k.endswith(".alpha") else v for k, v in kohya.items()}  # fmt: skip
    kohya = {k: v.float() if k.endswith(".alpha") else v for k, v in kohya.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in kohya.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return path


def _sd1_names(kohya: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers writes `lora_te1_`; SD 1.x kohya files name the one text encoder `lora_te_`."""
    return {k.replace("lora_te1_", "lora_te_"): v for k, v in kohya.items()}


def peft_alphas(network: torch.nn.Module, adapter: str = "default") -> dict[str, float]:
    """{module name: lora_alpha} of an injected PEFT adapter (for `write_kohya_lora`'s alpha)."""
    from peft.tuners.lora import LoraLayer

    return {
        name: float(module.lora_alpha[adapter])
        for name, module in network.named_modules()
        if isinstance(module, LoraLayer) and adapter in module.lora_alpha
    }


def unet_to_ldm(unet: Any) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel's weights under the original UNet's names."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    per = int(unet.config.layers_per_block) + 1  # resnets per down level (+1 sampler slot)
    top: dict[str, str] = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]  # type: ignore[index]
    has_attention = [hasattr(b, "attentions") for b in unet.up_blocks]
    out: dict[str, torch.Tensor] = {}
    for key, value in unet.state_dict().items():
        if key in top:
            out[LDM_UNET + top[key]] = value
            continue
        if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            # down level i's j-th layer is input block 1 + i*per + j (0 is conv_in); up: i*per + j
            down, i, kind, j, rest = m[1] == "down", int(m[2]), m[3], int(m[4]), m[5]
            sub, rest = (0, _rename_head(rest, _UNET_RESNET)) if kind == "resnets" else (1, rest)
            block = f"input_blocks.{1 + i * per + j}" if down else f"output_blocks.{i * per + j}"
            name = f"{block}.{sub}.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            name = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            name = f"middle_block.{2 * int(m[1])}.{_rename_head(m[2], _UNET_RESNET)}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            name = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            i = int(m[1])
            name = f"output_blocks.{i * per + per - 1}.{2 if has_attention[i] else 1}.conv.{m[2]}"
        else:
            raise ValueError(f"no single-file name for UNet tensor {key!r}")
        out[LDM_UNET + name] = value
    return out


def vae_to_ldm(vae: Any) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL's weights under the original VAE's names (attention as 1x1 convs)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    top: dict[str, str] = DIFFUSERS_TO_LDM_MAPPING["vae"]  # type: ignore[assignment]
    n_up = len(vae.config.up_block_types)
    out: dict[str, torch.Tensor] = {}
    for key, value in vae.state_dict().items():
        if key in top:
            name = top[key]
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            name = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"  # fmt: skip
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            name = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            rest = m[3].replace("conv_shortcut", "nin_shortcut")
            name = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{rest}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            name = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            name = f"{m[1]}.mid.attn_1.{_rename_head(m[2], _VAE_ATTENTION)}"
            if value.ndim == 2:  # the original attention projects with 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise ValueError(f"no single-file name for VAE tensor {key!r}")
        out[LDM_VAE + name] = value
    return out


def clip_to_ldm(text_encoder: Any) -> dict[str, torch.Tensor]:
    """A CLIPTextModel's weights as SD 1.x single files hold them (`...transformer.text_model.*`)."""
    return {
        LDM_CLIP + (k if k.startswith("text_model.") else f"text_model.{k}"): v
        for k, v in text_encoder.state_dict().items()
        if not k.endswith("position_ids")
    }


def write_single_file_checkpoint(
    unet: Any,
    path: str | Path,
    vae: Any | None = None,
    text_encoder: Any | None = None,
    metadata: dict[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a UNet (+ VAE + CLIP text encoder) as one original-layout SD `.safetensors` file."""
    state = unet_to_ldm(unet)
    state |= vae_to_ldm(vae) if vae is not None else {}
    state |= clip_to_ldm(text_encoder) if text_encoder is not None else {}
    tensors = {
        k: (v.to(dtype) if dtype is not None else v).detach().contiguous().cpu()
        for k, v in state.items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return path


def write_single_file_copy(source: str | Path, dest: str | Path, unet_only: bool = False) -> Path:
    """A diffusers SD folder (e.g. a DreamBooth fine-tune) written again as
    `<dest>/<dest name>.safetensors` in the single-file layout, beside a copy of its
    `dmsec_model.json` card (so `load_model(dest)` finds the base and instance prompt)."""
    from dmsec.models.stable_diffusion import load_stable_diffusion_folder
    from dmsec.models.unet2d import MODEL_CARD

    source, dest = Path(source), Path(dest)
    handle = load_stable_diffusion_folder(source)
    parts: dict[str, Any] = {} if unet_only else {"vae": handle.vae, "text_encoder": handle.text_encoder}  # fmt: skip
    write_single_file_checkpoint(handle.network, dest / f"{dest.name}.safetensors", **parts)
    if (source / MODEL_CARD).exists():
        shutil.copyfile(source / MODEL_CARD, dest / MODEL_CARD)
    return dest
