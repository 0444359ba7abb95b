"""Noise schedules, stored the way diffusers stores them (`scheduler/scheduler_config.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler

DEFAULT_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    # The cosine schedule (Nichol & Dhariwal 2021) suits 16x16 images better than the linear one:
    # it does not destroy the signal in the first tenth of the steps.
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "clip_sample": True,
}


def make_scheduler(config: dict[str, Any] | None = None) -> Any:
    """A diffusers DDPMScheduler from a config dict (the default above when None)."""
    return DDPMScheduler.from_config({**DEFAULT_SCHEDULE, **(config or {})})


def alphas_cumprod(config: dict[str, Any] | None = None) -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 of a scheduler config."""
    return make_scheduler(config).alphas_cumprod.to(torch.float32).clone()


def save_scheduler(folder: Path, config: dict[str, Any] | None = None) -> None:
    """Write `scheduler/scheduler_config.json` under a model folder."""
    make_scheduler(config).save_pretrained(str(folder / "scheduler"))


def load_scheduler_config(folder: Path) -> dict[str, Any]:
    """Read a model folder's scheduler config; the default schedule when the folder has none."""
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.exists():
        return dict(DEFAULT_SCHEDULE)
    config = json.loads(path.read_text())
    if config.get("prediction_type", "epsilon") != "epsilon":
        from dmsec.errors import CheckpointError

        raise CheckpointError(
            path, f"prediction_type {config['prediction_type']!r} is not supported"
        )
    return {k: v for k, v in config.items() if not k.startswith("_")}
