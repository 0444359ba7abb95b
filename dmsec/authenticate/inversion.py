"""Contrasting gradient inversion: recover the removed part of x_0 with the model pair.

Paper: "CGI-DM: Digital Copyright Authentication for Diffusion Models via Contrasting Gradient
Inversion" (Wu et al., CVPR 2024, arXiv 2403.11162), Eq. 9-11 and Algorithm 1; official code
github.com/Nicholas0228/Revelio. The target KL(p_θ'(x'_{1:T}|x'_0) ‖ p_θ(x'_{1:T}|x'_0)) between
the fine-tuned (θ') and the pretrained (θ) model becomes, for Gaussian reverse steps, the
Monte-Carlo objective maximised over the removed entries of x'_0:

    J(x'_0) = E_{t,ε}[ ‖ε_θ(x'_t, t, c) − ε‖² − ‖ε_θ'(x'_t, t, c) − ε‖² ],
    x'_t = √ᾱ_t·x'_0 + √(1−ᾱ_t)·ε,                                         (L_pre − L_ft)

by L2 projected gradient ascent from the masked input (δ = 0): g ← ∇_δ J / ‖∇_δ J‖₂;
δ ← δ + α·g; clamp x'_0 into the data range; project δ onto the L2 ball of radius ε.

Choices beyond the paper (each documented where it is made):
- Both models see the *same* ε (and t) in a step — common random numbers, so the gap's variance
  is the variance of a difference of correlated terms. The official code draws ε per model.
- One (t, ε) per step is shared by all images of a batch, so an image's recovery does not depend
  on which other images share its batch (GroupNorm, no BatchNorm, keeps samples independent);
  ‖∇‖ is taken per image.

Default scaling from the paper's Stable Diffusion latents (4x64x64, so 8,192 entries removed by
the block mask) to a model with n removed entries:

    ε = 70 · √(n / 8192),   α = 2.0 · √(n / 8192),   1,000 steps,   t ~ U{1, …, T−1}.

An L2 radius over n entries is a per-entry RMS budget of ε/√n, so this keeps the paper's budget
(≈ 0.77) and step (≈ 0.022) per entry; SD latents times the VAE scaling factor have unit-order
spread, like pixels in [-1, 1]. For the zoo (1x16x16 pixels, 128 removed) ε = 8.75, α = 0.25.
x'_0 is clamped to [-1, 1] for pixel models and to [-100, 100] for latent models (official value).

Known limits: a Monte-Carlo objective with one (t, ε) per step is noisy, so a recovery varies with
`seed`; 1,000 steps cost 1,000 forward+backward passes through both models; the L2 ball bounds the
total change, so very dark/bright removed regions may not be reachable from 0 within ε.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from dmsec.authenticate.masking import block_keep_mask, mask_out, validate_block_pattern
from dmsec.errors import ConfigError
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair

# The paper's defaults and the latent they were set for (SD 1.4 latents, block mask (4, 2)).
PAPER_EPS = 70.0
PAPER_ALPHA = 2.0
PAPER_STEPS = 1000
PAPER_REMOVED_ENTRIES = 4 * 64 * 64 // 2
PIXEL_CLIP = (-1.0, 1.0)
LATENT_CLIP = (-100.0, 100.0)


@dataclass(frozen=True)
class CgiDmConfig:
    """CGI-DM's knobs; None means "the paper's default scaled to the pair" (see `resolved`).

    `condition` None is the fine-tune's instance class / prompt. `pretrained_condition` "same"
    gives the pretrained model that condition too (as the paper and official code do), "null"
    gives it ∅ instead. `baseline_draws` fixed (t, ε) draws evaluate the loss-gap baseline.
    """

    eps: float | None = None
    alpha: float | None = None
    steps: int = PAPER_STEPS
    block: int = 4
    cell: int = 2
    clip: tuple[float, float] | None = None
    t_min: int = 1
    t_max: int | None = None  # None: T − 1 (999 for T = 1000, the paper's range)
    condition: Condition = None
    pretrained_condition: Literal["same", "null"] = "same"
    seed: int = 0
    batch_size: int | None = None  # images per PGD batch; None: all at once
    baseline_draws: int = 64

    def __post_init__(self) -> None:
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"`eps` must be > 0; got {self.eps}")
        if self.alpha is not None and not self.alpha > 0:
            raise ConfigError(f"`alpha` must be > 0; got {self.alpha}")
        if self.steps < 1:
            raise ConfigError(f"`steps` must be >= 1; got {self.steps}")
        validate_block_pattern(self.block, self.cell)
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ConfigError(f"`clip` must be (low, high) with low < high; got {self.clip}")
        if self.t_min < 0:
            raise ConfigError(f"`t_min` must be >= 0; got {self.t_min}")
        if self.t_max is not None and self.t_max < self.t_min:
            raise ConfigError(f"`t_max` must be >= `t_min` ({self.t_min}); got {self.t_max}")
        if self.pretrained_condition not in ("same", "null"):
            raise ConfigError(
                f"`pretrained_condition` must be 'same' or 'null'; got {self.pretrained_condition!r}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if self.baseline_draws < 1:
            raise ConfigError(f"`baseline_draws` must be >= 1; got {self.baseline_draws}")

    def resolved(self, pair: ModelPair) -> CgiDmConfig:
        """Fill `eps`, `alpha`, `clip` and `t_max` for `pair` (see the module docstring)."""
        keep = block_keep_mask(pair.sample_shape, self.block, self.cell)
        scale = math.sqrt(int((~keep).sum()) / PAPER_REMOVED_ENTRIES)
        pixel = pair.pretrained.family == "unet2d"
        t_last = pair.pretrained.num_train_timesteps - 1
        if self.t_max is not None and self.t_max > t_last:
            raise ConfigError(f"`t_max` must be <= T − 1 = {t_last}; got {self.t_max}")
        return replace(
            self,
            eps=PAPER_EPS * scale if self.eps is None else self.eps,
            alpha=PAPER_ALPHA * scale if self.alpha is None else self.alpha,
            clip=(PIXEL_CLIP if pixel else LATENT_CLIP) if self.clip is None else self.clip,
            t_max=t_last if self.t_max is None else self.t_max,
        )


@dataclass
class InversionResult:
    """What the inversion returns, all in model space, batch first."""

    recovered: torch.Tensor  # x'_0 after the last step: kept entries equal x_0 exactly
    masked: torch.Tensor  # the starting point: x_0 with removed entries set to 0
    keep: torch.Tensor  # (C, H, W) bool, True = kept
    objective: torch.Tensor  # (steps,) J at each step, averaged over the batch (for diagnostics)
    # x'_0 after step s (1-based) for each s asked for in `snapshots` (a benchmark's step sweep)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)


def per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample, in float32: (B,)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def contrasting_gradient_inversion(
    pair: ModelPair,
    x0: torch.Tensor,
    cond_pre: Any,
    cond_ft: Any,
    config: CgiDmConfig,
    progress: bool = False,
    snapshots: Sequence[int] = (),
) -> InversionResult:
    """Recover the removed entries of `x0` (model space, (B, C, H, W)) by maximising J.

    `cond_pre` / `cond_ft` are encoded conditions for the B samples; `config` must be resolved.
    `snapshots`: steps (1..config.steps) after which x'_0 is also kept, so one run of `steps`
    steps gives the recoveries of every shorter run (the same draws, in the same order).
    """
    if config.eps is None or config.alpha is None or config.clip is None or config.t_max is None:
        raise ConfigError("`config` must be resolved for the pair first: config.resolved(pair)")
    if tuple(x0.shape[1:]) != tuple(pair.sample_shape):
        raise ConfigError(
            f"`x0` must be (B, *{tuple(pair.sample_shape)}) in model space; got {tuple(x0.shape)}"
        )
    if any(not 1 <= s <= config.steps for s in snapshots):
        raise ConfigError(f"`snapshots` must lie in 1..{config.steps}; got {list(snapshots)}")
    handle = pair.pretrained
    low, high = config.clip
    kept: dict[int, torch.Tensor] = {}
    keep = block_keep_mask(pair.sample_shape, config.block, config.cell, device=x0.device)
    removed = (~keep).to(torch.float32)
    x0 = x0.detach().float()
    masked = mask_out(x0, keep)
    delta = torch.zeros_like(masked)
    generator = torch.Generator().manual_seed(config.seed)
    objective = torch.empty(config.steps)
    shape = (1, *pair.sample_shape)
    for step in tqdm(range(config.steps), disable=not progress, desc="CGI-DM", leave=False):
        # 1. one t ~ U{t_min..t_max} and fresh ε, shared by both models and every image
        t = torch.randint(config.t_min, config.t_max + 1, (1,), generator=generator)
        t = t.to(x0.device).expand(len(x0))
        noise = torch.randn(shape, generator=generator).to(x0.device).expand_as(x0)
        # 2. J = ‖ε_θ(x'_t) − ε‖² − ‖ε_θ'(x'_t) − ε‖² and its gradient in δ (removed entries only)
        delta.requires_grad_(True)
        with torch.enable_grad():
            x_prime = masked + delta * removed
            x_t = handle.add_noise(x_prime, noise, t).to(handle.dtype)
            eps_pre, eps_ft = pair.predict_pair(x_t, x_t, t, cond_pre, cond_ft)
            gap = per_sample_mse(eps_pre, noise) - per_sample_mse(eps_ft, noise)
            (grad,) = torch.autograd.grad(gap.sum(), delta)
        objective[step] = gap.detach().mean().cpu()
        with torch.no_grad():
            delta = delta.detach()
            # 3. normalised ascent step: δ ← δ + α·∇/‖∇‖₂ (per image; NaN steps are skipped)
            grad = torch.nan_to_num(grad.float() * removed, nan=0.0)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = delta + config.alpha * grad / norm
            # 4. clamp x'_0 into the data range, then project δ onto the L2 ball (official order;
            #    the projection shrinks δ towards 0 and so keeps x'_0 inside the range)
            delta = (masked + delta).clamp(low, high) - masked
            delta = delta * removed
            size = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = delta * (config.eps / size.clamp_min(1e-12)).clamp(max=1.0)
            if step + 1 in snapshots:
                kept[step + 1] = torch.where(keep, x0, masked + delta)
    recovered = torch.where(keep, x0, masked + delta)
    return InversionResult(recovered, masked, keep, objective, kept)
