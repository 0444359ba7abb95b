"""Training the art zoo's base model: the VAE first, then UNet and text encoder together.

1. VAE (`train_vae`): L1 + 0.1·L2 reconstruction of images in [-1, 1] plus a 1e-6-weighted KL
   (SD's VAE recipe without its perceptual and GAN terms, which need pretrained networks); then
   `scaling_factor` = 1/std of the latents, as SD sets it, so diffusion sees unit-variance x_0.
2. UNet + text encoder (`train_base`), jointly from scratch as in the LDM paper's text-to-image
   model, on the latents (encoded once, the posterior mean) with the ε-prediction loss; the
   saved weights are the exponential moving average (decay 0.998 with diffusers' EMAModel
   warm-up, min(decay, (1+n)/(10+n))), as DDPM and SD release theirs. Each
   sample's prompt is drawn from templates so every prompt a fine-tune or a method uses has been
   seen: the full "<name> in the style of <artist>", the style alone ("an emoji in the style of
   <artist>", DreamBooth's class prompt for subject sets), the name alone, "an emoji" (the class
   prompt for style sets) and the empty prompt ∅ (classifier-free guidance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from dmsec.models.stable_diffusion import StableDiffusionHandle
from dmsec.progress import progress as progress_bar

EMA_DECAY = 0.998

# (template, probability): {name} is the concept's words, {artist} the artist's name.
PROMPT_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{name} in the style of {artist}", 0.6),
    ("an emoji in the style of {artist}", 0.15),
    ("{name}", 0.1),
    ("an emoji", 0.05),
    ("", 0.1),
)


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_vae(
    vae: Any,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool | str = False,
) -> list[float]:
    """Train `vae` in place on images (N, 3, H, W) in [0, 1]; sets its `scaling_factor`."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    losses: list[float] = []
    vae.train()
    bar = progress_bar(range(steps), desc=progress if isinstance(progress, str) else "vae", unit="step",
                       every=max(1, steps // 10), enabled=progress is not False, leave=False)  # fmt: skip
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=min(50, steps // 10))
        x = images[torch.randint(0, len(images), (batch_size,), generator=generator)] * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        # 1. reconstruction (L1 + 0.1·L2) plus a small KL towards N(0, I)
        loss = (recon - x).abs().mean() + 0.1 * (recon - x).pow(2).mean()
        loss = loss + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    vae.eval()
    # 2. SD's latent scaling: unit variance for the diffusion model
    with torch.no_grad():
        z = torch.cat(
            [vae.encode(images[i : i + 256] * 2 - 1).latent_dist.mean for i in range(0, min(len(images), 2048), 256)]
        )  # fmt: skip
    vae.register_to_config(scaling_factor=round(1.0 / float(z.std()), 5))
    return losses


def draw_prompt(name: str, artist: str, u: float) -> str:
    """The template the uniform draw `u` in [0, 1) falls into, filled in."""
    acc = 0.0
    for template, p in PROMPT_TEMPLATES:
        acc += p
        if u < acc:
            return template.format(name=name, artist=artist)
    return ""


def all_prompts(names: Sequence[str], artists: Sequence[str]) -> list[str]:
    """Every prompt a template can produce for these names and artists (tokenizer vocabulary)."""
    return [t.format(name=n, artist=a) for t, _ in PROMPT_TEMPLATES for n in names for a in artists]


def train_base(
    handle: StableDiffusionHandle,
    latents: torch.Tensor,
    names: Sequence[str],
    artists: Sequence[str],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool | str = False,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train UNet and text encoder in place on `latents` (x_0, scaled) with one name and artist
    each; returns the losses."""
    unet, text = handle.network, handle.text_encoder
    params = [*unet.parameters(), *text.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    ema = [p.detach().clone() for p in params]
    unet.train()
    text.train()
    losses: list[float] = []
    bar = progress_bar(range(steps), desc=progress if isinstance(progress, str) else "base", unit="step",
                       every=max(1, steps // 10), enabled=progress is not False, leave=False)  # fmt: skip
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=min(200, steps // 10))
        # 1. a batch of latents and prompts drawn from the templates
        idx = torch.randint(0, len(latents), (batch_size,), generator=generator)
        u = torch.rand(batch_size, generator=generator).tolist()
        prompts = [draw_prompt(names[i], artists[i], u[k]) for k, i in enumerate(idx.tolist())]
        x0 = latents[idx].to(handle.device)
        # 2. ε-prediction loss at one random t per sample
        t = torch.randint(0, handle.num_train_timesteps, (batch_size,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = handle.add_noise(x0, noise, t.to(x0.device))
        eps = unet(
            x_t, t.to(x0.device), encoder_hidden_states=handle.encode_condition_trainable(prompts)
        ).sample
        loss = (eps.float() - noise).pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        with torch.no_grad():  # 3. the moving average of the weights
            decay = min(EMA_DECAY, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    unet.eval()
    text.eval()
    with torch.no_grad():
        for p, e in zip(params, ema, strict=True):
            p.copy_(e)
            p.requires_grad_(False)
    return losses
