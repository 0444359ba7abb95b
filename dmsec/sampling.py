"""One DDIM / DDPM sampling loop for any noise-prediction function.

DDIM (Song et al. 2021), eq. 12, with σ_t = η·√((1−ᾱ_{t−1})/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_{t−1}):

    x̂_0     = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t                       (clipped to [−1, 1] in pixel space)
    x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1−ᾱ_{t−1}−σ_t²)·ε + σ_t·z

η = 0 is deterministic DDIM; η = 1 with all T steps is ancestral DDPM sampling. Timesteps use
diffusers' "leading" spacing (t = i·T/steps), and the last step goes to ᾱ = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from dmsec.errors import ConfigError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_timesteps(num_train_timesteps: int, steps: int) -> torch.Tensor:
    """Descending timesteps for `steps` sampling steps out of `num_train_timesteps`."""
    if not 1 <= steps <= num_train_timesteps:
        raise ConfigError(f"`steps` must be in [1, {num_train_timesteps}]; got {steps}")
    stride = num_train_timesteps // steps
    return (torch.arange(steps) * stride).flip(0)


def initial_noise(
    n: int, shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """x_T for `n` samples from one seed: the same seed gives the same noise on any device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=generator).to(device)


@torch.inference_mode()
def sample(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    steps: int = 50,
    eta: float = 0.0,
    clip_x0: float | None = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Run the reverse process from x_T with `eps_fn(x_t, t)`; returns x_0 in model space.

    `clip_x0` bounds x̂_0 to [−clip_x0, clip_x0] (pixel models); None disables it (latents).
    `seed` drives the fresh noise z of stochastic steps (η > 0).
    """
    if eta < 0:
        raise ConfigError(f"`eta` must be >= 0; got {eta}")
    device = x_T.device
    a_all = alphas_cumprod.to(device=device, dtype=torch.float32)
    timesteps = ddim_timesteps(a_all.shape[0], steps)
    generator = torch.Generator().manual_seed(seed)
    x = x_T.float()
    for i, t in enumerate(
        tqdm(timesteps.tolist(), disable=not progress, desc="sampling", leave=False)
    ):
        # 1. predict the noise at this step
        t_batch = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        eps = eps_fn(x.to(x_T.dtype), t_batch).float()
        a_t = a_all[t]
        a_prev = (
            a_all[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0, device=device)
        )
        # 2. x̂_0 from the noise estimate; clip, then re-derive ε consistent with the clipped x̂_0
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        # 3. σ_t and the DDIM step
        sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
        direction = (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
        x = a_prev.sqrt() * x0 + direction
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(device)
    return x
