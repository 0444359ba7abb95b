"""Reading a model folder's pieces: JSON configs, component weights, the model card, strict loads.

The floor under every loader (`stable_diffusion`, `formats/*`, `loading`): it imports no other
loader, so the model packages have no import circle. Weights are always read through `safe_load`
(never diffusers' own loader, which would fall back to pickled `.bin` files); every problem is a
`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dmsec.errors import CheckpointError
from dmsec.models.safe_load import is_pickle_file, load_state_dict
from dmsec.models.unet2d import MODEL_CARD, ModelInfo

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"  # dmsec's, PEFT's and diffusers' LoRA file


def read_model_info(folder: Path) -> ModelInfo:
    """The folder's `dmsec_model.json`, or defaults when it has none."""
    card = folder / MODEL_CARD
    if not card.exists():
        return ModelInfo()
    try:
        return ModelInfo.from_dict(json.loads(card.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(card, f"unreadable model card: {exc}") from None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file; missing, invalid or not an object is a `CheckpointError`."""
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
