"""Which FAISS index an embedder gets, by metric and registry size.

Exact by default: ``IndexFlatIP`` for dense vectors and ``IndexBinaryFlat`` for PDQ bits. Once a
binary index holds more codes than `multihash_above` (default 2^16, the number of buckets per
table, where the flat scan starts to dominate) its range searches go through multi-index hashing
(`dmsec.match.multihash`, python-threatexchange's 16 x 16-bit split) built in memory over the
same flat index: still exact, and sublinear. That is the "multihash" kind; on disk it is the flat
index, so switching costs no rebuild.

Above `approximate_above` codes (a size the user sets; None = never) dense embedders get HNSW or
IVF, which trade recall for speed. FAISS's binary HNSW has no range search, so PDQ's approximate
choice is binary IVF; by default PDQ stays on the exact multi-hash path instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from dmsec.errors import ConfigError

IndexKind = Literal["flat", "multihash", "hnsw", "ivf"]
INDEX_KINDS: tuple[IndexKind, ...] = ("flat", "multihash", "hnsw", "ivf")


@dataclass(frozen=True)
class IndexPolicy:
    """How each embedder's FAISS index is built; stored in the registry's manifest."""

    approximate_above: int | None = None
    dense_approximate: Literal["hnsw", "ivf"] = "hnsw"
    binary_approximate: Literal["multihash", "ivf"] = "multihash"
    multihash_above: int = 2**16
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32

    def __post_init__(self) -> None:
        if self.approximate_above is not None and self.approximate_above < 0:
            raise ConfigError(
                f"`approximate_above` must be >= 0 or None; got {self.approximate_above}"
            )
        if self.dense_approximate not in ("hnsw", "ivf"):
            raise ConfigError(
                f"`dense_approximate` must be 'hnsw' or 'ivf'; got {self.dense_approximate!r}"
            )
        if self.binary_approximate not in ("multihash", "ivf"):
            raise ConfigError(
                f"`binary_approximate` must be 'multihash' or 'ivf'; got {self.binary_approximate!r}"
            )
        if self.multihash_above < 0:
            raise ConfigError(f"`multihash_above` must be >= 0; got {self.multihash_above}")
        for name in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be >= 1; got {getattr(self, name)}")

    def kind_for(self, metric: str, n: int) -> IndexKind:
        """The index kind for `n` codes of `metric` ("hamming" or "inner_product")."""
        approximate = self.approximate_above is not None and n > self.approximate_above
        if metric == "hamming":
            if approximate and self.binary_approximate == "ivf":
                return "ivf"
            return "multihash" if n > self.multihash_above else "flat"
        return self.dense_approximate if approximate else "flat"

    def is_exact(self, kind: IndexKind) -> bool:
        """Whether range search on `kind` returns every code within the threshold."""
        return kind in ("flat", "multihash")

    @staticmethod
    def ivf_nlist(n: int) -> int:
        """IVF cells for `n` codes: ~4 sqrt(n), with >= 39 training points per cell."""
        return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the manifest's ``policy``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexPolicy:
        """The policy `to_dict` wrote; unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown IndexPolicy keys: {sorted(unknown)}")
        return cls(**data)
