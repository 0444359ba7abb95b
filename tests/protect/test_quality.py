"""PSNR and SSIM against hand-computed values and a direct per-window reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmsec.errors import ConfigError
from dmsec.protect.quality import PSNR_IDENTICAL, gaussian_window, psnr, psnr_for_linf, ssim


def _rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _ssim_reference(x: np.ndarray, y: np.ndarray, size=11, sigma=1.5) -> float:
    """SSIM of one channel, window by window (Wang et al. 2004, eq. 13, valid positions)."""
    g = gaussian_window(size, sigma).numpy()
    w = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append(
                ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    return float(np.mean(vals))


def test_psnr_of_a_uniform_shift_is_its_closed_form():
    x = _rand((2, 1, 16, 16)) * 0.9
    shifted = x + 8 / 255
    assert psnr(shifted, x) == pytest.approx(torch.full((2,), 20 * math.log10(255 / 8)), abs=1e-4)
    assert psnr_for_linf(8 / 255) == pytest.approx(20 * math.log10(255 / 8))
    assert psnr(x, x).tolist() == [PSNR_IDENTICAL, PSNR_IDENTICAL]


def test_ssim_matches_a_window_by_window_reference_per_channel():
    x = _rand((2, 3, 20, 18), seed=1)
    y = (x + 0.1 * _rand((2, 3, 20, 18), seed=2) - 0.05).clamp(0, 1)
    ours = ssim(y, x)
    for b in range(2):
        ref = np.mean(
            [_ssim_reference(y[b, c].double().numpy(), x[b, c].double().numpy()) for c in range(3)]
        )
        assert ours[b].item() == pytest.approx(ref, abs=1e-5)


def test_ssim_is_one_for_identical_symmetric_and_falls_with_noise():
    x = _rand((3, 1, 16, 16))
    assert torch.allclose(ssim(x, x), torch.ones(3))
    noisy = [(x + s * (_rand(x.shape, seed=5) - 0.5)).clamp(0, 1) for s in (0.05, 0.2, 0.6)]
    scores = [ssim(n, x) for n in noisy]
    assert torch.allclose(ssim(noisy[0], x), ssim(x, noisy[0]))
    assert (scores[0] > scores[1]).all() and (scores[1] > scores[2]).all()


def test_images_smaller_than_the_window_use_their_own_size():
    x = _rand((1, 1, 6, 8))
    y = (x + 0.05).clamp(0, 1)
    ref = _ssim_reference(y[0, 0].double().numpy(), x[0, 0].double().numpy(), size=5)
    assert ssim(y, x).item() == pytest.approx(ref, abs=1e-5)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ConfigError, match="same shape"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ConfigError, match="`window`"):
        ssim(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), window=4)
