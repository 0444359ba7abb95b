"""LoRA in the PEFT / diffusers layout: dmsec's and PEFT's files, diffusers' `save_lora_weights`.

Keys `*.lora_A.weight` / `*.lora_B.weight`: unprefixed for the UNet in dmsec's `save_lora` and
peft's `save_lora_adapter` (`pytorch_lora_weights.safetensors`, `adapter_model.safetensors`, the
peft config as JSON in the safetensors metadata `lora_config`), prefixed `unet.` /
`text_encoder.` / `text_encoder_2.` by diffusers' `save_lora_weights`; the spelling diffusers'
training scripts save (`*.lora.down.weight`, `*.lora_linear_layer.up.weight`, mixed with
`lora_A/B`) and diffusers' older `*_lora.down.weight` spelling too. Any tensor name containing "lora" (outside kohya's names and
the unsupported variants) counts, so a damaged adapter is still reported as one. Loading: each
part is injected into its component through peft (`dmsec.models.lora`), ranks per module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmsec.models.family import Family, family_of_adapter
from dmsec.models.formats.base import CheckpointFormat, Probe, any_key
from dmsec.models.formats.kohya import KOHYA_PREFIXES
from dmsec.models.formats.unsupported import variant_of
from dmsec.models.weights import LORA_WEIGHTS_NAME

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel

PEFT_WEIGHTS_NAME = "adapter_model.safetensors"


def has_lora_keys(keys: tuple[str, ...]) -> bool:
    """Whether any tensor name says LoRA (`lora_A/B`, diffusers' `_lora.down`, kohya's, ...)."""
    return any("lora" in k.lower() for k in keys)


class PeftLora(CheckpointFormat):
    """PEFT / diffusers LoRA (`*.lora_A.weight`, optional `unet.` / `text_encoder.` prefixes)."""

    name = "peft-lora"
    title = "PEFT / diffusers LoRA"
    kind = "adapter"
    file_names = (LORA_WEIGHTS_NAME, PEFT_WEIGHTS_NAME)

    def matches(self, probe: Probe) -> bool:
        keys = probe.tensor_names
        return (
            not probe.is_folder
            and has_lora_keys(keys)
            and not any_key(keys, KOHYA_PREFIXES)
            and variant_of(keys) is None
        )

    def family(self, header: Mapping[str, Any]) -> Family:
        return family_of_adapter(header)

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        from dmsec.models.lora import config_from_metadata, inject_lora_state
        from dmsec.models.safe_load import load_state_dict, safetensors_metadata

        assert base is not None
        config = config_from_metadata(safetensors_metadata(path))
        inject_lora_state(base, load_state_dict(path), path, config)
        return base
