"""Plain diffusion training: the ε-prediction loss, for a base model from scratch or a few-shot
fine-tune (all weights, or a LoRA adapter only).

Loss (Ho et al. 2020): L = E_{x_0, t, ε} ‖ε − ε_θ(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t, c)‖².
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from dmsec.errors import ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.lora import LoraSpec, add_lora, lora_parameters


@dataclass(frozen=True)
class TrainConfig:
    """How to train: steps, batch, optimiser and, for LoRA, the adapter's shape."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    label_dropout: float = 0.0  # share of conditions replaced by ∅ (for classifier-free guidance)
    lora: LoraSpec | None = None
    seed: int = 0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    cosine_decay: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"`steps` must be >= 1; got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"`lr` must be in (0, 1); got {self.lr}")
        if not 0 <= self.label_dropout < 1:
            raise ConfigError(f"`label_dropout` must be in [0, 1); got {self.label_dropout}")


def diffusion_loss(
    model: DiffusionModel,
    x0: torch.Tensor,
    cond: object,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Monte-Carlo ε-prediction loss with one t ~ U{0..T−1} and fresh ε per sample."""
    n = x0.shape[0]
    t = torch.randint(0, model.num_train_timesteps, (n,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    eps = model.predict_noise(model.add_noise(x0, noise, t), t, cond)
    per_sample = (eps.float() - noise.float()).pow(2).flatten(1).mean(1)
    return per_sample.mean() if reduction == "mean" else per_sample


def _lr_at(step: int, config: TrainConfig) -> float:
    scale = 1.0
    if config.warmup_steps and step < config.warmup_steps:
        scale = (step + 1) / config.warmup_steps
    elif config.cosine_decay:
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        scale = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * scale


def train(
    model: DiffusionModel,
    images: torch.Tensor,
    conditions: Sequence[Condition],
    config: TrainConfig,
    progress: bool | str = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` in place on images in [0, 1] with one condition each; returns the losses.

    With `config.lora` a fresh adapter is injected and only it is trained (the base weights stay
    bit-identical); otherwise every weight is trained.
    """
    if len(images) != len(conditions):
        raise ConfigError(f"got {len(images)} images but {len(conditions)} conditions")
    if len(images) == 0:
        raise ConfigError("`images` is empty")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if config.lora is not None:
        add_lora(model.network, config.lora)
        for p in model.network.parameters():
            p.requires_grad_(False)
        params = lora_parameters(model.network)
        for p in params:
            p.requires_grad_(True)
    else:
        params = [p for p in model.network.parameters()]
        for p in params:
            p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    x_all = model.encode_images(images)
    conds = list(conditions)
    model.network.train()
    losses: list[float] = []
    desc = progress if isinstance(progress, str) else "training"
    bar = tqdm(range(config.steps), disable=progress is False, desc=desc, leave=False)
    for step in bar:
        # 1. a batch of images, drawn with replacement, and their conditions (some dropped to ∅)
        idx = torch.randint(0, len(x_all), (config.batch_size,), generator=generator)
        drop = torch.rand(config.batch_size, generator=generator) < config.label_dropout
        batch_conds = [None if drop[i] else conds[j] for i, j in enumerate(idx.tolist())]
        cond = model.encode_condition(batch_conds)
        # 2. the ε-prediction loss and one optimiser step
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, config)
        loss = diffusion_loss(model, x_all[idx], cond, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimiser.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.network.eval()
    for p in model.network.parameters():
        p.requires_grad_(False)
    return losses
