"""Shared measures: the zoo's image similarity and FineXtract's AS and A-ESR.

Similarity. The zoo's images are 16x16 grey digits; learned copy detectors (SSCD, DINO) do not
apply at that scale and could not be downloaded anyway. We use the cosine of mean-centred pixel
vectors (the Pearson correlation of two images after resizing to 16x16 grey): it ignores a global
brightness/contrast change, is what FAISS's inner-product index computes on `zoo_embedding`
vectors, and needs no weights. Its weakness: digits are smooth, so different real digits already
correlate at ~0.97 (median nearest neighbour). The copy threshold is therefore calibrated on the
data itself: the space's `threshold()` (`dmsec.zoo.presets.copy_threshold`) is a high quantile of the similarity between each real digit and
its nearest *other* real digit, i.e. a sample counts as a copy only when it is closer to a
training image than almost every real digit is to any other.

Art zoo (`art_embedding`, the "art" space): the same measure in colour, the Pearson correlation
of RGB pixels at 16x16, with its copy threshold calibrated on the art data set the same way
(`dmsec.zoo.presets.art_copy_threshold`), with two differences the data forces, both documented
there; its value (0.9495) is recorded, so using the space needs no art data installed. The zoos register the spaces in `SPACES`; this module imports no zoo.

AS / A-ESR (docs/methods/finextract.md): for each training image, its best similarity to any
extracted image; AS is the mean of those, A-ESR_τ the share at or above τ. Every measure takes
the similarity space (`SPACES["zoo"]`, the default, or `SPACES["art"]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dmsec.plugins import LazyTable

EMBED_SIZE = 16


def _as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Images as a float (B, C, H, W) tensor in [0, 1]; accepts (B, H, W) and uint8."""
    x = torch.as_tensor(images)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(
            f"`images` must have shape (B, C, H, W) or (B, H, W); got {tuple(x.shape)}"
        )
    return x


def zoo_embedding(images: torch.Tensor | np.ndarray, size: int = EMBED_SIZE) -> np.ndarray:
    """L2-normalised, mean-centred grey pixels at `size`x`size`: (B, size*size) float32.

    The inner product of two embeddings is the Pearson correlation of the two images.
    """
    x = _as_tensor(images).detach().cpu()
    if x.shape[1] == 3:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    elif x.shape[1] != 1:
        x = x.mean(dim=1, keepdim=True)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    v = x.flatten(1)
    v = v - v.mean(dim=1, keepdim=True)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return v.numpy().astype(np.float32)


def art_embedding(images: torch.Tensor | np.ndarray, size: int = EMBED_SIZE) -> np.ndarray:
    """L2-normalised, mean-centred RGB pixels at `size`x`size`: (B, 3*size*size) float32.

    The inner product is the Pearson correlation of the two colour images (grey input is
    repeated over the three channels).
    """
    x = _as_tensor(images).detach().cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    v = x.flatten(1)
    v = v - v.mean(dim=1, keepdim=True)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return v.numpy().astype(np.float32)


@dataclass(frozen=True)
class Similarity:
    """A similarity space: an embedding whose inner product is the similarity, and the copy
    threshold calibrated for it."""

    name: str
    embed: Callable[[torch.Tensor | np.ndarray], np.ndarray]
    threshold: Callable[[], float]


def similarity_matrix(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, space: Similarity | None = None
) -> np.ndarray:
    """Pairwise similarity between image sets `a` (N images) and `b` (M images): (N, M)."""
    embed = (space or SPACES["zoo"]).embed
    return embed(a) @ embed(b).T


def best_similarity(
    train: torch.Tensor | np.ndarray,
    extracted: torch.Tensor | np.ndarray,
    space: Similarity | None = None,
) -> np.ndarray:
    """For each training image, its highest similarity to any extracted image: (N,)."""
    if len(extracted) == 0:
        return np.full(len(train), -1.0, dtype=np.float32)
    return similarity_matrix(train, extracted, space).max(axis=1)


def average_similarity(
    train: torch.Tensor | np.ndarray,
    extracted: torch.Tensor | np.ndarray,
    space: Similarity | None = None,
) -> float:
    """AS: mean over training images of the best similarity to any extracted image."""
    return float(best_similarity(train, extracted, space).mean())


def extraction_success_rate(
    train: torch.Tensor | np.ndarray,
    extracted: torch.Tensor | np.ndarray,
    threshold: float | None = None,
    space: Similarity | None = None,
) -> float:
    """A-ESR_τ: share of training images whose best similarity to an extracted image is >= τ.

    τ defaults to the space's calibrated copy threshold.
    """
    tau = (space or SPACES["zoo"]).threshold() if threshold is None else threshold
    return float((best_similarity(train, extracted, space) >= tau).mean())


def copied_share(
    train: torch.Tensor | np.ndarray,
    samples: torch.Tensor | np.ndarray,
    space: Similarity | None = None,
) -> float:
    """Share of training images that at least one sample copies (similarity >= copy threshold)."""
    return extraction_success_rate(train, samples, None, space)


#: similarity spaces by name; the zoos register theirs ("zoo": 16x16 grey digits, "art": 16x16
#: RGB emoji art) with thresholds calibrated on their own data (`dmsec.zoo.presets`)
SPACES: LazyTable[Similarity] = LazyTable(
    "similarity space", {"zoo": "dmsec.zoo.presets", "art": "dmsec.zoo.presets"}
)
_LEGACY = {"DIGITS": "zoo", "ART": "art", "copy_threshold": "zoo", "art_copy_threshold": "art"}


def __getattr__(name: str) -> Any:
    """`DIGITS`, `ART` (the zoos' spaces) and their calibrated `copy_threshold`,
    `art_copy_threshold`, looked up in `SPACES`, so this module imports no zoo."""
    if name not in _LEGACY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    space = SPACES[_LEGACY[name]]
    return space if name.isupper() else space.threshold
