"""A training run's state on disk, for checkpoint and resume: safetensors and JSON, no pickle.

Folder layout (one folder per checkpoint; Ray Train merges the workers' files into one):

    trainer.json               step, world size and the resolved training config   (rank 0)
    state.safetensors          trainable tensors "param/<name>" (for Bayesian layers μ and σ)
                               and optimiser state "optim/<name>/<key>"             (rank 0)
    rng-rank<r>.safetensors    worker r's generators: its batch/noise stream and torch's global
                               ones (weight noise ξ; CPU, and CUDA when in use), so a resumed
                               run continues bit for bit

Only trainable tensors are stored: the frozen ones (a LoRA's base, the Gaussian priors) are
rebuilt from the base model when the trainer is set up again before `load_training_state`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from dmsec.errors import CheckpointError
from dmsec.models.safe_load import load_state_dict

TRAINER_JSON = "trainer.json"
STATE_FILE = "state.safetensors"


def rng_file(rank: int) -> str:
    return f"rng-rank{rank}.safetensors"


def save_training_state(
    folder: str | Path,
    *,
    params: Sequence[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rank: int,
    meta: dict[str, Any],
) -> Path:
    """Write worker `rank`'s share of the state into `folder` (rank 0 writes the shared part).

    `params` are the optimiser's parameters, named, in the optimiser's order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = {"rng/batch": generator.get_state(), "rng/global": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["rng/cuda"] = torch.cuda.get_rng_state()  # weight noise ξ drawn on the GPU
    save_file(rng, str(folder / rng_file(rank)))
    if rank != 0:
        return folder
    tensors: dict[str, torch.Tensor] = {}
    state = optimizer.state_dict()["state"]
    for index, (name, param) in enumerate(params):
        tensors[f"param/{name}"] = param.detach().cpu().contiguous()
        for key, value in state.get(index, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(folder / STATE_FILE))
    (folder / TRAINER_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return folder


def read_training_meta(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's `trainer.json` (step, world size, config)."""
    path = Path(folder) / TRAINER_JSON
    if not path.exists():
        raise CheckpointError(path, "missing: not a training-state checkpoint")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("step"), int):
        raise CheckpointError(path, "expected a JSON object with an integer `step`")
    return data


def load_training_state(
    folder: str | Path,
    *,
    params: Sequence[tuple[str, nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rank: int,
) -> dict[str, Any]:
    """Load a checkpoint written by `save_training_state` into a freshly set-up trainer.

    Returns the metadata, plus `"rng_restored": False` when this rank has no generator file
    (the run was checkpointed with fewer workers); the caller then reseeds the rank.
    """
    folder = Path(folder)
    meta = read_training_meta(folder)
    state = load_state_dict(folder / STATE_FILE)
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for index, (name, param) in enumerate(params):
            key = f"param/{name}"
            if key not in state:
                raise CheckpointError(folder / STATE_FILE, f"no tensor {key!r}")
            if state[key].shape != param.shape:
                raise CheckpointError(
                    folder / STATE_FILE,
                    f"{key}: shape {tuple(state[key].shape)}, expected {tuple(param.shape)}",
                )
            param.copy_(state[key])
            prefix = f"optim/{name}/"
            moments = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if moments:
                optim_state[index] = {k: v.to(param.device) for k, v in moments.items()}
    expected = {f"param/{name}" for name, _ in params}
    unexpected = sorted(k for k in state if k.startswith("param/") and k not in expected)
    if unexpected:
        raise CheckpointError(
            folder / STATE_FILE, f"parameters this trainer does not have: {unexpected[:3]}"
        )
    optimizer.load_state_dict(
        {"state": optim_state, "param_groups": optimizer.state_dict()["param_groups"]}
    )
    rng_path = folder / rng_file(rank)
    meta["rng_restored"] = rng_path.exists()
    if rng_path.exists():
        rng = load_state_dict(rng_path)
        generator.set_state(rng["rng/batch"])
        torch.set_rng_state(rng["rng/global"])
        if "rng/cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["rng/cuda"])
    return meta
