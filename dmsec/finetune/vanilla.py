"""Plain diffusion training: the ε-prediction loss, for a base model from scratch or a few-shot
fine-tune (all weights, or a LoRA adapter only), and the trainer its Bayesian variant runs on.

Loss (Ho et al. 2020): L = E_{x_0, t, ε} ‖ε − ε_θ(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t, c)‖².
With `TrainConfig.bayes` the trainer runs Bayesian fine-tuning (`dmsec.finetune.bayesian`,
arXiv 2405.19931 eq. 9): the same loss through freshly sampled Gaussian weights, plus λ·KL.

DreamBooth (Ruiz et al. 2023) options for text-conditional models: `train_text_encoder` trains
the text encoder with the UNet (full fine-tunes), and prior preservation adds the loss on class
images sampled from the base model with the class prompt (`dmsec.finetune.prior`):

    L = L_DM(instance images, c) + λ_prior · L_DM(class images, c_class)

computed in one forward over the instance and class halves of the batch.

`FewShotTrainer` is one run, step by step, so the same code serves `train()` (in process), the
zoo, and data-parallel workers (`pipelines/finetune.py`): each of W workers draws its share
B/W of the global batch from its own random stream and `grad_sync` averages the gradients
before the clipped optimiser step, so every worker keeps identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dmsec.errors import ConfigError
from dmsec.finetune.bayesian import (
    BayesConfig,
    clamp_sigma_,
    kl_divergence,
    make_bayesian,
    to_mean_network,
)
from dmsec.finetune.state import load_training_state, save_training_state
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.lora import LoraSpec, add_lora
from dmsec.progress import progress as progress_bar

# Workers r > 0 reseed their streams with seed + r·stride after the shared set-up.
RANK_SEED_STRIDE = 1_000_003

GradSync = Callable[[Sequence[torch.Tensor]], None]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: steps, batch, optimiser, for LoRA the adapter's shape, and optionally the
    Bayesian layers (`bayes`; None is vanilla training)."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    label_dropout: float = 0.0  # share of conditions replaced by ∅ (for classifier-free guidance)
    lora: LoraSpec | None = None
    seed: int = 0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    cosine_decay: bool = False
    bayes: BayesConfig | None = None
    train_text_encoder: bool = False
    prior_weight: float = 1.0  # λ_prior; used only when the trainer is given class images

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"`steps` must be >= 1; got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"`lr` must be in (0, 1); got {self.lr}")
        if not 0 <= self.label_dropout < 1:
            raise ConfigError(f"`label_dropout` must be in [0, 1); got {self.label_dropout}")
        if self.warmup_steps < 0:
            raise ConfigError(f"`warmup_steps` must be >= 0; got {self.warmup_steps}")
        if self.train_text_encoder and self.lora is not None:
            raise ConfigError(
                "`train_text_encoder` is for full fine-tunes; LoRA trains the UNet's adapter"
            )
        if self.prior_weight < 0:
            raise ConfigError(f"`prior_weight` must be >= 0; got {self.prior_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


class FewShotTrainer:
    """One training run of `model` (in place) on images in [0, 1] with one condition each.

    Set-up: with `config.lora` a fresh adapter is injected and only it is trained (the base
    weights stay bit-identical); otherwise every weight is trained. With `config.bayes` the
    paper's layers become Gaussian (μ and σ are trained). `rank`/`world_size` make this one
    worker of a data-parallel run whose gradients `grad_sync` averages in place. With
    `prior_images` (and one `prior_conditions` each) every step also draws as many class images
    as instance images (DreamBooth's prior preservation).
    """

    def __init__(
        self,
        model: DiffusionModel,
        images: torch.Tensor,
        conditions: Sequence[Condition],
        config: TrainConfig,
        *,
        rank: int = 0,
        world_size: int = 1,
        grad_sync: GradSync | None = None,
        prior_images: torch.Tensor | None = None,
        prior_conditions: Sequence[Condition] | None = None,
    ) -> None:
        if (prior_images is None) != (prior_conditions is None):
            raise ConfigError("give `prior_images` and `prior_conditions` together")
        if prior_images is not None and len(prior_images) != len(prior_conditions or ()):
            raise ConfigError(f"got {len(prior_images)} class images but {len(prior_conditions or ())} conditions")  # fmt: skip
        if len(images) != len(conditions):
            raise ConfigError(f"got {len(images)} images but {len(conditions)} conditions")
        if len(images) == 0:
            raise ConfigError("`images` is empty")
        if not 0 <= rank < world_size:
            raise ConfigError(f"`rank` must be in [0, {world_size}); got {rank}")
        if config.batch_size % world_size:
            raise ConfigError(
                f"`batch_size` ({config.batch_size}) must be a multiple of the number of "
                f"workers ({world_size})"
            )
        self.model, self.config = model, config
        self.rank, self.world_size, self.grad_sync = rank, world_size, grad_sync
        self.local_batch = config.batch_size // world_size
        # 1. shared set-up, identical on every worker: the adapter's random init, Gaussian layers
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        network = model.network
        if config.lora is not None:
            add_lora(network, config.lora)
        if config.bayes is not None:
            make_bayesian(network, config.bayes, lora=config.lora is not None)
        for p in network.parameters():
            p.requires_grad_(False)
        self.named_params = [
            (n, p) for n, p in network.named_parameters() if config.lora is None or "lora_" in n
        ]
        self.text_encoder = _text_encoder(model) if config.train_text_encoder else None
        if self.text_encoder is not None:
            self.named_params += [
                (f"text_encoder.{n}", p) for n, p in self.text_encoder.named_parameters()
            ]
        for _, p in self.named_params:
            p.requires_grad_(True)
        # 2. each worker's own stream for batches, t, ε and weight noise ξ
        if rank:
            self._reseed(rank)
        self.params = [p for _, p in self.named_params]
        self.optimiser = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=0.0)
        with torch.no_grad():
            self.x_all = model.encode_images(images)
            self.x_prior = None if prior_images is None else model.encode_images(prior_images)
        self.conds = list(conditions)
        self.prior_conds = list(prior_conditions or ())
        self.step = 0
        self.losses: list[float] = []
        self.last_kl = 0.0
        network.train()
        if self.text_encoder is not None:
            self.text_encoder.train()

    def _encode(self, conditions: list[Condition]) -> Any:
        if self.text_encoder is None:
            return self.model.encode_condition(conditions)
        return self.model.encode_condition_trainable(conditions)

    def _reseed(self, rank: int) -> None:
        seed = self.config.seed + RANK_SEED_STRIDE * rank
        self.generator.manual_seed(seed)
        torch.manual_seed(seed)

    def train_step(self) -> float:
        """One optimiser step; returns this worker's diffusion loss (KL not included)."""
        if self.step >= self.config.steps:
            raise ConfigError(f"the run is complete (`steps` = {self.config.steps})")
        config, n, g = self.config, self.local_batch, self.generator
        # 1. a batch of images, drawn with replacement, and their conditions (some dropped to ∅)
        idx = torch.randint(0, len(self.x_all), (n,), generator=g)
        drop = torch.rand(n, generator=g) < config.label_dropout
        batch_conds = [None if drop[i] else self.conds[j] for i, j in enumerate(idx.tolist())]
        x0 = self.x_all[idx]
        if self.x_prior is not None:  # as many class images, with their class prompt
            pidx = torch.randint(0, len(self.x_prior), (n,), generator=g)
            batch_conds += [self.prior_conds[j] for j in pidx.tolist()]
            x0 = torch.cat([x0, self.x_prior[pidx]])
        cond = self._encode(batch_conds)
        for group in self.optimiser.param_groups:
            group["lr"] = _lr_at(self.step, config)
        # 2. the ε-prediction loss (through freshly sampled weights if Bayesian) + λ·KL
        per_sample = diffusion_loss(self.model, x0, cond, g, reduction="none")
        loss = per_sample[:n].mean()
        total = loss
        if self.x_prior is not None:
            total = total + config.prior_weight * per_sample[n:].mean()
        if config.bayes is not None and config.bayes.kl_weight > 0:
            kl = kl_divergence(self.model.network)
            self.last_kl = float(kl.detach())
            total = loss + config.bayes.kl_weight * kl
        # 3. gradients, averaged over workers, clipped; one step; σ back above its floor
        self.optimiser.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_sync is not None:
            self.grad_sync([p.grad for p in self.params if p.grad is not None])
        torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
        self.optimiser.step()
        if config.bayes is not None:
            clamp_sigma_(self.model.network)
        self.step += 1
        self.losses.append(loss.item())
        return self.losses[-1]

    def save_state(self, folder: str | Path, **meta: Any) -> Path:
        """Write this worker's share of a resumable checkpoint (see `dmsec.finetune.state`)."""
        record = {
            "step": self.step,
            "world_size": self.world_size,
            "config": self.config.to_dict(),
            "losses": self.losses,
            **meta,
        }
        return save_training_state(
            folder,
            params=self.named_params,
            optimizer=self.optimiser,
            generator=self.generator,
            rank=self.rank,
            meta=record,
        )

    def load_state(self, folder: str | Path) -> dict[str, Any]:
        """Continue from a checkpoint of this same run (same base, config and set-up)."""
        meta = load_training_state(
            folder,
            params=self.named_params,
            optimizer=self.optimiser,
            generator=self.generator,
            rank=self.rank,
        )
        self.step = int(meta["step"])
        self.losses = [float(x) for x in meta.get("losses", [])][: self.step]
        if not meta["rng_restored"]:
            self._reseed(self.rank + self.world_size * self.step)
        return meta

    def finish(self) -> None:
        """End of training: eval mode, weights frozen, Gaussian layers replaced by their mean."""
        network = self.model.network
        network.eval()
        if self.config.bayes is not None:
            to_mean_network(network)
        for p in network.parameters():
            p.requires_grad_(False)
        if self.text_encoder is not None:
            self.text_encoder.eval()
            for p in self.text_encoder.parameters():
                p.requires_grad_(False)


def train(
    model: DiffusionModel,
    images: torch.Tensor,
    conditions: Sequence[Condition],
    config: TrainConfig,
    progress: bool | str = True,
    on_step: Callable[[int, float], None] | None = None,
    prior_images: torch.Tensor | None = None,
    prior_conditions: Sequence[Condition] | None = None,
) -> list[float]:
    """Train `model` in place on images in [0, 1] with one condition each; returns the losses.

    With `config.lora` a fresh adapter is injected and only it is trained (the base weights stay
    bit-identical); otherwise every weight is trained. With `config.bayes` the model ends as the
    Bayesian run's mean network (σ = 0): an ordinary model.
    """
    trainer = FewShotTrainer(
        model,
        images,
        conditions,
        config,
        prior_images=prior_images,
        prior_conditions=prior_conditions,
    )
    desc = progress if isinstance(progress, str) else "training"
    # a bar on a terminal; in a log, a line per tenth of the steps (with the running loss)
    bar = progress_bar(range(config.steps), desc=desc, unit="step", every=max(1, config.steps // 10),
                       enabled=progress is not False, leave=False)  # fmt: skip
    for step in bar:
        loss = trainer.train_step()
        if on_step is not None:
            on_step(step, loss)
        if step % 20 == 0:
            recent = trainer.losses[-20:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
    trainer.finish()
    return trainer.losses


def _text_encoder(model: DiffusionModel) -> Any:
    text_encoder = getattr(model, "text_encoder", None)
    if text_encoder is None:
        raise ConfigError(
            f"`train_text_encoder` needs a text-conditional model; {model.family!r} has no text encoder"
        )
    return text_encoder
