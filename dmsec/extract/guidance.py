"""FineXtract's extrapolated guidance and the direct-sampling baseline, as noise predictors.

Paper: "Revealing the Unseen: Guiding Personalized Diffusion Models to Expose Training Data"
(arXiv 2410.03039). With p_ft ∝ p_pre^(1−λ)·q^λ, the fine-tuning distribution's score is
extrapolated past the fine-tuned model (w = 1/λ > 1):

    conditional:    ε̃ = ε_pre(x_t, ∅) + w·(ε_ft(x_t, c) − ε_pre(x_t, ∅)) + k·ε_pre(x_t, ∅)
    unconditional:  ε̃ = ε_pre(x_t) + w·(ε_ft(x_t) − ε_pre(x_t))

We evaluate it as (1 − w + k)·ε_pre + w·ε_ft, which is algebraically the same and exact at the
checks that matter: w = 1, k = 0 gives ε_ft bit for bit, w = 0, k = 0 gives ε_pre.

Baseline: classifier-free guidance of the fine-tuned model alone,
    ε = ε_ft(x_t, ∅) + s·(ε_ft(x_t, c) − ε_ft(x_t, ∅)),  s = 3.
"""

from __future__ import annotations

from typing import Any

import torch

from dmsec.models.base import DiffusionModel
from dmsec.models.pair import ModelPair
from dmsec.sampling import EpsFn


def extrapolated_noise(
    eps_pre: torch.Tensor, eps_ft: torch.Tensor, w: float, k: float = 0.0
) -> torch.Tensor:
    """ε̃ = (1 − w + k)·ε_pre + w·ε_ft."""
    return (1.0 - w + k) * eps_pre + w * eps_ft


def finextract_eps(pair: ModelPair, cond_pre: Any, cond_ft: Any, w: float, k: float) -> EpsFn:
    """Noise predictor of FineXtract: one `predict_pair` call per step (one forward for LoRA)."""

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_pre, eps_ft = pair.predict_pair(x_t, x_t, t, cond_pre, cond_ft)
        return extrapolated_noise(eps_pre, eps_ft, w, k)

    return eps


def cfg_eps(pair: ModelPair, cond_null: Any, cond: Any, scale: float) -> EpsFn:
    """Classifier-free guidance of the fine-tuned model (the baseline); scale 1 = plain conditional."""
    if cond_null is None:  # unconditional model: guidance has nothing to contrast
        return lambda x_t, t: pair.predict_ft(x_t, t, cond)
    return guided_eps(pair.finetuned_handle(), cond_null, cond, scale)


def guided_eps(model: DiffusionModel, cond_null: Any, cond: Any, scale: float) -> EpsFn:
    """Classifier-free guidance of one model: ε(∅) + s·(ε(c) − ε(∅)), both in one forward."""

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        both = model.predict_noise(
            torch.cat([x_t, x_t]), torch.cat([t, t]), model.concat_conditions(cond_null, cond)
        )
        e_null, e_cond = both.chunk(2)
        return e_null + scale * (e_cond - e_null)

    return eps
