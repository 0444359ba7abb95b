"""Random ±ε sign noise: the control every protection is compared with (AdvDM's paper, Mist).

Each pixel and channel moves by +ε or −ε, uniformly at random, from the image's own seeded
stream (image i: `seeds[i]`, default seed + i), then the image is clamped to [0, 1] and snapped to
the 8-bit grid inside the ε-ball, like AdvDM's output. It uses no model gradient, so a protector
that does no better than it at the same budget protects by its budget, not by its method. The
model is only used to report the training loss on clean vs noisy images under the same held-out
draws as AdvDM's report (`eval_draws`, 0 skips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from dmsec.errors import ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.protect.advdm import EVAL_SEED_OFFSET, PAPER_EPS, quantize_in_ball
from dmsec.protect.base import ProtectionResult, Protector, register_protector
from dmsec.protect.objective import expected_loss
from dmsec.protect.quality import psnr, ssim


@dataclass(frozen=True)
class RandomNoiseConfig:
    """The noise's L∞ budget `eps` (in (0, 1]), its seed, and the loss report's condition and
    number of held-out draws."""

    eps: float = PAPER_EPS
    seed: int = 0
    condition: Condition = None
    eval_draws: int = 32

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, int | float) and 0 < self.eps <= 1):
            raise ConfigError(f"`eps` must be in (0, 1]; got {self.eps}")
        if self.eval_draws < 0:
            raise ConfigError(f"`eval_draws` must be >= 0; got {self.eval_draws}")


def sign_noise(images: torch.Tensor, eps: float, seeds: Sequence[int]) -> torch.Tensor:
    """x + ε·s, s uniform in {−1, +1} per pixel and channel (image i from `seeds[i]`), clamped to
    [0, 1] and snapped to the 8-bit grid inside the ε-ball."""
    signs = torch.stack([
        torch.randint(0, 2, images.shape[1:], generator=torch.Generator().manual_seed(int(s))).float() * 2 - 1
        for s in seeds
    ])  # fmt: skip
    noisy = (images + eps * signs.to(images.device, images.dtype)).clamp(0, 1)
    return quantize_in_ball(images, noisy, eps)


@register_protector
class RandomNoise(Protector):
    """Random ±ε sign noise (see the module doc); `model` only scores the training loss."""

    name = "random-noise"

    def __init__(self, model: DiffusionModel, config: RandomNoiseConfig | None = None) -> None:
        if not isinstance(model, DiffusionModel):
            raise ConfigError(f"`model` must be a DiffusionModel handle; got {type(model).__name__}")  # fmt: skip
        self.model = model
        self.config = config or RandomNoiseConfig()

    def config_dict(self) -> dict[str, Any]:
        return {"method": self.name, **asdict(self.config)}

    def protect(
        self, images: torch.Tensor, seeds: Sequence[int] | None = None, progress: bool = False
    ) -> ProtectionResult:
        """Noise images (B, C, H, W) in [0, 1]; image i uses `seeds[i]` (default seed + i)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
            raise ConfigError("`images` must be a non-empty (B, C, H, W) tensor")
        if not images.is_floating_point() or images.min() < 0 or images.max() > 1:
            raise ConfigError("`images` must be floats in [0, 1]")
        cfg = self.config
        seeds = [cfg.seed + i for i in range(len(images))] if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise ConfigError(f"`seeds` must have one seed per image ({len(images)}); got {len(seeds)}")  # fmt: skip
        x = images.float().cpu()
        noisy = sign_noise(x, cfg.eps, seeds)
        if cfg.eval_draws:
            model = self.model
            cond = model.encode_condition([cfg.condition] * len(x))
            eval_seeds = [s + EVAL_SEED_OFFSET for s in seeds]
            t_range = (0, model.num_train_timesteps - 1)
            with torch.no_grad():
                clean, prot = (expected_loss(model, v.to(model.device), cond, eval_seeds, cfg.eval_draws, t_range)
                               for v in (x, noisy))  # fmt: skip
        else:
            clean = prot = torch.full((len(x),), math.nan)
        return ProtectionResult(
            images=noisy, delta=noisy - x, psnr=psnr(noisy, x), ssim=ssim(noisy, x),
            linf=(noisy - x).abs().flatten(1).amax(1), loss_clean=clean, loss_protected=prot,
            seeds=seeds, config=self.config_dict(),
        )  # fmt: skip
