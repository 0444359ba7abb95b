"""The quantity AdvDM maximises: the diffusion training loss of an image, per image.

    L(x) = ‖ε_n − ε_θ(√ᾱ_t·z(x) + √(1−ᾱ_t)·ε_n, t, c)‖²           (Ho et al. 2020; AdvDM eq. 3)

z(·) is the handle's `encode_images` (identity up to [0, 1] -> [-1, 1] for pixel models, the VAE
encoder for latent models), so gradients reach the *pixels* in both cases.

Every image owns a random stream (`ImageStreams`) from its own seed, and draws its t and ε_n from
it, so an image's draws — and hence its protection — do not depend on which other images share
its batch or in which order they come (the networks use GroupNorm, never BatchNorm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dmsec.models.base import DiffusionModel


class ImageStreams:
    """One `torch.Generator` per image; draws are made on the CPU, so any device gets the same."""

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def draw(
        self, shape: tuple[int, ...], t_min: int, t_max: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One t ~ U{t_min..t_max} and one ε_n ~ N(0, I) of `shape` per image: ((B,), (B, *shape))."""
        ts, noises = [], []
        for g in self.generators:
            ts.append(torch.randint(t_min, t_max + 1, (1,), generator=g))
            noises.append(torch.randn(shape, generator=g))
        return torch.cat(ts), torch.stack(noises)


def per_image_loss(
    model: DiffusionModel,
    z: torch.Tensor,
    cond: Any,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """‖ε_n − ε_θ(x_t, t, c)‖² averaged over entries, one value per image: (B,)."""
    t = t.to(z.device)
    noise = noise.to(z.device, z.dtype)
    eps = model.predict_noise(model.add_noise(z, noise, t), t, cond)
    return (eps.float() - noise.float()).pow(2).flatten(1).mean(1)


@torch.no_grad()
def expected_loss(
    model: DiffusionModel,
    images: torch.Tensor,
    cond: Any,
    seeds: Sequence[int],
    draws: int,
    t_range: tuple[int, int],
) -> torch.Tensor:
    """Monte-Carlo E_{t,ε}[L] per image over `draws` draws from each image's own `seeds` stream.

    Calling this with the same seeds on clean and on protected images compares them under
    *common random numbers*: the same (t, ε_n) for both, so the difference is not draw noise.
    """
    streams = ImageStreams(seeds)
    z = model.encode_images(images)
    total = torch.zeros(len(images))
    for _ in range(draws):
        t, noise = streams.draw(tuple(z.shape[1:]), *t_range)
        total += per_image_loss(model, z, cond, t, noise).cpu()
    return total / draws
