"""Bayesian few-shot fine-tuning: Gaussian weights against the corruption stage.

Paper: Lan et al., "Exploring Diffusion Models' Corruption Stage in Few-Shot Fine-tuning and
Mitigating with Bayesian Neural Networks" (arXiv 2405.19931); official code
github.com/Nicholas0228/BNN-Finetuning-DMs. The method in our words: docs/methods/bayesian-finetune.md.

A subset of weights becomes a factorised Gaussian q(θ) = Π N(μ_i, σ_i²) with prior
p(θ) = N(θ_pre, σ_p²) centred on the pretrained weights (prior mean 0 for LoRA up-matrices), and
training minimises (paper eq. 9)

    L(μ, σ) = E_{θ~q}[ L_DM(θ) ] + λ · KL

- reparameterisation on every forward: W = μ + σ ⊙ ξ, ξ ~ N(0, I) drawn afresh at each call;
- μ starts at the pretrained weights, σ is a direct parameter starting at σ_init and clamped at
  ≥ 1e-7 (`clamp_sigma_`, after each optimiser step);
- KL as the official code computes it: KL(prior ‖ posterior) summed over weights,
  Σ log(σ/σ_p) − ½ + ½(σ_p/σ)² + ½(θ_pre − μ)²/σ²  (`kl_divergence`);
- at inference σ = 0: the mean network, an ordinary model (`to_mean_network`).

Two settings exist (`PRESETS`): the scripts the authors ran ("scripts": σ_init = σ_p = 0.01,
λ = 0, noise alone regularises) and their argument parser's defaults ("parser": 0.02 / 0.02 /
λ = 0.2).

Which weights (`bayesian_targets`), as the paper and the official `convert()` with the scripts'
flags: full fine-tune: every `nn.Linear` inside the UNet's down/mid/up blocks (attention
projections, feed-forward), weight and bias, except cross-attention (`attn2`) and the resnets'
`time_emb_proj` (the official `skip_time` default skips both the `time_embedding` and every
`time_emb_proj`); convolutions and norms are never Linear, so never Bayesian. LoRA: only the up
(B) matrices of adapters on Linear layers in the up blocks, prior mean 0; here cross-attention
adapters count too (the official LoRA script passes `--convert_attn2`), `time_emb_proj` ones not.

On the art zoo's `UNet2DConditionModel` (channels (32, 64, 128), transformer blocks in the two
lower levels and the mid block) the rule covers every transformer block's self-attention (`attn1`
q/k/v/out) and feed-forward (`ff.net.0.proj`, GEGLU, and `ff.net.2`) Linears of its 7 transformer
blocks: 42 Linear layers, 1,252,224 of the UNet's 4,132,836 weights (30.3%; `bayesian_share`,
printed by `benchmarks/corruption.py --zoo art`). Like SD 1.x (`use_linear_projection=False`) its transformer blocks' `proj_in` /
`proj_out` are 1x1 convolutions, so the paper's Linear rule leaves them deterministic; in SD 2.x
layouts (`use_linear_projection=True`) they are Linear and covered. LoRA on the zoo's kohya targets:
the B matrices of the Linear adapters in up_blocks (attn1, attn2, ff). Measured there
(`benchmarks/corruption.py --zoo art`, reporting split, 2 sets x 2 seeds, preset "scripts" chosen
on the tuning split): fidelity dip 0.041 vs vanilla 0.049, end fidelity equal — not the paper's
halving; the dips are of the size of the evaluation's sample noise at this scale.

At the tiny zoo's scale (`UNet2DModel`, channels (16, 32, 32)) that rule leaves the self-attention
projections `to_q/to_k/to_v/to_out.0` of the lowest-resolution blocks (down_blocks.2, mid_block,
up_blocks.0): 16 Linear layers, ~17k of 281k weights (6%); LoRA: the 8 B matrices on up_blocks.0's
attention projections. The class condition enters through the time-embedding path, so there is no
cross-attention to skip. Known limit: this is a smaller Bayesian share than in Stable Diffusion,
where the attn1 and feed-forward Linears of every transformer block qualify.

Implementation: a `torch.nn.utils.parametrize` parametrization (`GaussianWeight`) on the existing
Linear's `weight`/`bias`, so the network keeps its structure (diffusers and peft modules run
unchanged) and μ is the parametrization's `original`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from dmsec.errors import ConfigError

SIGMA_MIN = 1e-7
UNET_BLOCKS = ("down_blocks", "mid_block", "up_blocks")
LORA_BLOCKS = ("up_blocks",)


@dataclass(frozen=True)
class BayesConfig:
    """σ_init, σ_p, λ and which module-name components stay deterministic (`skip` for a full
    fine-tune, `lora_skip` for LoRA up matrices)."""

    sigma_init: float = 0.01
    sigma_prior: float = 0.01
    kl_weight: float = 0.0
    skip: tuple[str, ...] = ("attn2", "time_emb_proj")
    lora_skip: tuple[str, ...] = ("time_emb_proj",)

    def __post_init__(self) -> None:
        if not self.sigma_init >= SIGMA_MIN:
            raise ConfigError(f"`sigma_init` must be >= {SIGMA_MIN}; got {self.sigma_init}")
        if not self.sigma_prior > 0:
            raise ConfigError(f"`sigma_prior` must be > 0; got {self.sigma_prior}")
        if not self.kl_weight >= 0:
            raise ConfigError(f"`kl_weight` must be >= 0; got {self.kl_weight}")

    @classmethod
    def preset(cls, name: str) -> BayesConfig:
        """ "scripts" (σ = 0.01, λ = 0, what the authors ran) or "parser" (0.02, λ = 0.2)."""
        if name not in PRESETS:
            raise ConfigError(f"`preset` must be one of {sorted(PRESETS)}; got {name!r}")
        return PRESETS[name]


PRESETS: dict[str, BayesConfig] = {
    "scripts": BayesConfig(sigma_init=0.01, sigma_prior=0.01, kl_weight=0.0),
    "parser": BayesConfig(sigma_init=0.02, sigma_prior=0.02, kl_weight=0.2),
}


class GaussianWeight(nn.Module):
    """Parametrization μ -> μ + σ ⊙ ξ with ξ ~ N(0, I) fresh at every access (every forward).

    Holds σ (a direct, trainable parameter) and the prior N(prior_mean, prior_sigma²).
    With `sampling` False, or σ = 0, it returns μ itself: the deterministic mean network.
    """

    prior_mean: torch.Tensor

    def __init__(
        self, mu: torch.Tensor, sigma_init: float, prior_mean: torch.Tensor, prior_sigma: float
    ) -> None:
        super().__init__()
        self.sigma = nn.Parameter(torch.full_like(mu, sigma_init))
        self.register_buffer("prior_mean", prior_mean.detach().clone().to(mu))
        self.prior_sigma = float(prior_sigma)
        self.sampling = True

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        if not self.sampling:
            return mu
        return mu + self.sigma * torch.randn_like(mu)

    def kl(self, mu: torch.Tensor) -> torch.Tensor:
        """KL(prior ‖ q) summed: log(σ/σ_p) − ½ + ½(σ_p/σ)² + ½(θ_pre − μ)²/σ²."""
        sigma = self.sigma.float()
        sigma_p = torch.as_tensor(self.prior_sigma, device=sigma.device)
        terms = (
            torch.log(sigma / sigma_p)
            - 0.5
            + 0.5 * (sigma_p / sigma) ** 2
            + 0.5 * (self.prior_mean.float() - mu.float()) ** 2 / sigma**2
        )
        return terms.sum()


def _components(name: str) -> list[str]:
    return name.split(".")


def bayesian_targets(network: nn.Module, lora: bool, skip: tuple[str, ...]) -> list[str]:
    """Names of the Linear modules whose weights become Gaussian (see the module docstring)."""
    names = []
    for name, module in network.named_modules():
        parts = _components(name)
        if not isinstance(module, nn.Linear) or any(p in skip for p in parts):
            continue
        if lora:
            # peft names the up matrix `<layer>.lora_B.<adapter>`; conv adapters have Conv2d B's
            if len(parts) >= 2 and parts[-2] == "lora_B" and parts[0] in LORA_BLOCKS:
                names.append(name)
        elif parts[0] in UNET_BLOCKS and not any(p.startswith("lora_") for p in parts):
            names.append(name)
    return names


def bayesian_share(network: nn.Module, config: BayesConfig, lora: bool = False) -> tuple[int, int]:
    """(weights the rule makes Gaussian, weights of `network`), without changing `network`.

    Counts what `make_bayesian` parametrizes: weight and bias of each target (the up matrix's
    weight only for LoRA). For LoRA the total is every weight of the network, adapters included.
    """
    skip = config.lora_skip if lora else config.skip
    modules = dict(network.named_modules())
    tensors = ("weight",) if lora else ("weight", "bias")
    n_bayes = sum(
        t.numel()
        for name in bayesian_targets(network, lora, skip)
        for t in (getattr(modules[name], n, None) for n in tensors)
        if t is not None
    )
    return n_bayes, sum(p.numel() for p in network.parameters())


def make_bayesian(network: nn.Module, config: BayesConfig, lora: bool = False) -> list[str]:
    """Turn the target Linears of `network` Gaussian in place; returns their names.

    Full fine-tune: weight and bias, prior mean = the current (pretrained) values. LoRA: the
    up matrix only, prior mean 0 (μ starts at the adapter's initial B, zero for a fresh adapter).
    """
    skip = config.lora_skip if lora else config.skip
    targets = bayesian_targets(network, lora, skip)
    if not targets:
        what = "LoRA up matrices on Linear layers in up_blocks" if lora else "Linear layers"
        raise ConfigError(f"`network` has no {what} to make Bayesian (skip={skip})")
    modules = dict(network.named_modules())
    for name in targets:
        module = modules[name]
        for tensor_name in ("weight",) if lora else ("weight", "bias"):
            value = getattr(module, tensor_name, None)
            if value is None or parametrize.is_parametrized(module, tensor_name):
                continue
            prior_mean = torch.zeros_like(value) if lora else value.detach()
            gaussian = GaussianWeight(
                value.detach(), config.sigma_init, prior_mean, config.sigma_prior
            )
            # unsafe=True: skip the registration-time consistency forward (it would draw a ξ)
            parametrize.register_parametrization(module, tensor_name, gaussian, unsafe=True)
    return targets


def _parametrized(network: nn.Module) -> Iterator[tuple[nn.Module, str, GaussianWeight]]:
    for module in network.modules():
        if not parametrize.is_parametrized(module):
            continue
        plists = cast(nn.ModuleDict, module.parametrizations)
        for tensor_name, plist in plists.items():
            for p in cast(nn.ModuleList, plist):
                if isinstance(p, GaussianWeight):
                    yield module, tensor_name, p


def gaussian_weights(network: nn.Module) -> list[GaussianWeight]:
    """Every Gaussian parametrization in `network` (empty for an ordinary network)."""
    return [g for _, _, g in _parametrized(network)]


def is_bayesian(network: nn.Module) -> bool:
    return bool(gaussian_weights(network))


def kl_divergence(network: nn.Module) -> torch.Tensor:
    """Σ over Gaussian weights of KL(prior ‖ q): the official code's KL term (float32 scalar)."""
    total = torch.zeros((), device=next(network.parameters()).device)
    for module, tensor_name, gaussian in _parametrized(network):
        mu = cast(torch.Tensor, cast(nn.ModuleDict, module.parametrizations)[tensor_name].original)
        total = total + gaussian.kl(mu)
    return total


@torch.no_grad()
def clamp_sigma_(network: nn.Module, minimum: float = SIGMA_MIN) -> None:
    """σ ← max(σ, minimum) in place (the official layers clamp at 1e-7 before every forward)."""
    for gaussian in gaussian_weights(network):
        gaussian.sigma.clamp_(min=minimum)


@torch.no_grad()
def set_sigma(network: nn.Module, value: float) -> None:
    """Set every σ to `value` (>= 0); σ = 0 gives the mean network (the official `test_sigma`)."""
    if value < 0:
        raise ConfigError(f"`value` must be >= 0; got {value}")
    for gaussian in gaussian_weights(network):
        gaussian.sigma.fill_(value)


@contextmanager
def posterior_mean(network: nn.Module) -> Iterator[nn.Module]:
    """Within the block every Gaussian weight is its mean μ (σ treated as 0, σ itself kept)."""
    gaussians = gaussian_weights(network)
    previous = [g.sampling for g in gaussians]
    for g in gaussians:
        g.sampling = False
    try:
        yield network
    finally:
        for g, was in zip(gaussians, previous, strict=True):
            g.sampling = was


def to_mean_network(network: nn.Module) -> nn.Module:
    """Remove the Gaussian parametrizations in place, keeping μ: σ = 0, an ordinary network."""
    for module, tensor_name, _ in list(_parametrized(network)):
        parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
    return network
