"""The plain loss-gap baseline: L_pre(x) − L_ft(x) on the untouched image, no inversion.

The membership-inference style comparison the CGI-DM paper (arXiv 2403.11162, Sec. 5) reports
beating: if the fine-tune saw x, its ε-prediction loss on x should drop more than the pretrained
model's. With x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε,

    gap(x_0) = (1/K) Σ_k [ ‖ε_θ(x_t_k, t_k, c) − ε_k‖² − ‖ε_θ'(x_t_k, t_k, c) − ε_k‖² ]

over K fixed draws (t_k, ε_k) from `seed`, the same for every image and both models (common random
numbers: scores of different images differ by the images, not by the draws).

Known limit: images that are simply easy to denoise (smooth, low-contrast) have small losses
under both models, which compresses their gap; the gap is not normalised for that.
"""

from __future__ import annotations

from typing import Any

import torch

from dmsec.authenticate.inversion import per_sample_mse
from dmsec.errors import ConfigError
from dmsec.models.pair import ModelPair


def fixed_draws(
    n: int, shape: tuple[int, ...], t_min: int, t_max: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """K timesteps t_k ~ U{t_min..t_max} and noises ε_k of `shape` from `seed`: ((K,), (K, *shape))."""
    if n < 1:
        raise ConfigError(f"`n` must be >= 1; got {n}")
    generator = torch.Generator().manual_seed(seed)
    t = torch.randint(t_min, t_max + 1, (n,), generator=generator)
    noise = torch.randn((n, *shape), generator=generator)
    return t, noise


@torch.no_grad()
def loss_gap(
    pair: ModelPair,
    x0: torch.Tensor,
    cond_pre: Any,
    cond_ft: Any,
    n_draws: int = 64,
    t_min: int = 1,
    t_max: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """gap(x_0) per image of `x0` (model space, (B, C, H, W)) over `n_draws` fixed draws: (B,)."""
    t_max = pair.pretrained.num_train_timesteps - 1 if t_max is None else t_max
    if not 0 <= t_min <= t_max:
        raise ConfigError(f"`t_min`/`t_max` must satisfy 0 <= t_min <= t_max; got {t_min}/{t_max}")
    handle = pair.pretrained
    ts, noises = fixed_draws(n_draws, tuple(x0.shape[1:]), t_min, t_max, seed)
    x0 = x0.float()
    total = torch.zeros(len(x0), device=x0.device)
    for t_k, noise_k in zip(ts.tolist(), noises, strict=True):
        t = torch.full((len(x0),), t_k, dtype=torch.long, device=x0.device)
        noise = noise_k.to(x0.device).expand_as(x0)
        x_t = handle.add_noise(x0, noise, t).to(handle.dtype)
        eps_pre, eps_ft = pair.predict_pair(x_t, x_t, t, cond_pre, cond_ft)
        total += per_sample_mse(eps_pre, noise) - per_sample_mse(eps_ft, noise)
    return (total / n_draws).cpu()
