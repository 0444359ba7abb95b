"""CGI-DM evidence for (model pair, image) matches: the function the scan calls per match.

`authenticate(pair, images, config)` runs, for a batch of images in [0, 1]:
1. block-wise masking in model space (`masking`),
2. contrasting gradient inversion of the removed part (`inversion`),
3. decoding of the recovered x'_0 and its similarity to the original image — CGI-DM's score,
4. the loss-gap baseline L_pre(x) − L_ft(x) on the original image (`loss_gap`),
and returns one `Evidence` per image. Higher scores mean "more likely in the fine-tuning set".

Similarity (paper: CLIP ViT-B/32 or DINO ViT-S/16 cosine) defaults to the zoo's measure,
`dmsec.metrics.zoo_embedding` (Pearson correlation of 16x16 grey pixels; no weights needed, the
right scale for the tiny zoo, crude for real artwork). Pass `similarity=embedder_similarity(e)`
to score with a `dmsec.match` inner-product embedder (DINOv2, CLIP) instead.

Known limits:
- the paper takes, per source image, the max over several recovered images; here one recovery
  per image is made (one `seed`), to keep CPU cost at `steps` passes per batch;
- measured on the tiny zoo (benchmarks/authentication.py, full zoo, paper defaults scaled, 1,000
  steps, 50 members vs 50 hold-outs pooled over 10 fine-tunes): CGI-DM AUC 0.71 (mean
  per-checkpoint AUC 0.86) while the plain loss gap reaches AUC 1.00 — the zoo's 5-image
  fine-tunes overfit so hard that the loss gap alone separates members. In pixel space the
  ascent drives removed pixels towards ±1 in speckled patterns (no VAE decoder smooths them, as
  in the paper's latent setting), and the score's level differs from digit to digit, so one
  threshold across checkpoints ranks worse than each checkpoint alone;
- in latent space (art zoo, `benchmarks/authentication.py --zoo art`, reporting split, 50 steps
  chosen on the tuning split, 85 members vs 75 same-style hold-outs pooled): AUC 0.941 vs the
  loss gap's 1.000 — an artist's unseen works recover almost as well as the training ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dmsec.authenticate.inversion import CgiDmConfig, contrasting_gradient_inversion
from dmsec.authenticate.loss_gap import loss_gap
from dmsec.errors import ConfigError
from dmsec.metrics import zoo_embedding
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair, instance_condition

#: (a, b) -> row-wise similarity: images (B, C, H, W) in [0, 1] twice -> (B,) float array
Similarity = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


@dataclass
class Evidence:
    """A verifier's evidence for one image (`dmsec.authenticate.verifier`).

    `score` is the similarity of `recovered_image` to the original (the CGI-DM score);
    `masked_score` the similarity of the masked starting point, for reference (the inversion's
    contribution is score − masked_score); `baseline_gap` the loss-gap baseline on the original.
    Images are (C, H, W) in [0, 1] on the CPU. The loss-gap verifier runs no inversion: its
    evidence has only `baseline_gap` (the rest None). `score_at` maps each step asked for in
    `authenticate(..., snapshots=)` to the score of the recovery after that step.
    """

    score: float | None
    recovered_image: torch.Tensor | None
    baseline_gap: float
    masked_image: torch.Tensor | None
    masked_score: float | None
    score_at: dict[int, float] = field(default_factory=dict)


def pixel_similarity(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Row-wise zoo similarity (Pearson of 16x16 grey pixels) of two image batches: (B,)."""
    return (zoo_embedding(a) * zoo_embedding(b)).sum(axis=1)


def embedder_similarity(embedder: Any) -> Similarity:
    """Row-wise cosine similarity under a `dmsec.match` embedder whose metric is inner_product."""
    if getattr(embedder, "metric", None) != "inner_product":
        raise ConfigError(
            f"`embedder` must have metric 'inner_product'; got {getattr(embedder, 'metric', None)!r}"
        )

    def similarity(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        codes_a, codes_b = (embedder.embed(_as_rgb_arrays(x)) for x in (a, b))
        return np.asarray((codes_a * codes_b).sum(axis=1), dtype=np.float32)

    return similarity


def _as_rgb_arrays(images: torch.Tensor) -> list[np.ndarray]:
    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return [np.ascontiguousarray(img.permute(1, 2, 0).numpy()) for img in x]


def authenticate(
    pair: ModelPair,
    images: torch.Tensor,
    config: CgiDmConfig | None = None,
    similarity: Similarity | None = None,
    progress: bool = False,
    invert: bool = True,
    snapshots: Sequence[int] = (),
) -> list[Evidence]:
    """CGI-DM evidence (and the loss-gap baseline) for each image (B, C, H, W) in [0, 1];
    `invert` False: the loss-gap baseline alone (no gradient inversion, no recovered image);
    `snapshots`: also score the recovery after each of these PGD steps (`Evidence.score_at`)."""
    config = (config or CgiDmConfig()).resolved(pair)
    similarity = similarity or pixel_similarity
    if images.ndim != 4:
        raise ConfigError(f"`images` must be (B, C, H, W) in [0, 1]; got {tuple(images.shape)}")
    if len(images) == 0:
        return []
    if float(images.min()) < 0 or float(images.max()) > 1:
        raise ConfigError("`images` must lie in [0, 1]")
    condition = instance_condition(pair) if config.condition is None else config.condition
    pre_condition = condition if config.pretrained_condition == "same" else None
    out: list[Evidence] = []
    batch = config.batch_size or len(images)
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch].float()
        out.extend(_authenticate_batch(pair, chunk, condition, pre_condition, config, similarity, progress, invert, snapshots))  # fmt: skip
    return out


def _authenticate_batch(
    pair: ModelPair,
    images: torch.Tensor,
    condition: Condition,
    pre_condition: Condition,
    config: CgiDmConfig,
    similarity: Similarity,
    progress: bool,
    invert: bool,
    snapshots: Sequence[int],
) -> list[Evidence]:
    handle = pair.pretrained
    n = len(images)
    with torch.no_grad():
        x0 = handle.encode_images(images).float()
        cond_pre = pair.encode_pre([pre_condition] * n)
        cond_ft = pair.encode_ft([condition] * n)
    assert config.t_max is not None
    gaps = loss_gap(
        pair, x0, cond_pre, cond_ft, config.baseline_draws, config.t_min, config.t_max, config.seed
    )
    if not invert:
        return [Evidence(None, None, float(gap), None, None) for gap in gaps]
    result = contrasting_gradient_inversion(
        pair, x0, cond_pre, cond_ft, config, progress, snapshots
    )
    with torch.no_grad():
        recovered = handle.decode(result.recovered.to(handle.dtype)).float().cpu()
        masked = handle.decode(result.masked.to(handle.dtype)).float().cpu()
        at = {
            s: handle.decode(x.to(handle.dtype)).float().cpu() for s, x in result.snapshots.items()
        }
    original = images.cpu()
    scores = similarity(recovered, original)
    masked_scores = similarity(masked, original)
    scores_at = {s: similarity(x, original) for s, x in at.items()}
    return [
        Evidence(
            score=float(scores[i]),
            recovered_image=recovered[i],
            baseline_gap=float(gaps[i]),
            masked_image=masked[i],
            masked_score=float(masked_scores[i]),
            score_at={s: float(v[i]) for s, v in scores_at.items()},
        )
        for i in range(n)
    ]
