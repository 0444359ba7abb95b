"""The zoo's data: scikit-learn's bundled 8x8 digits, upsampled to 16x16 (no download)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

IMAGE_SIZE = 16


@functools.cache
def load_digit_images(size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ((N, 1, size, size) float in [0, 1], (N,) int64 labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x, torch.tensor(digits.target, dtype=torch.int64)
