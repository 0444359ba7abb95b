"""What a weights file holds, told from its safetensors header alone (tensor names, never data).

Formats (`weights_format`), checked in this order:
- an unsupported LyCORIS / adapter variant, named by its keys: LoHa (`hada_w1_a`), LoKr
  (`lokr_w1`), Tucker-decomposed LoCon (`lora_mid`), DoRA (`dora_scale`), OFT, (IA)^3, GLoRA,
  full-difference (`.diff`) -> "unsupported", with the variant's name as the reason;
- "kohya-lora": kohya-ss / LyCORIS LoRA and LoCon, module names flattened with underscores
  (`lora_unet_*`, `lora_te_*`, `lora_te1_*`, `lora_te2_*`) and `.lora_down.weight`,
  `.lora_up.weight`, `.alpha` per module;
- "peft-lora": LoRA in the PEFT / diffusers layout (`*.lora_A.weight` / `*.lora_B.weight`, or
  diffusers' older `*_lora.down.weight`; any tensor name containing "lora" counts, so a damaged
  adapter is still reported as one); diffusers' `save_lora_weights` prefixes the keys `unet.` /
  `text_encoder.`, dmsec's `save_lora` writes the UNet's without a prefix;
- "ldm-checkpoint": a full model in the original Stable Diffusion single-file layout
  (`model.diffusion_model.*`, with or without `first_stage_model.*` and `cond_stage_model.*`);
- "diffusers-unet": one diffusers UNet's weights (`conv_in.weight` and `down_blocks.*`);
- "other": none of these — not diffusion weights (a text model, an embedding, an unrelated net).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dmsec.errors import CheckpointError

WeightsFormat = Literal[
    "unsupported", "kohya-lora", "peft-lora", "ldm-checkpoint", "diffusers-unet", "other"
]
LORA_FORMATS = ("kohya-lora", "peft-lora")
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
LDM_UNET_PREFIX = "model.diffusion_model."

# key fragment -> the variant it marks; each is a different weight parameterisation than LoRA's
# low-rank product, so loading it as LoRA would be silently wrong.
UNSUPPORTED_MARKERS: tuple[tuple[str, str], ...] = (
    ("hada_w1_a", "LyCORIS LoHa (Hadamard-product adapter, hada_* keys)"),
    ("lokr_w1", "LyCORIS LoKr (Kronecker-product adapter, lokr_* keys)"),
    ("lokr_w2", "LyCORIS LoKr (Kronecker-product adapter, lokr_* keys)"),
    (".lora_mid.", "LyCORIS LoCon with Tucker decomposition (lora_mid keys)"),
    ("dora_scale", "DoRA (dora_scale keys)"),
    ("oft_blocks", "OFT (oft_blocks keys)"),
    (".oft_diag", "OFT (oft_diag keys)"),
    (".on_input", "(IA)^3 (on_input keys)"),
    (".a1.weight", "LyCORIS GLoRA (a1/a2/b1/b2 keys)"),
)
DIFF_SUFFIXES = (".diff", ".diff_b")  # LyCORIS "full" adapters: a whole weight difference


class NotDiffusionWeightsError(CheckpointError):
    """A readable weights file that holds no diffusion model or adapter: skipped, not an error."""


class UnsupportedAdapterError(CheckpointError):
    """An adapter variant this version recognises but cannot load (LoHa, LoKr, DoRA, ...)."""


@dataclass(frozen=True)
class Detected:
    """A weights file's format, and for "unsupported" / "other" the reason in words."""

    format: WeightsFormat
    reason: str = ""

    @property
    def is_lora(self) -> bool:
        """Whether the file is an adapter (loadable or not) rather than a full model."""
        return self.format in LORA_FORMATS or self.format == "unsupported"


def tensor_names(header: Mapping[str, Any]) -> list[str]:
    """The tensor names of a safetensors header (or of a state dict)."""
    return [k for k in header if k != "__metadata__"]


def weights_format(names: Iterable[str]) -> Detected:
    """Classify a weights file by its tensor names (see the module docstring)."""
    keys = [k for k in names if k != "__metadata__"]
    for marker, variant in UNSUPPORTED_MARKERS:
        hit = next((k for k in keys if marker in k), None)
        if hit is not None:
            return Detected("unsupported", f"{variant} is not supported yet (e.g. {hit!r})")
    diff = next((k for k in keys if k.endswith(DIFF_SUFFIXES)), None)
    if diff is not None:
        reason = (
            f"LyCORIS full-difference weights (.diff keys) are not supported yet (e.g. {diff!r})"
        )
        return Detected("unsupported", reason)
    if any(k.startswith(KOHYA_PREFIXES) for k in keys):
        return Detected("kohya-lora")
    if any("lora" in k.lower() for k in keys):  # lora_A/B, diffusers' `to_q_lora.down`, ...
        return Detected("peft-lora")
    if any(k.startswith(LDM_UNET_PREFIX) for k in keys):
        return Detected("ldm-checkpoint")
    if "conv_in.weight" in keys and any(k.startswith("down_blocks.") for k in keys):
        return Detected("diffusers-unet")
    example = ", ".join(repr(k) for k in sorted(keys)[:2]) or "no tensors"
    return Detected(
        "other",
        f"not diffusion weights: {len(keys)} tensors in no UNet, LoRA or Stable Diffusion "
        f"layout (e.g. {example})",
    )


def detect_file(path: str | Path) -> Detected:
    """`weights_format` of a safetensors file, reading (and validating) only its header."""
    from dmsec.models.safe_load import read_safetensors_header

    return weights_format(tensor_names(read_safetensors_header(path)))
