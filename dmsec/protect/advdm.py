"""AdvDM: adversarial examples that make an image hard for a diffusion model to learn from.

Paper: "Adversarial Example Does Good: Preventing Painting Imitation from Diffusion Models via
Adversarial Examples" (Liang et al., ICML 2023, arXiv 2302.04578), eq. 3-5; official code in the
Mist project (github.com/psyker-team/mist, mode 0). The perturbation maximises the model's own
training loss inside an L∞ ball (see `dmsec.protect.objective`):

    δ* = argmax_{‖δ‖∞ ≤ ε} E_{t, ε_n} ‖ε_n − ε_θ(√ᾱ_t·z(x+δ) + √(1−ᾱ_t)·ε_n, t, c)‖²

by Monte-Carlo PGD from δ = 0: each step draws one t ~ U{0..T−1} and one ε_n ~ N(0, I) per image,
then δ ← clip_[−ε, ε](δ + α·sign(∇_δ L)) and x + δ is clamped into [0, 1].

Defaults and how they scale. Mist's defaults on [0, 1] images: ε = 16/255, α = 1/255, 100 steps
(the paper also reports 8/255). ε is a per-pixel bound, so it needs no rescaling across image
sizes or pixel/latent models; a given ε without α gets α = ε/16, Mist's step-to-budget ratio,
so 100 steps can always reach the boundary. c defaults to ∅ (the null class / empty prompt): the
protector does not know the imitator's prompt; the paper uses a generic prompt ("a painting"),
which `condition` can give.

Choices beyond the paper: each image draws from its own seeded stream, so its δ does not depend
on its batch mates; the output is snapped to the 8-bit grid *inside* the ball (`quantize`), so a
saved PNG still satisfies ‖δ‖∞ ≤ ε; the reported loss increase uses held-out draws, not the
draws the attack optimised.

Known limits: protection is computed against one model (the `base`); how well it transfers to
an imitator's model, prompt or fine-tuning method is an empirical question (benchmarks/
protection.py measures it on the tiny zoo). Lossy re-encoding (JPEG), resizing, denoising or
adversarial purification can weaken it. Images are protected at the model's input size.
On the tiny pixel-space zoo (benchmarks/protection.py) AdvDM at 8/255 (PSNR ≈ 31 dB) raised the
base's training loss less than random ±ε noise did (the loss is dominated by small t, where any
high-frequency noise hurts) and lowered FineXtract's extraction rate no more than that noise:
do not expect the paper's latent-model effect from pixel models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from dmsec.errors import ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.progress import progress as progress_bar
from dmsec.protect.base import ProtectionResult, Protector, register_protector
from dmsec.protect.objective import ImageStreams, expected_loss, per_image_loss
from dmsec.protect.quality import psnr, ssim

PAPER_EPS = 16 / 255
PAPER_ALPHA = 1 / 255
PAPER_STEPS = 100
# Held-out draws for the reported loss use seed + EVAL_SEED_OFFSET (never the attack's draws).
EVAL_SEED_OFFSET = 7_919
LEVELS = 255  # 8-bit output grid


@dataclass(frozen=True)
class AdvDMConfig:
    """AdvDM's knobs (defaults: Mist's); `alpha` None is ε/16, `t_max` None is T − 1."""

    eps: float = PAPER_EPS
    alpha: float | None = None
    steps: int = PAPER_STEPS
    condition: Condition = None
    seed: int = 0
    batch_size: int | None = None  # images per PGD batch; None: all at once
    draws: int = 1  # (t, ε_n) draws averaged per step; 1 is the paper
    t_min: int = 0
    t_max: int | None = None
    quantize: bool = True
    eval_draws: int = 32  # held-out draws for loss_clean / loss_protected; 0 skips

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, int | float) and 0 < self.eps <= 1):
            raise ConfigError(f"`eps` must be in (0, 1]; got {self.eps}")
        if self.alpha is not None and not 0 < self.alpha <= self.eps:
            raise ConfigError(f"`alpha` must be in (0, eps={self.eps:.6g}]; got {self.alpha}")
        if self.steps < 1:
            raise ConfigError(f"`steps` must be >= 1; got {self.steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if self.draws < 1:
            raise ConfigError(f"`draws` must be >= 1; got {self.draws}")
        if self.t_min < 0:
            raise ConfigError(f"`t_min` must be >= 0; got {self.t_min}")
        if self.t_max is not None and self.t_max < self.t_min:
            raise ConfigError(f"`t_max` must be >= t_min={self.t_min}; got {self.t_max}")
        if self.eval_draws < 0:
            raise ConfigError(f"`eval_draws` must be >= 0; got {self.eval_draws}")

    @property
    def effective_alpha(self) -> float:
        """`alpha`, or ε/16 (Mist's step-to-budget ratio) when it is None."""
        return self.eps * PAPER_ALPHA / PAPER_EPS if self.alpha is None else self.alpha

    def resolved(self, model: DiffusionModel) -> AdvDMConfig:
        """Fill `alpha` (ε/16) and `t_max` (T − 1); check the timestep range fits the model."""
        t_last = model.num_train_timesteps - 1
        t_max = t_last if self.t_max is None else self.t_max
        if t_max > t_last:
            raise ConfigError(f"`t_max` must be <= {t_last} for this model; got {t_max}")
        return replace(self, alpha=self.effective_alpha, t_max=t_max)


@contextmanager
def _frozen(model: DiffusionModel) -> Any:
    """Eval mode and no weight gradients for the block (the attack only needs ∇_δ); restored."""
    modules = model.modules()
    modes = [m.training for m in modules]
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    try:
        for m in modules:
            m.eval()
            m.requires_grad_(False)
        yield
    finally:
        for m, mode, fl in zip(modules, modes, flags, strict=True):
            m.train(mode)
            for p, f in zip(m.parameters(), fl, strict=True):
                p.requires_grad_(f)


def advdm_delta(
    model: DiffusionModel,
    images: torch.Tensor,
    cond: Any,
    config: AdvDMConfig,
    seeds: Sequence[int],
    progress: bool = False,
) -> torch.Tensor:
    """Monte-Carlo L∞ PGD (AdvDM eq. 5) for one batch: δ with ‖δ‖∞ <= ε and x + δ in [0, 1].

    `config` must be resolved; `images` are float (B, C, H, W) in [0, 1] on the model's device.
    """
    assert config.alpha is not None and config.t_max is not None, "resolve the config first"
    eps, alpha, t_range = config.eps, config.alpha, (config.t_min, config.t_max)
    streams = ImageStreams(seeds)
    x = images.float()
    delta = torch.zeros_like(x)
    bar = progress_bar(range(config.steps), desc="AdvDM", unit="step",
                       every=max(1, config.steps // 10), enabled=progress, leave=False)  # fmt: skip
    for _ in bar:
        delta.requires_grad_(True)
        z = model.encode_images(x + delta)
        # 1. draw t ~ U{t_min..t_max} and ε_n ~ N(0, I) per image (from its own stream)
        loss = torch.zeros(len(x), device=x.device)
        for _ in range(config.draws):
            t, noise = streams.draw(tuple(z.shape[1:]), *t_range)
            # 2. L = ‖ε_n − ε_θ(√ᾱ_t·z(x+δ) + √(1−ᾱ_t)·ε_n, t, c)‖², per image
            loss = loss + per_image_loss(model, z, cond, t, noise)
        # images are independent, so ∇_δ of the sum is each image's own gradient
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        # 3. ascend by the sign, project onto the ε-ball, keep x + δ a valid image
        with torch.no_grad():
            delta = (delta + alpha * grad.sign()).clamp_(-eps, eps)
            delta = (x + delta).clamp_(0, 1) - x
        if progress:
            bar.set_postfix(loss=f"{loss.mean().item() / config.draws:.4f}")
    return delta.detach()


def quantize_in_ball(x: torch.Tensor, protected: torch.Tensor, eps: float) -> torch.Tensor:
    """Snap `protected` to the 8-bit grid k/255, staying within ‖· − x‖∞ <= ε and [0, 1].

    Each pixel takes the nearest grid level among those inside [x − ε, x + ε] ∩ [0, 1]; where the
    ball holds no grid level (ε < 0.5/255 off the grid) the pixel keeps its float value.
    """
    tol = 1e-4  # in levels: absorbs float error of k/255 ± ε
    lo = torch.ceil(((x - eps) * LEVELS - tol).clamp(min=0))
    hi = torch.floor(((x + eps) * LEVELS + tol).clamp(max=LEVELS))
    level = torch.minimum(torch.maximum(torch.round(protected * LEVELS), lo), hi)
    snapped = level / LEVELS
    return torch.where(lo <= hi, snapped, protected)


@register_protector
class AdvDM(Protector):
    """AdvDM against `model` (a pixel- or latent-space `DiffusionModel`); see the module doc."""

    name = "advdm"

    def __init__(self, model: DiffusionModel, config: AdvDMConfig | None = None) -> None:
        if not isinstance(model, DiffusionModel):
            raise ConfigError(
                f"`model` must be a DiffusionModel handle; got {type(model).__name__}"
            )
        self.model = model
        self.config = (config or AdvDMConfig()).resolved(model)
        # what AdvDM needs from the model: it encodes its condition and images differentiably
        self.cond_value = self.config.condition
        model.encode_condition([self.cond_value])

    def config_dict(self) -> dict[str, Any]:
        return {"method": self.name, **asdict(self.config)}

    def protect(
        self,
        images: torch.Tensor,
        seeds: Sequence[int] | None = None,
        progress: bool = False,
    ) -> ProtectionResult:
        """Protect images (B, C, H, W) in [0, 1]; image i uses `seeds[i]` (default seed + i)."""
        _check_images(images)
        cfg, model = self.config, self.model
        seeds = [cfg.seed + i for i in range(len(images))] if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise ConfigError(
                f"`seeds` must have one seed per image ({len(images)}); got {len(seeds)}"
            )
        step = cfg.batch_size or len(images)
        out = []
        with _frozen(model):
            for start in range(0, len(images), step):
                x = images[start : start + step].to(model.device).float()
                chunk_seeds = seeds[start : start + step]
                cond = model.encode_condition([self.cond_value] * len(x))
                delta = advdm_delta(model, x, cond, cfg, chunk_seeds, progress)
                protected = (x + delta).clamp(0, 1)
                if cfg.quantize:
                    protected = quantize_in_ball(x, protected, cfg.eps)
                out.append(self._measure(x, protected, cond, chunk_seeds))
        return _concat(out, seeds, self.config_dict())

    def _measure(
        self, x: torch.Tensor, protected: torch.Tensor, cond: Any, seeds: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        assert cfg.t_max is not None
        if cfg.eval_draws:
            eval_seeds = [s + EVAL_SEED_OFFSET for s in seeds]
            t_range = (cfg.t_min, cfg.t_max)
            clean = expected_loss(self.model, x, cond, eval_seeds, cfg.eval_draws, t_range)
            prot = expected_loss(self.model, protected, cond, eval_seeds, cfg.eval_draws, t_range)
        else:
            clean = prot = torch.full((len(x),), math.nan)
        x, protected = x.detach().cpu(), protected.detach().cpu()
        return {
            "images": protected,
            "delta": protected - x,
            "psnr": psnr(protected, x),
            "ssim": ssim(protected, x),
            "linf": (protected - x).abs().flatten(1).amax(1),
            "loss_clean": clean,
            "loss_protected": prot,
        }


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(f"`images` must be a non-empty (B, C, H, W) tensor; got {shape}")
    if not images.is_floating_point() or not torch.isfinite(images).all():
        raise ConfigError("`images` must be finite floats")
    if images.min() < 0 or images.max() > 1:
        raise ConfigError(
            f"`images` must be in [0, 1]; got [{images.min().item():.4g}, {images.max().item():.4g}]"
        )


def _concat(
    parts: list[dict[str, torch.Tensor]], seeds: list[int], config: dict[str, Any]
) -> ProtectionResult:
    def cat(key: str) -> torch.Tensor:
        return torch.cat([p[key] for p in parts])

    return ProtectionResult(
        images=cat("images"),
        delta=cat("delta"),
        psnr=cat("psnr"),
        ssim=cat("ssim"),
        linf=cat("linf"),
        loss_clean=cat("loss_clean"),
        loss_protected=cat("loss_protected"),
        seeds=seeds,
        config=config,
    )
