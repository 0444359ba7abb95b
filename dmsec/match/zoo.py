"""The zoo-scale embedding: Pearson correlation of grey pixels at 16x16 (`dmsec.metrics`).

It is the similarity FineXtract's measures use on the tiny zoo's 16x16 digits, where learned
copy detectors do not apply; its default match threshold is the calibrated `copy_threshold()`
(~0.99: closer than almost every real digit is to any other). Invariant to global brightness and
contrast; not to crops or shifts of more than a fraction of a 16x16 pixel, nor to mirroring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from dmsec.match.embedder import Embedder, Metric, register_embedder
from dmsec.match.errors import EmbedderError
from dmsec.metrics import EMBED_SIZE, copy_threshold, zoo_embedding


@register_embedder
class ZooEmbedder(Embedder):
    """`zoo_embedding` vectors (256-d, L2-normalised); inner product = Pearson correlation."""

    name: ClassVar[str] = "zoo"
    metric: ClassVar[Metric] = "inner_product"

    def __init__(self, threshold: float | None = None) -> None:
        self._threshold = threshold
        if threshold is not None:
            self.validate_threshold(threshold)

    @property
    def dim(self) -> int:
        """16 * 16 = 256 floats."""
        return EMBED_SIZE * EMBED_SIZE

    @property
    def default_threshold(self) -> float:
        """The calibrated `copy_threshold()` unless one was given."""
        return copy_threshold() if self._threshold is None else self._threshold

    def config(self) -> dict[str, float]:
        """The threshold override, if any."""
        return {} if self._threshold is None else {"threshold": self._threshold}

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """One 256-d vector per image; images of one size are embedded in one batch."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, pixels in enumerate(images):
            if pixels.ndim != 3 or pixels.shape[2] != 3:
                raise EmbedderError(f"image {i} must be (H, W, 3); got {pixels.shape}")
            by_shape.setdefault(pixels.shape, []).append(i)
        for positions in by_shape.values():
            batch = np.stack([images[i] for i in positions]).transpose(0, 3, 1, 2)
            out[positions] = zoo_embedding(torch.from_numpy(np.ascontiguousarray(batch)))
        return out
