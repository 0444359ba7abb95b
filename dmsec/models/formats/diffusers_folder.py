"""A diffusers model folder: a Stable Diffusion pipeline or a pixel-space `UNet2DModel`.

`model_index.json` naming `StableDiffusionPipeline` -> `StableDiffusionHandle` (every component
through `safe_load`, see `dmsec.models.stable_diffusion`); otherwise `model_index.json`, a `unet/`
folder or a bare `config.json` -> a DDPM-style `UNet2DModel` folder (`unet/` + `scheduler/`, the
tiny digit zoo's layout). The folder is a model of its own: it needs no base.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dmsec.errors import CheckpointError
from dmsec.models.formats.base import CheckpointFormat, Probe
from dmsec.models.weights import component_weights, load_weights_into, read_json, read_model_info

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel
    from dmsec.models.unet2d import UNet2DHandle

FOLDER_MARKERS = ("model_index.json", "unet", "config.json")


def load_unet2d_folder(folder: Path, allow_pickle: bool = False) -> UNet2DHandle:
    """A diffusers DDPM-style folder (unet/ + scheduler/) -> UNet2DHandle."""
    from diffusers import UNet2DModel

    from dmsec.models.schedule import load_scheduler_config
    from dmsec.models.unet2d import UNet2DHandle

    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    config = read_json(unet_dir / "config.json")
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise CheckpointError(
            unet_dir, f"expected a UNet2DModel, found {config.get('_class_name')!r}"
        )
    try:
        network = UNet2DModel.from_config(config)
    except Exception as exc:
        raise CheckpointError(
            unet_dir / "config.json", f"invalid UNet2DModel config: {exc}"
        ) from None
    load_weights_into(network, component_weights(unet_dir, allow_pickle), unet_dir)
    return UNet2DHandle(network.eval(), load_scheduler_config(folder), read_model_info(folder))


class DiffusersFolder(CheckpointFormat):
    """A diffusers folder (`model_index.json`, `unet/` or a UNet's `config.json`)."""

    name = "diffusers-folder"
    title = "diffusers model folder"
    kind = "model"
    file_names = ("model_index.json", "unet/config.json")

    def matches(self, probe: Probe) -> bool:
        return probe.folder_files is not None and any(
            m in probe.folder_files for m in FOLDER_MARKERS
        )

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        index = path / "model_index.json"
        if index.exists() and read_json(index).get("_class_name") == "StableDiffusionPipeline":
            from dmsec.models.stable_diffusion import load_stable_diffusion_folder

            return load_stable_diffusion_folder(path, allow_pickle=allow_pickle)
        return load_unet2d_folder(path, allow_pickle)
