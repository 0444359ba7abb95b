"""How visible a protection is: PSNR and SSIM of a protected image against its original.

SSIM follows Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to
Structural Similarity" (IEEE TIP 2004), eq. 13, with the paper's settings: an 11x11 Gaussian
window (σ = 1.5), K1 = 0.01, K2 = 0.03, local statistics with population (biased) variances, and
the SSIM map averaged over the *valid* positions only (no padding), per channel then over
channels — the convention of the reference MATLAB code and of scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

Known limits: images smaller than the window use a window of their own (odd) size, so SSIM of
tiny images (the zoo's 16x16 digits) averages few positions; colour images are scored per RGB
channel, not in a luminance space; both measures are computed on the float images given, so
quantisation to 8 bits is only included if the caller quantised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dmsec.errors import ConfigError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# PSNR of identical images: reported as this finite ceiling so Parquet columns stay float.
PSNR_IDENTICAL = 100.0


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ConfigError(
            f"`images` and `reference` must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim != 4:
        raise ConfigError(f"`images` must be (B, C, H, W); got shape {tuple(a.shape)}")


def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10·log10(R² / MSE); identical images give `PSNR_IDENTICAL`."""
    _check_pair(images, reference)
    mse = (images.double() - reference.double()).pow(2).flatten(1).mean(1)
    out = 10 * torch.log10(data_range**2 / mse.clamp_min(1e-30))
    return out.clamp(max=PSNR_IDENTICAL).float()


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length `size`."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(
    images: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> torch.Tensor:
    """Per-image mean SSIM (Wang et al. 2004, eq. 13) with a Gaussian window; 1 = identical."""
    _check_pair(images, reference)
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"`window` must be an odd integer >= 1; got {window}")
    _, c, h, w = images.shape
    size = min(window, h if h % 2 else h - 1, w if w % 2 else w - 1)
    g = gaussian_window(size, sigma).to(images.device)
    x = images.double().flatten(0, 1)[:, None]  # (B·C, 1, H, W): channels scored separately
    y = reference.double().flatten(0, 1)[:, None]

    def blur(z: torch.Tensor) -> torch.Tensor:
        # separable Gaussian, valid positions only
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    # eq. 13: luminance · contrast-structure, with the stabilising constants C1, C2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    per_channel = ssim_map.flatten(1).mean(1).view(-1, c)
    return per_channel.mean(1).float()


def psnr_for_linf(eps: float, data_range: float = 1.0) -> float:
    """The PSNR if *every* pixel moved by exactly ±`eps`: a lower bound for an L∞ budget."""
    return 10 * math.log10(data_range**2 / eps**2)
