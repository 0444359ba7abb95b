"""DreamBooth's prior preservation data: class images sampled from the base model.

Ruiz et al. 2023 (DreamBooth, §3.3) generate class images with the frozen pretrained model
from the class prompt ("a dog") and keep fine-tuning on them beside the instance images, so the
fine-tune keeps the class prior instead of collapsing onto the few instance images. Sampling:
deterministic DDIM with classifier-free guidance, seeded, so the same call gives the same images.
"""

from __future__ import annotations

import torch

from dmsec.errors import ConfigError
from dmsec.extract.guidance import guided_eps
from dmsec.models.base import Condition, DiffusionModel
from dmsec.sampling import initial_noise, sample


@torch.no_grad()
def class_images(
    model: DiffusionModel,
    condition: Condition,
    n: int,
    *,
    seed: int = 0,
    guidance_scale: float = 3.0,
    steps: int = 50,
    batch_size: int = 64,
) -> torch.Tensor:
    """`n` images (n, C, H, W) in [0, 1] sampled from `model` with the class `condition`."""
    if n < 1:
        raise ConfigError(f"`n` (class images) must be >= 1; got {n}")
    if guidance_scale < 0:
        raise ConfigError(f"`guidance_scale` must be >= 0; got {guidance_scale}")
    x_T = initial_noise(n, model.sample_shape, seed, model.device)
    latent = model.family != "unet2d"
    out = []
    for i in range(0, n, batch_size):
        x = x_T[i : i + batch_size]
        eps = guided_eps(
            model,
            model.encode_condition([None] * len(x)),
            model.encode_condition([condition] * len(x)),
            guidance_scale,
        )
        x0 = sample(eps, x, model.alphas_cumprod, steps=steps, clip_x0=None if latent else 1.0)
        out.append(model.decode(x0).cpu())
    return torch.cat(out)
