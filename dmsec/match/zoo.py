"""The zoo-scale embeddings: Pearson correlation of pixels at 16x16 (`dmsec.metrics`).

- ``zoo``: grey pixels, the similarity FineXtract's measures use on the digit zoo's 16x16
  digits; default threshold the calibrated `copy_threshold()` (~0.99: closer than almost every
  real digit is to any other);
- ``art``: RGB pixels, the art zoo's (32x32 emoji by four artists); default threshold the
  calibrated `art_copy_threshold()` (see `dmsec.metrics`).

Learned copy detectors do not apply at that scale and need weights. Both are invariant to global
brightness and contrast; not to crops or shifts of more than a fraction of a 16x16 pixel, nor to
mirroring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from dmsec.match.embedder import Embedder, Metric, register_embedder
from dmsec.match.errors import EmbedderError
from dmsec.metrics import ART, DIGITS, EMBED_SIZE, Similarity


class _PixelSpaceEmbedder(Embedder):
    """An embedder over one `dmsec.metrics.Similarity` space (inner product = its similarity)."""

    metric: ClassVar[Metric] = "inner_product"
    space: ClassVar[Similarity]
    channels: ClassVar[int]

    def __init__(self, threshold: float | None = None) -> None:
        self._threshold = threshold
        if threshold is not None:
            self.validate_threshold(threshold)

    @property
    def dim(self) -> int:
        """channels x 16 x 16 floats."""
        return self.channels * EMBED_SIZE * EMBED_SIZE

    @property
    def default_threshold(self) -> float:
        """The space's calibrated copy threshold unless one was given."""
        return self.space.threshold() if self._threshold is None else self._threshold

    def config(self) -> dict[str, float]:
        """The threshold override, if any."""
        return {} if self._threshold is None else {"threshold": self._threshold}

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """One vector per image; images of one size are embedded in one batch."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, pixels in enumerate(images):
            if pixels.ndim != 3 or pixels.shape[2] != 3:
                raise EmbedderError(f"image {i} must be (H, W, 3); got {pixels.shape}")
            by_shape.setdefault(pixels.shape, []).append(i)
        for positions in by_shape.values():
            batch = np.stack([images[i] for i in positions]).transpose(0, 3, 1, 2)
            out[positions] = self.space.embed(torch.from_numpy(np.ascontiguousarray(batch)))
        return out


@register_embedder
class ZooEmbedder(_PixelSpaceEmbedder):
    """`zoo_embedding` vectors (256-d, L2-normalised); inner product = Pearson correlation."""

    name: ClassVar[str] = "zoo"
    space: ClassVar[Similarity] = DIGITS
    channels: ClassVar[int] = 1


@register_embedder
class ArtEmbedder(_PixelSpaceEmbedder):
    """`art_embedding` vectors (768-d, L2-normalised); inner product = colour Pearson correlation."""

    name: ClassVar[str] = "art"
    space: ClassVar[Similarity] = ART
    channels: ClassVar[int] = 3
