"""One diffusers UNet's weights in a single `.safetensors` (`conv_in.weight`, `down_blocks.*`).

What `UNet2DHandle.save_single_file` writes and what some hubs carry as a "UNet-only" fine-tune:
the tensors load strictly into a copy of the base's network (same architecture, no conversion),
giving a `FullPair` against the base.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmsec.models.family import Family, family_of_unet_weights
from dmsec.models.formats.base import CheckpointFormat, Probe, any_key
from dmsec.models.formats.ldm import LDM_UNET_PREFIX
from dmsec.models.formats.peft_lora import has_lora_keys
from dmsec.models.formats.unsupported import variant_of
from dmsec.models.weights import load_weights_into

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel


class DiffusersUnet(CheckpointFormat):
    """A diffusers UNet's state dict in one file."""

    name = "diffusers-unet"
    title = "diffusers UNet weights"
    kind = "full"

    def matches(self, probe: Probe) -> bool:
        keys = probe.tensor_names
        return (
            not probe.is_folder
            and "conv_in.weight" in keys
            and any_key(keys, ("down_blocks.",))
            and not any_key(keys, (LDM_UNET_PREFIX,))
            and not has_lora_keys(keys)
            and variant_of(keys) is None
        )

    def family(self, header: Mapping[str, Any]) -> Family:
        return family_of_unet_weights(header)

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        from dmsec.models.safe_load import load_state_dict

        assert base is not None
        load_weights_into(base.network, load_state_dict(path, allow_pickle=allow_pickle), path)
        return base
