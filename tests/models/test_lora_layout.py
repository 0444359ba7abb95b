"""LoRA files as diffusers' training scripts write them, checked against their PEFT twin.

`train_dreambooth_lora.py` and `train_text_to_image_lora.py` save
`convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))` (and the text encoder's) with
`save_lora_weights`: the UNet's `to_q/k/v/out.0` become `*.lora.down/up.weight`, CLIP's
`*_proj` become `*.lora_linear_layer.down/up.weight`, every other module stays `lora_A/B`,
prefixed `unet.` / `text_encoder.`. Such a file must predict exactly the noise of the same adapter
saved in the PEFT layout (the scripts train with lora_alpha = rank, so no alpha is stored).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin
from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
from format_fixtures import PROMPT, write_card
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from safetensors import safe_open
from safetensors.torch import save_file

from dmsec.models.loading import load_model

ATOL = 1e-5
# the scripts' UNet targets plus modules the converter leaves in peft's spelling (the mixed case)
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _script_lora(base, text_encoder: bool):
    """A copy of `base` with a random adapter as the scripts configure it (alpha = rank)."""
    torch.manual_seed(7)
    ft = copy.deepcopy(base)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, target_modules=UNET_TARGETS, init_lora_weights=False), ft.network)  # fmt: skip
    if text_encoder:
        inject_adapter_in_model(LoraConfig(r=2, lora_alpha=2, target_modules=TE_TARGETS, init_lora_weights=False), ft.text_encoder)  # fmt: skip
    with torch.no_grad():  # B scaled down: a clear but small change of the predictions
        for module in (ft.network, ft.text_encoder):
            for name, p in module.named_parameters():
                if ".lora_B." in name:
                    p.mul_(0.3)
    return ft


def _eps(model, x: torch.Tensor, t: torch.Tensor, prompts: list) -> torch.Tensor:
    with torch.no_grad():
        return model.predict_noise(x, t, model.encode_condition(prompts))


def _inputs() -> tuple[torch.Tensor, torch.Tensor, list]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, 16, 16, generator=g), torch.tensor([5, 300, 900]), [PROMPT, None, "a dog"]  # fmt: skip


def _save_as_the_scripts_do(ft, folder: Path, text_encoder: bool) -> Path:
    unet = convert_state_dict_to_diffusers(get_peft_model_state_dict(ft.network))
    te = convert_state_dict_to_diffusers(get_peft_model_state_dict(ft.text_encoder)) if text_encoder else None  # fmt: skip
    StableDiffusionLoraLoaderMixin.save_lora_weights(folder, unet_lora_layers=unet, text_encoder_lora_layers=te)  # fmt: skip
    write_card(folder)
    return folder / "pytorch_lora_weights.safetensors"


@pytest.mark.parametrize("text_encoder", [False, True], ids=["unet", "unet+text_encoder"])
def test_lora_layout_of_diffusers_scripts_predicts_as_its_peft_twin(
    tmp_path, tiny_sd, text_encoder
):
    tiny_sd.save(tmp_path / "base")
    ft = _script_lora(tiny_sd, text_encoder)
    weights = _save_as_the_scripts_do(ft, tmp_path / "script", text_encoder)
    with safe_open(weights, "pt") as f:
        keys = list(f.keys())
    # the layout under test: the scripts' spellings, mixed with peft's, prefixed per component
    assert any(k.startswith("unet.") and k.endswith(".to_q.lora.down.weight") for k in keys)
    assert any(k.startswith("unet.") and k.endswith(".proj_in.lora_A.weight") for k in keys)
    assert text_encoder == any(k.startswith("text_encoder.") and ".lora_linear_layer." in k for k in keys)  # fmt: skip
    x, t, prompts = _inputs()
    reference, base = _eps(ft, x, t, prompts), _eps(tiny_sd, x, t, prompts)
    assert (reference - base).abs().max() > 0.05  # the adapter changes the predictions
    loaded = load_model(tmp_path / "script")
    assert torch.allclose(_eps(loaded, x, t, prompts), reference, atol=ATOL)


def test_lora_layout_without_component_prefixes_is_the_unet(tmp_path, tiny_sd):
    """Some uploads strip `unet.`: the unprefixed scripts' spelling is the UNet's, as dmsec's own."""
    tiny_sd.save(tmp_path / "base")
    ft = _script_lora(tiny_sd, text_encoder=False)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(ft.network))
    folder = tmp_path / "bare"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "pytorch_lora_weights.safetensors"))  # fmt: skip
    write_card(folder)
    x, t, prompts = _inputs()
    assert torch.allclose(_eps(load_model(folder), x, t, prompts), _eps(ft, x, t, prompts), atol=ATOL)  # fmt: skip
