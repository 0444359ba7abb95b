"""The base-model family a checkpoint belongs to: SD 1.x, SD 2.x, SDXL, SD 3, FLUX.1, others.

Told three ways, cheapest first:
- from a weights file's header (tensor names and shapes, no data): the width of the text
  conditioning the UNet's cross-attention reads (`attn2.to_k`'s input dimension: 768 for SD 1.x's
  CLIP ViT-L, 1024 for SD 2.x's OpenCLIP ViT-H, 2048 for SDXL's two encoders, 1280 for the SDXL
  refiner), a second text encoder (`lora_te2_*`, `text_encoder_2.*`: SDXL), transformer block
  names (FLUX.1 and SD 3 are not UNets); full single-file checkpoints go through diffusers'
  own `infer_diffusers_model_type`, fed shape-only (meta) tensors;
- from a loaded base model's UNet config (`cross_attention_dim`, `addition_embed_type`);
- from a hub's metadata: Civitai's `baseModel` ("SD 1.5", "SDXL 1.0", "Pony", "Flux.1 D") and a
  Hugging Face card's `base_model` ("stabilityai/stable-diffusion-xl-base-1.0").
A family is "unknown" when nothing names it; its cross-attention width may still be known (the
tiny zoos are SD-shaped at width 64). `check_compatible` refuses an adapter or checkpoint whose
family or width differs from the base it is applied to, with a reason that names both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dmsec.errors import CheckpointError

logger = logging.getLogger(__name__)

TITLES = {
    "sd1": "SD 1.x",
    "sd2": "SD 2.x",
    "sdxl": "SDXL",
    "sdxl-refiner": "SDXL refiner",
    "sd3": "SD 3",
    "flux": "FLUX.1",
    "unet2d": "a pixel-space UNet2DModel (no text conditioning)",
    "unknown": "an unnamed family",
}
WIDTH_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl-refiner"}
FAMILY_WIDTHS = {name: width for width, name in WIDTH_FAMILIES.items()}
TRANSFORMER_FAMILIES = ("sd3", "flux")  # no UNet: nothing of theirs fits a UNet base
# diffusers' `infer_diffusers_model_type` names -> our family names
_DIFFUSERS_TYPES = {
    "v2": "sd2", "inpainting_v2": "sd2", "xl_base": "sdxl", "xl_inpaint": "sdxl",
    "playground-v2-5": "sdxl", "xl_refiner": "sdxl-refiner", "sd3": "sd3", "sd35_medium": "sd3",
    "sd35_large": "sd3",
}  # fmt: skip
# hub names (Civitai `baseModel`, HF repo ids), matched case-insensitively, first match wins
_HUB_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"refiner", "sdxl-refiner"),
    (r"\bsdxl\b|stable-diffusion-xl|\bpony\b|illustrious|noobai|playground[ -]?v2\.5", "sdxl"),
    (r"\bsd ?3|stable-diffusion-3", "sd3"),
    (r"\bflux", "flux"),
    (r"\bsd ?2(\.\d)?\b|stable-diffusion-2", "sd2"),
    (r"\bsd ?1(\.\d)?\b|stable-diffusion-v1|stable-diffusion-v-1|sd-v1", "sd1"),
)


class FamilyMismatchError(CheckpointError):
    """A fine-tune or adapter made for one model family, applied to a base of another."""


@dataclass(frozen=True)
class Family:
    """A model family, the cross-attention width that goes with it, and what told us."""

    name: str = "unknown"
    cross_attention_dim: int | None = None
    evidence: str = ""

    @property
    def known(self) -> bool:
        return self.name != "unknown"

    def describe(self) -> str:
        """E.g. "SDXL (cross-attention width 2048; from lora_te2_* keys)"."""
        title = TITLES.get(self.name, self.name)
        details = [f"cross-attention width {self.cross_attention_dim}"] * bool(
            self.cross_attention_dim
        )
        details += [self.evidence] * bool(self.evidence)
        return f"{title} ({'; '.join(details)})" if details else title


def _from_width(width: int | None, evidence: str) -> Family:
    return Family(WIDTH_FAMILIES.get(width or 0, "unknown"), width, evidence)


def shapes_of(header: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a safetensors header (or a state dict of tensors)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for key, value in header.items():
        if key == "__metadata__":
            continue
        shape = value.get("shape") if isinstance(value, dict) else getattr(value, "shape", None)
        if isinstance(shape, list | tuple) and all(isinstance(d, int) for d in shape):
            shapes[key] = tuple(int(d) for d in shape)
    return shapes


def _cross_attention_width(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int | None, str]:
    """The input width of a cross-attention key/value projection, from any layout's names."""
    patterns = (
        r"attn2[._]to_[kv](\.weight|\.lora_A\.weight|\.lora_down\.weight|_lora\.down\.weight)$",
        r"attn2[._]processor[._]to_[kv]_lora[._]down\.weight$",
    )
    for key in sorted(shapes):
        if any(re.search(p, key) for p in patterns) and len(shapes[key]) == 2:
            return shapes[key][-1], f"{key} is {list(shapes[key])}"
    return None, ""


