"""Fixtures in the layouts hubs carry, made in code (nothing downloaded).

- `lora_finetune`: a tiny SD with a random-init PEFT adapter on attention and conv layers (the
  conv ones are what kohya calls LoCon), with per-module ranks and alphas, optionally on the
  text encoder too;
- family files: only the tensors that tell a family apart, at their real shapes (fp16), so
  detection from headers is tested on SD 1.x-, SD 2.x-, SDXL- and FLUX.1-shaped files without
  gigabytes: the real files hold these tensors, plus many more that say nothing new;
- LyCORIS LoHa / LoKr files with the key names LyCORIS writes;
- a card folder: one weights file of any name beside a `dmsec_model.json`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, inject_adapter_in_model
from safetensors.torch import save_file

from dmsec.models.unet2d import MODEL_CARD, ModelInfo

PROMPT = "a photo of sks dog"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1", "conv2"]
TE_TARGETS = ["q_proj", "v_proj", "out_proj", "fc1"]
SD1_TO_K = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"


def lora_finetune(base: Any, seed: int = 1, text_encoder: bool = False) -> Any:
    """A copy of `base` carrying a random-init adapter "default" (see the module docstring)."""
    torch.manual_seed(seed)
    handle = copy.deepcopy(base)
    unet = LoraConfig(
        r=4, lora_alpha=2.0, target_modules=UNET_TARGETS, init_lora_weights=False,
        rank_pattern={"down_blocks.0.resnets.0.conv1": 2, "attn2.to_v": 3},
        alpha_pattern={"to_k": 8.0, "conv2": 1.0},
    )  # fmt: skip
    inject_adapter_in_model(unet, handle.network)
    if text_encoder:
        te = LoraConfig(r=2, lora_alpha=3.0, target_modules=TE_TARGETS, init_lora_weights=False)
        inject_adapter_in_model(te, handle.text_encoder)
    _shrink_adapter(handle)
    return handle


def _shrink_adapter(handle: Any) -> None:
    """Scale B so the fine-tune differs from the base clearly but stays a small perturbation."""
    with torch.no_grad():
        for module in handle.modules():
            for name, p in module.named_parameters():
                if ".lora_B." in name:
                    p.mul_(0.3)


def write_card(
    folder: Path, kind: str = "lora", base: str = "../base", prompt: str = PROMPT
) -> None:
    """The zoo's `dmsec_model.json` beside a checkpoint's weights."""
    folder.mkdir(parents=True, exist_ok=True)
    info = ModelInfo(kind=kind, base_model=base, instance_prompt=prompt)
    (folder / MODEL_CARD).write_text(info.to_json())


def _save(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def _kohya_module(name: str, down: tuple[int, ...], up: tuple[int, ...]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(len(name))
    return {
        f"{name}.lora_down.weight": torch.randn(down, generator=g).half(),
        f"{name}.lora_up.weight": torch.randn(up, generator=g).half(),
        f"{name}.alpha": torch.tensor(2.0),
    }


def write_sdxl_kohya_lora(path: Path) -> Path:
    """An SDXL-shaped kohya LoRA: sgm block names, cross-attention width 2048, two text encoders."""
    tensors = _kohya_module(
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", (4, 2048), (640, 4)
    )
    tensors |= _kohya_module("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", (4, 768), (768, 4))  # fmt: skip
    tensors |= _kohya_module("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", (4, 1280), (1280, 4))  # fmt: skip
    return _save(tensors, path, {"ss_base_model_version": "sdxl_base_v1-0"})


def write_sd2_kohya_lora(path: Path) -> Path:
    """An SD 2.x-shaped kohya LoRA: cross-attention width 1024, OpenCLIP-H text encoder width."""
    tensors = _kohya_module(
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", (4, 1024), (320, 4)
    )
    tensors |= _kohya_module("lora_te_text_model_encoder_layers_0_self_attn_q_proj", (4, 1024), (1024, 4))  # fmt: skip
    return _save(tensors, path)


def write_sd1_peft_lora(path: Path) -> Path:
    """An SD 1.x-shaped LoRA in diffusers' `save_lora_weights` layout (width 768)."""
    g = torch.Generator().manual_seed(0)
    tensors = {
        f"unet.{SD1_TO_K}.lora_A.weight": torch.randn(4, 768, generator=g).half(),
        f"unet.{SD1_TO_K}.lora_B.weight": torch.randn(320, 4, generator=g).half(),
    }
    return _save(tensors, path)


