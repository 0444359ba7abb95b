"""Load model handles from local files: diffusers folders, single `.safetensors` files, LoRA files.

- a diffusers folder (`model_index.json`, or a bare `unet/`) -> a full model handle;
- a LoRA file in the PEFT, diffusers or kohya layout (`pytorch_lora_weights.safetensors`, any
  `.safetensors` whose tensors say LoRA, or a folder holding one) -> the base model (given by
  `base`) with the adapter injected: adapter off = pretrained, on = fine-tuned;
- a single-file full checkpoint in the original SD layout (`model.diffusion_model.*`, see
  `single_file`) or a `.safetensors` of diffusers UNet weights -> the base model's architecture
  with these weights (a `FullPair` against the base);
- a folder holding one `.safetensors` of any name and a `dmsec_model.json` card -> that file,
  with the card's base model and instance prompt.
A file's format is told from its header (`detect`); an adapter or checkpoint made for another
model family than the base's is a `FamilyMismatchError`, a LyCORIS variant we cannot load an
`UnsupportedAdapterError`, and weights that are no diffusion model a `NotDiffusionWeightsError`.

Weights are always read through `safe_load` (never diffusers' own loader, which would fall back to
pickled `.bin` files); every problem is a `CheckpointError` naming the file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from dmsec.errors import CheckpointError
from dmsec.models.base import DiffusionModel
from dmsec.models.detect import NotDiffusionWeightsError, UnsupportedAdapterError, detect_file
from dmsec.models.family import (
    check_compatible,
    family_of_adapter,
    family_of_checkpoint,
    family_of_handle,
    named_family,
)
from dmsec.models.lora import LORA_WEIGHTS_NAME, load_lora
from dmsec.models.pair import ModelPair
from dmsec.models.safe_load import is_pickle_file, load_state_dict, read_safetensors_header
from dmsec.models.schedule import load_scheduler_config
from dmsec.models.unet2d import MODEL_CARD, ModelInfo, UNet2DHandle

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")


def read_model_info(folder: Path) -> ModelInfo:
    """The folder's `dmsec_model.json`, or defaults when it has none."""
    card = folder / MODEL_CARD
    if not card.exists():
        return ModelInfo()
    try:
        return ModelInfo.from_dict(json.loads(card.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(card, f"unreadable model card: {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(path, "missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, "expected a JSON object")
    return data


def component_weights(folder: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Load the weights file of one diffusers/transformers component folder."""
    for name in WEIGHT_NAMES:
        if (folder / name).exists():
            return load_state_dict(folder / name, allow_pickle=allow_pickle)
    pickles = [p for p in folder.glob("*") if is_pickle_file(p)]
    if pickles:
        return load_state_dict(pickles[0], allow_pickle=allow_pickle)
    raise CheckpointError(folder, f"no weights file ({' or '.join(WEIGHT_NAMES)})")


def load_weights_into(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path
) -> None:
    """Strictly load `state` into `module`; missing, unexpected or mis-shaped tensors are errors."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            source,
            f"weights do not fit the architecture: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})",
        )
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise CheckpointError(
                source,
                f"tensor {key!r} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}",
            )
    module.load_state_dict(state, strict=True)


def load_unet2d_folder(folder: Path, allow_pickle: bool = False) -> UNet2DHandle:
    """A diffusers DDPM-style folder (unet/ + scheduler/) -> UNet2DHandle."""
    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    config = _read_json(unet_dir / "config.json")
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


def load_model(
    path: str | Path,
    base: str | Path | DiffusionModel | None = None,
    *,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    family: str | None = None,
) -> DiffusionModel:
    """Load any supported checkpoint; fine-tunes given as weights only need `base`.

    `family` is what a hub's metadata says the checkpoint was made for ("sd1", "sdxl", ...); it
    is checked against the base when the file's own tensors do not tell.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "does not exist")
    if path.is_dir():
        lora_file = path / LORA_WEIGHTS_NAME
        if lora_file.exists() and not (path / "unet").exists():
            return _load_lora_on(lora_file, base, device, allow_pickle, family)
        index = path / "model_index.json"
        if index.exists() and _read_json(index).get("_class_name") == "StableDiffusionPipeline":
            from dmsec.models.stable_diffusion import load_stable_diffusion_folder

            return load_stable_diffusion_folder(path, allow_pickle=allow_pickle).to(device)
        if index.exists() or (path / "unet").is_dir() or (path / "config.json").exists():
            return load_unet2d_folder(path, allow_pickle).to(device)
        weights = sorted(path.glob("*.safetensors"))
        if len(weights) == 1:  # a kohya LoRA or single-file checkpoint of any name, + its card
            return load_model(weights[0], base, device=device, allow_pickle=allow_pickle, family=family)  # fmt: skip
        raise CheckpointError(path, "not a diffusers model folder (no model_index.json or unet/)")
    if is_pickle_file(path):
        load_state_dict(
            path, allow_pickle=allow_pickle
        )  # refuses unless opted in and scanned clean
        raise CheckpointError(
            path, "single-file pickle checkpoints are not supported; convert to safetensors"
        )
    if path.suffix != ".safetensors":
        raise CheckpointError(path, f"unknown checkpoint format {path.suffix!r}")
    detected = detect_file(path)
    if detected.format == "other":
        raise NotDiffusionWeightsError(path, detected.reason)
    if detected.format == "unsupported":
        raise UnsupportedAdapterError(path, detected.reason)
    if detected.is_lora:
        return _load_lora_on(path, base, device, allow_pickle, family)
    return _load_single_file(path, base, device, allow_pickle, family)


def _resolve_base(
    base: str | Path | DiffusionModel | None, what: Path, allow_pickle: bool
) -> DiffusionModel:
    if base is None and (what.parent / MODEL_CARD).exists():
        named = read_model_info(what.parent).base_model  # the card beside the weights names it
        base = (what.parent / named).resolve() if named else None
    if base is None:
        raise CheckpointError(what, "is a fine-tune given as weights only: pass its base model")
    if isinstance(base, DiffusionModel):
        return copy.deepcopy(base)  # the caller's handle (e.g. a warm base) stays untouched
    return load_model(base, allow_pickle=allow_pickle)


def _check_family(path: Path, handle: DiffusionModel, declared: str | None, kind: str) -> None:
    """The file's family (or, when its tensors tell nothing, the hub's `declared` one) must fit
    the base's."""
    header = read_safetensors_header(path)
    found = family_of_adapter(header) if kind == "LoRA" else family_of_checkpoint(header)
    if not found.known and found.cross_attention_dim is None and declared:
        found = named_family(declared, "from the hub's metadata")
    check_compatible(path, found, family_of_handle(handle), kind)


def _with_card(handle: DiffusionModel, weights: Path, kind: str) -> DiffusionModel:
    """The handle, its info updated from the card beside `weights` (base, instance prompt)."""
    card = read_model_info(weights.parent)
    info = getattr(handle, "info", None) or ModelInfo()
    handle.info = ModelInfo(  # type: ignore[attr-defined]
        **{
            **info.__dict__,
            "kind": kind,
            "base_model": card.base_model,
            "instance_prompt": card.instance_prompt or info.instance_prompt,
        }
    )
    return handle


def _load_lora_on(
    lora_file: Path,
    base: str | Path | DiffusionModel | None,
    device: str | torch.device,
    allow_pickle: bool,
    family: str | None = None,
) -> DiffusionModel:
    handle = _resolve_base(base, lora_file, allow_pickle)
    _check_family(lora_file, handle, family, "LoRA")
    load_lora(handle.network, lora_file, text_encoder=getattr(handle, "text_encoder", None))
    # the adapter's card names its base and (text models) its instance prompt
    return _with_card(handle, lora_file, "lora").to(device)


def _load_single_file(
    path: Path,
    base: str | Path | DiffusionModel | None,
    device: str | torch.device,
    allow_pickle: bool,
    family: str | None = None,
) -> DiffusionModel:
    handle = _resolve_base(base, path, allow_pickle)
    state = load_state_dict(path, allow_pickle=allow_pickle)
    if detect_file(path).format == "ldm-checkpoint":
        from dmsec.models.single_file import load_ldm_into

        _check_family(path, handle, family, "checkpoint")
        load_ldm_into(handle, state, path)
    else:
        load_weights_into(handle.network, state, path)
    return _with_card(handle, path, "full").to(device)


def load_pair(
    checkpoint: str | Path,
    base: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    allow_pickle: bool = False,
) -> ModelPair:
    """(pretrained, fine-tuned) for a checkpoint; `base` defaults to the one its model card names."""
    from dmsec.models.pair import make_pair

    checkpoint = Path(checkpoint)
    if base is None and checkpoint.is_dir() and read_model_info(checkpoint).base_model:
        base = (checkpoint / str(read_model_info(checkpoint).base_model)).resolve()
    if base is None:
        raise CheckpointError(checkpoint, "does not name its base model: give one (--base)")
    pretrained = load_model(base, allow_pickle=allow_pickle).to(device, dtype)
    finetuned = load_model(checkpoint, base=base, allow_pickle=allow_pickle).to(device, dtype)
    return make_pair(pretrained, finetuned)
