"""The protector interface: perturb images so a diffusion model learns them badly.

A protector is built around one model (the one the protection is computed against), checks on
construction that it can use it, and turns a batch of images in [0, 1] into a `ProtectionResult`.
Protectors are registered by their short `name`, which the CLI and job configs select.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from dmsec.models.base import DiffusionModel
from dmsec.plugins import Registry


@dataclass
class ProtectionResult:
    """Protected images and how far each moved from its original (all on the CPU, per image).

    `loss_clean` / `loss_protected` are the model's training loss on the original / protected
    image under the same held-out (t, ε) draws (NaN when not evaluated).
    """

    images: torch.Tensor  # (B, C, H, W) in [0, 1]
    delta: torch.Tensor  # images − originals
    psnr: torch.Tensor  # (B,) dB
    ssim: torch.Tensor  # (B,)
    linf: torch.Tensor  # (B,) ‖δ‖∞
    loss_clean: torch.Tensor  # (B,)
    loss_protected: torch.Tensor  # (B,)
    seeds: list[int]
    config: dict[str, Any]

    def __len__(self) -> int:
        return len(self.images)


class Protector(ABC):
    """Computes protective perturbations against one model."""

    #: unique short name, used by the CLI, job configs and manifests
    name: ClassVar[str]

    @abstractmethod
    def __init__(self, model: DiffusionModel, config: Any = None) -> None:
        """Build against `model` with the protector's own config (None: its defaults); check
        here that the model offers what the method needs."""

    @abstractmethod
    def protect(
        self,
        images: torch.Tensor,
        seeds: Sequence[int] | None = None,
        progress: bool = False,
    ) -> ProtectionResult:
        """Protect images (B, C, H, W) in [0, 1]; image i uses `seeds[i]` (default seed + i)."""

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """The resolved configuration, JSON-able (recorded next to every output)."""


PROTECTORS: Registry[Protector] = Registry(
    "protector",
    {"advdm": "dmsec.protect.advdm:AdvDM", "random-noise": "dmsec.protect.noise:RandomNoise"},
)

#: class decorator: make a protector selectable by its `name`
register_protector = PROTECTORS.register
#: the protector class registered under a name
protector_class = PROTECTORS.get