def write_flux_kohya_lora(path: Path) -> Path:
    """A FLUX.1-shaped kohya LoRA (transformer double blocks, no UNet)."""
    return _save(
        _kohya_module("lora_unet_double_blocks_0_img_attn_qkv", (4, 3072), (9216, 4)), path
    )


def _ldm_file(path: Path, block: int, width: int, channels: int, extra: dict[str, int]) -> Path:
    """A single file (original layout) holding one UNet cross-attention projection, whose input
    width is the text encoder's, and the text encoder's telling tensors (`extra`: name -> size)."""
    g = torch.Generator().manual_seed(width)
    key = f"model.diffusion_model.input_blocks.{block}.1.transformer_blocks.0.attn2.to_k.weight"
    tensors = {key: torch.randn(channels, width, generator=g).half()}
    tensors |= {name: torch.ones(size).half() for name, size in extra.items()}
    return _save(tensors, path)


def write_sd1_checkpoint(path: Path) -> Path:
    """An SD 1.x-shaped single file: cross-attention width 768, CLIP-L under `cond_stage_model`."""
    clip = "cond_stage_model.transformer.text_model.final_layer_norm.weight"
    return _ldm_file(path, 1, 768, 320, {clip: 768})


def write_sd2_checkpoint(path: Path) -> Path:
    """An SD 2.x-shaped single file: the key diffusers tells v2 by (width 1024), OpenCLIP-H."""
    return _ldm_file(path, 2, 1024, 320, {"cond_stage_model.model.ln_final.weight": 1024})


def write_sdxl_checkpoint(path: Path) -> Path:
    """An SDXL-shaped single file: OpenCLIP-bigG embedder key, cross-attention width 2048."""
    extra = {
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": 1280,
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": 768,
    }
    return _ldm_file(path, 4, 2048, 640, extra)


def write_loha(path: Path, module: str = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") -> Path:  # fmt: skip
    """A LyCORIS LoHa file (W + (w1a @ w1b) * (w2a @ w2b) * alpha / r): hada_* keys."""
    g = torch.Generator().manual_seed(4)
    tensors = {
        f"{module}.hada_w1_a": torch.randn(16, 2, generator=g),
        f"{module}.hada_w1_b": torch.randn(2, 16, generator=g),
        f"{module}.hada_w2_a": torch.randn(16, 2, generator=g),
        f"{module}.hada_w2_b": torch.randn(2, 16, generator=g),
        f"{module}.alpha": torch.tensor(2.0),
    }
    return _save(tensors, path)


def write_lokr(path: Path, module: str = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") -> Path:  # fmt: skip
    """A LyCORIS LoKr file (W + kron(w1, w2)): lokr_* keys."""
    g = torch.Generator().manual_seed(5)
    tensors = {
        f"{module}.lokr_w1": torch.randn(4, 4, generator=g),
        f"{module}.lokr_w2": torch.randn(4, 4, generator=g),
        f"{module}.alpha": torch.tensor(1.0),
    }
    return _save(tensors, path)


def write_bert_like(path: Path) -> Path:
    """Valid safetensors that hold no diffusion model (a text model's tensors)."""
    g = torch.Generator().manual_seed(6)
    tensors = {
        "bert.embeddings.word_embeddings.weight": torch.randn(32, 8, generator=g),
        "bert.encoder.layer.0.attention.self.query.weight": torch.randn(8, 8, generator=g),
        "cls.predictions.bias": torch.zeros(32),
    }
    return _save(tensors, path)
