"""SD-1.5-sized LoRA pairs with random weights, built in code, for benchmarks/throughput.py.

`build_pairs(SD15, ...)` gives our `LoraPair` (one UNet2DConditionModel carrying a rank-16 LoRA on
its attention projections) and the official loop's `FullPair` (two whole pipelines: a pretrained
copy and the fine-tune), with SD-1.5's configs: UNet 859,520,964 parameters, VAE 83,653,863, CLIP
text encoder 123,060,480 (as in the released checkpoint; no weights are downloaded). `QUICK` is a
scaled-down copy of the same architecture for CPU checks. The tokenizer is a word-level stand-in
for CLIP's BPE padded to 77 tokens: the text encoder's cost is the same.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dmsec.models.lora import LoraSpec, add_lora
from dmsec.models.pair import FullPair, LoraPair, instance_condition
from dmsec.models.stable_diffusion import StableDiffusionHandle, tiny_tokenizer
from dmsec.models.unet2d import ModelInfo

ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class Shapes:
    """A Stable Diffusion 1.x architecture's sizes (SD-1.5's, or a scaled-down copy)."""

    name: str
    image_size: int
    unet_channels: tuple[int, ...]
    head_dim: int
    vae_channels: tuple[int, ...]
    norm_groups: int
    text_width: int
    text_layers: int
    text_heads: int
    vocab_size: int = 49408
    max_tokens: int = 77


SD15 = Shapes("SD-1.5", 512, (320, 640, 1280, 1280), 8, (128, 256, 512, 512), 32, 768, 12, 12)
QUICK = Shapes("scaled-down SD-1.5 (quick)", 64, (32, 64, 64, 64), 8, (16, 32, 32, 32), 8, 32, 2, 2)


def build_handle(shapes: Shapes, lora_rank: int | None, seed: int = 0) -> StableDiffusionHandle:
    """A random-init Stable Diffusion handle of `shapes`, with a random rank-`lora_rank` LoRA."""
    torch.manual_seed(seed)
    latent = shapes.image_size // 2 ** (len(shapes.vae_channels) - 1)
    unet: Any = UNet2DConditionModel(
        sample_size=latent, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=shapes.unet_channels, attention_head_dim=shapes.head_dim,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=shapes.text_width, norm_num_groups=shapes.norm_groups,
    )  # fmt: skip
    vae: Any = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=shapes.vae_channels, norm_num_groups=shapes.norm_groups,
        down_block_types=("DownEncoderBlock2D",) * len(shapes.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(shapes.vae_channels),
        sample_size=shapes.image_size,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=shapes.vocab_size, hidden_size=shapes.text_width,
            intermediate_size=4 * shapes.text_width, num_hidden_layers=shapes.text_layers,
            num_attention_heads=shapes.text_heads, max_position_embeddings=shapes.max_tokens,
            hidden_act="quick_gelu", projection_dim=shapes.text_width,
            pad_token_id=0, bos_token_id=1, eos_token_id=0,
        )
    )  # fmt: skip
    tokenizer = tiny_tokenizer()  # word-level stand-in for CLIP's BPE (no download)
    tokenizer.model_max_length = shapes.max_tokens
    if lora_rank is not None:
        spec = LoraSpec(rank=lora_rank, alpha=lora_rank, target_modules=ATTENTION_PROJECTIONS)
        add_lora(unet, spec, init_random=True)  # random up matrix: a fresh LoRA would be a no-op
    info = ModelInfo(instance_prompt="a photo of sks dog")
    return StableDiffusionHandle(unet, text_encoder, tokenizer, vae, info=info).eval()


def build_pairs(
    shapes: Shapes, device: torch.device, dtype: torch.dtype
) -> tuple[LoraPair, FullPair]:
    """Ours (one network with the adapter) and the official loop (two whole pipelines)."""
    with torch.device(device):  # initialise on the device: 1B parameters init fast there
        finetuned = build_handle(shapes, lora_rank=16).to(device, dtype)
        pretrained = build_handle(shapes, lora_rank=None).to(device, dtype)
    official = FullPair(pretrained, copy.deepcopy(finetuned))
    finetuned.vae.enable_slicing()  # ours decodes a batch of hundreds: one image at a time
    return LoraPair(finetuned), official


def check_agreement(ours: LoraPair, official: FullPair, dtype: torch.dtype, b: int = 5) -> str:
    """One pair forward of b samples: ours equals the official loop's (up to the dtype's
    rounding), and the adapter changes the prediction (else the check would be vacuous)."""
    c = instance_condition(ours)
    x = torch.randn((b, *ours.sample_shape), generator=torch.Generator().manual_seed(0))
    x, t = x.to(ours.device, dtype), torch.full((b,), 500, device=ours.device)
    with torch.inference_mode():
        mine = ours.predict_pair(x, x, t, ours.encode_pre([None] * b), ours.encode_ft([c] * b))
        theirs = official.predict_pair(
            x, x, t, official.encode_pre([None] * b), official.encode_ft([c] * b)
        )

    def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
        return float((a.float() - ref.float()).norm() / ref.float().norm())

    diff = max(rel(m, o) for m, o in zip(mine, theirs, strict=True))
    effect = rel(theirs[1], theirs[0])
    tol = 2e-2 if dtype == torch.float16 else 1e-4
    assert diff < tol, f"ours differs from the official loop: relative {diff:.1e} >= {tol}"
    assert effect > 5 * tol, f"the adapter barely changes ε ({effect:.1e}): check is vacuous"
    return f"ε agrees with the official loop (relative {diff:.1e}; adapter effect {effect:.2f})"