def family_of_adapter(header: Mapping[str, Any]) -> Family:
    """The family a LoRA file (PEFT, diffusers or kohya layout) was trained for."""
    shapes = shapes_of(header)
    keys = list(shapes)
    if any(
        k.startswith(("lora_unet_double_blocks", "lora_unet_single_blocks")) for k in keys
    ) or any("single_transformer_blocks" in k or "x_embedder" in k for k in keys):
        return Family("flux", 4096, "FLUX.1 transformer block names")
    if any("joint_blocks" in k or "context_block" in k for k in keys):
        return Family("sd3", None, "SD 3 joint transformer block names")
    width, evidence = _cross_attention_width(shapes)
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys):
        return Family("sdxl", width or 2048, "a second text encoder's LoRA keys")
    if width is not None:
        return _from_width(width, evidence)
    if any(k.startswith(("lora_unet_input_blocks", "lora_unet_output_blocks")) for k in keys):
        return Family("sdxl", None, "kohya's SDXL (sgm) block names")
    for key in sorted(keys):  # a text-encoder-only LoRA: CLIP-L is 768 wide, OpenCLIP-H 1024
        if re.search(r"(q_proj|self_attn_q_proj)[._](lora_A|lora_down)\.weight$", key):
            width = shapes[key][-1]
            name = {768: "sd1", 1024: "sd2"}.get(width, "unknown")
            return Family(name, None, f"text encoder width {width} ({key})")
    return Family()


def family_of_checkpoint(header: Mapping[str, Any]) -> Family:
    """The family of a full single-file checkpoint in the original (LDM) layout."""
    import torch
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    shapes = shapes_of(header)
    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    try:
        model_type = str(infer_diffusers_model_type(meta))
    except Exception as exc:  # a branch that reads values cannot run on shapes alone
        logger.info("infer_diffusers_model_type on shapes failed: %s", exc)
        model_type = "v1"
    width, evidence = _cross_attention_width(shapes)
    if model_type in ("v1", "inpainting"):  # diffusers' fallback: decide by the width
        return _from_width(width, evidence or "no cross-attention weights")
    name = _DIFFUSERS_TYPES.get(model_type, "flux" if model_type.startswith("flux") else model_type)
    return Family(name, width, f"diffusers infers {model_type!r}")


def family_of_unet_weights(header: Mapping[str, Any]) -> Family:
    """The family of one diffusers UNet's weights, from its cross-attention width."""
    return _from_width(*_cross_attention_width(shapes_of(header)))


def family_of_unet_config(config: Mapping[str, Any], class_name: str) -> Family:
    """The family of a loaded network from its diffusers config."""
    if class_name == "UNet2DModel":
        return Family("unet2d", None, "UNet2DModel")
    width = config.get("cross_attention_dim")
    if isinstance(width, list | tuple):
        width = width[0] if width else None
    width = int(width) if isinstance(width, int) else None
    if config.get("addition_embed_type") == "text_time":
        name = "sdxl-refiner" if width == 1280 else "sdxl"
        return Family(name, width, "UNet with SDXL's text_time embedding")
    if width in (2048, 1280):  # SDXL widths without SDXL's added embedding: not SDXL
        return Family("unknown", width, "UNet config")
    return _from_width(width, "UNet config")


def family_of_handle(handle: Any) -> Family:
    """The family of a loaded model handle (its noise-prediction network)."""
    network = handle.network
    return family_of_unet_config(dict(network.config), type(network).__name__)


def family_from_hub(name: str | None) -> str | None:
    """Our family name for a hub's base-model string, or None when it names none we know."""
    if not isinstance(name, str) or not name.strip():
        return None
    text = name.strip().lower()
    for pattern, family in _HUB_PATTERNS:
        if re.search(pattern, text):
            return family
    return None


def named_family(name: str, evidence: str) -> Family:
    """A family known only by name (e.g. from a hub), with the width that name implies."""
    return Family(name, FAMILY_WIDTHS.get(name), evidence)


def check_compatible(path: Any, what: Family, base: Family, kind: str = "LoRA") -> None:
    """Raise `FamilyMismatchError` when `what` cannot apply to `base` (family or width)."""
    names_differ = what.known and base.known and what.name != base.name
    widths_differ = (
        what.cross_attention_dim is not None
        and base.cross_attention_dim is not None
        and what.cross_attention_dim != base.cross_attention_dim
    )
    no_text = base.name == "unet2d" and what.cross_attention_dim is not None
    no_unet = what.name in TRANSFORMER_FAMILIES and base.name not in TRANSFORMER_FAMILIES
    if names_differ or widths_differ or no_text or no_unet:
        raise FamilyMismatchError(
            path,
            f"base-model family mismatch: this {kind} is for {what.describe()}, "
            f"but the configured base model is {base.describe()}",
        )
