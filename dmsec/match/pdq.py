"""PDQ: Meta's 256-bit perceptual hash, the trust-and-safety standard for image matching.

Reference: Meta, "The TMK+PDQF Video-Hashing Algorithm and the PDQ Image Similarity Algorithm"
(2019); matching convention from python-threatexchange: a pair matches at Hamming distance
<= 31. Hashes are stored packed, most significant bit first, so ``bytes.hex()`` of a code is the
same hex string ThreatExchange and HMA exchange (`to_hex` / `from_hex`).

Known limits (measured on drawn 256x256 test artworks): downscaling, JPEG re-encoding and light
noise move a hash 0-14 bits, but upscaling by 1.25-1.5x moves it up to ~34 (median ~20) and
crops are fragile: 2 px per side <= 24 bits, 3 px up to 34, 5 px 24-40, 5% per side 76-102.
Rotations and mirroring are not covered (`pdqhash.compute_dihedral` is); images with little
structure (flat colour) get low-quality, unreliable hashes (`quality` < 50).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pdqhash

from dmsec.images import rgb_to_uint8
from dmsec.match.embedder import Embedder, Metric, register_embedder

PDQ_BITS = 256
PDQ_MATCH_THRESHOLD = 31


@register_embedder
class PdqEmbedder(Embedder):
    """PDQ hashes as (B, 32) uint8 codes; Hamming distance, default match threshold 31."""

    name: ClassVar[str] = "pdq"
    metric: ClassVar[Metric] = "hamming"

    @property
    def dim(self) -> int:
        """256 bits."""
        return PDQ_BITS

    @property
    def default_threshold(self) -> float:
        """Distance 31, python-threatexchange's PDQ match threshold."""
        return PDQ_MATCH_THRESHOLD

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Packed PDQ hashes, one row of 32 bytes per image."""
        codes, _ = self.embed_with_quality(images)
        return codes

    def embed_with_quality(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Packed hashes and PDQ's quality score (0-100; below 50 is unreliable) per image."""
        codes = np.empty((len(images), PDQ_BITS // 8), dtype=np.uint8)
        quality = np.empty(len(images), dtype=np.int32)
        for i, pixels in enumerate(images):
            bits, q = pdqhash.compute(rgb_to_uint8(pixels))
            codes[i] = np.packbits(bits.astype(np.uint8))
            quality[i] = q
        return codes, quality


def to_hex(code: np.ndarray) -> str:
    """A packed 32-byte PDQ code as ThreatExchange's 64-character hex string."""
    return bytes(np.asarray(code, dtype=np.uint8)).hex()


def from_hex(hex_hash: str) -> np.ndarray:
    """ThreatExchange's 64-character hex PDQ hash as a packed (32,) uint8 code."""
    if len(hex_hash) != PDQ_BITS // 4:
        raise ValueError(f"`hex_hash` must have {PDQ_BITS // 4} hex digits; got {len(hex_hash)}")
    return np.frombuffer(bytes.fromhex(hex_hash), dtype=np.uint8).copy()
