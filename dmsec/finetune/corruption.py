"""Measures of the corruption stage along a fine-tuning run (arXiv 2405.19931, section 3).

The paper tracks fidelity to the training images (DINO / CLIP-I), image quality and diversity of
generations at increasing steps: fidelity first rises, then falls while noisy patterns fill the
images (the corruption stage), then recovers as the model overfits into copies. At the tiny
zoo's scale (16x16 grey digits) we use measures that need no learned weights:

- fidelity: for each sample, its best similarity (Pearson correlation of pixels, `dmsec.metrics`;
  grey 16x16 for the digit zoo, RGB 16x16 with `space=ART` for the art zoo) to any training
  image, averaged over samples;
- noise pattern: the share of a sample's spectral power (DC excluded) at radial frequencies
  above `HF_CUTOFF` cycles/pixel on the grey image, averaged over samples (the zoo's digits are
  bilinear upsamples of 8x8 images, so almost all their power lies below 0.25 cycles/pixel; the
  art zoo's 32x32 emoji have sharp outlines, so their share is higher to start with and only
  changes along a run compare);
- diversity: mean pairwise dissimilarity (1 − similarity) between samples;
- dip (`fidelity_dip`): the maximum drawdown of the fidelity curve, defined before any result
  was seen: max over evaluation points j of (max_{i ≤ j} f_i − f_j). It is 0 for a curve that
  never falls, and it measures the deepest fall below an earlier peak whether or not the curve
  recovers afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dmsec.metrics import Similarity, similarity_matrix

HF_CUTOFF = 0.25  # cycles per pixel; Nyquist is 0.5


def fidelity(
    samples: torch.Tensor, train_images: torch.Tensor, space: Similarity | None = None
) -> float:
    """Mean over samples of the best similarity to any training image (in `space`)."""
    return float(similarity_matrix(samples, train_images, space).max(axis=1).mean())


def high_frequency_energy(images: torch.Tensor, cutoff: float = HF_CUTOFF) -> float:
    """Mean over images of the share of spectral power (DC excluded) above `cutoff` cycles/px."""
    if not 0 < cutoff < 0.5:
        raise ValueError(f"`cutoff` must be in (0, 0.5); got {cutoff}")
    x = images.detach().float().cpu()
    x = x.mean(dim=1) if x.ndim == 4 else x  # grey (B, H, W)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(x.shape[-1]).abs()[None, :]
    high = (fy**2 + fx**2).sqrt() > cutoff
    total = power.flatten(1).sum(1).clamp_min(1e-12)
    return float((power[:, high].sum(1) / total).mean())


def diversity(samples: torch.Tensor, space: Similarity | None = None) -> float:
    """Mean pairwise dissimilarity 1 − similarity between distinct samples (in `space`)."""
    n = len(samples)
    if n < 2:
        return 0.0
    sim = similarity_matrix(samples, samples, space)
    off = ~np.eye(n, dtype=bool)
    return float((1.0 - sim[off]).mean())


def fidelity_dip(curve: Sequence[float]) -> float:
    """Maximum drawdown: max_j (max_{i ≤ j} f_i − f_j); 0 when the curve never falls."""
    peak, dip = -np.inf, 0.0
    for value in curve:
        peak = max(peak, value)
        dip = max(dip, peak - value)
    return float(dip)
