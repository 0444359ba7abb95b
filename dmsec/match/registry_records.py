"""The records the registry hands back: search hits, add reports, statistics; and its schema.

``artworks.parquet`` holds one row per live artwork:

=============  ==========================  ==================================================
column         type                        meaning
=============  ==========================  ==================================================
id             int64                       artwork id, never reused; FAISS's id for its codes
owner          string                      rights holder
title          string                      title (file stem by default)
source_uri     string (nullable)           where the image came from
sha256         string                      hex sha256 of the file (of the pixels in memory)
width, height  int32                       decoded size
added_at       timestamp[us, UTC]          when it was added
<embedder>     binary(32) / list<float>[d]  that embedder's code (e.g. ``pdq``, ``zoo``)
=============  ==========================  ==================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from dmsec.images import ImageError
from dmsec.match.embedder import Embedder, Metric

METADATA_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.int64(), nullable=False),
    pa.field("owner", pa.string(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("source_uri", pa.string()),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("added_at", pa.timestamp("us", tz="UTC"), nullable=False),
)


def artworks_schema(embedders: Sequence[Embedder]) -> pa.Schema:
    """The schema of artworks.parquet for a registry with these embedders."""
    codes = [pa.field(e.name, e.arrow_type(), nullable=False) for e in embedders]
    return pa.schema([*METADATA_FIELDS, *codes], metadata={b"dmsec.schema": b"artworks/1"})


@dataclass(frozen=True)
class Hit:
    """Query image `query_index` matched artwork `artwork_id` under `embedder`.

    `score` is a Hamming distance when ``metric == "hamming"`` (lower is closer; a range hit has
    ``score <= threshold``) and a cosine similarity when ``metric == "inner_product"`` (higher is
    closer; a range hit has ``score >= threshold``). `threshold` is None for a top-k search
    without one. `rank` orders one query's hits from the closest (0).
    """

    query_index: int
    artwork_id: int
    score: float
    embedder: str
    metric: Metric
    threshold: float | None
    rank: int


HIT_SCHEMA = pa.schema(
    [
        pa.field("query_index", pa.int64(), nullable=False),
        pa.field("artwork_id", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("embedder", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("rank", pa.int32(), nullable=False),
    ]
)


def hits_to_table(hits: Sequence[Hit]) -> pa.Table:
    """Hits as an Arrow table with `HIT_SCHEMA` (join it to `artworks()` on artwork_id = id)."""
    return pa.Table.from_pylist([asdict(h) for h in hits], schema=HIT_SCHEMA)


@dataclass(frozen=True)
class AddedArtwork:
    """Input `index` was added as artwork `artwork_id`."""

    index: int
    artwork_id: int
    sha256: str
    source: str | None


DuplicateReason = Literal["sha256", "identical_hash"]


@dataclass(frozen=True)
class Duplicate:
    """Input `index` was not added: it duplicates artwork `existing_id`.

    `reason` is "sha256" (same bytes) or "identical_hash" (every embedder's code is identical,
    e.g. the same pixels in another lossless file), so the registry could not tell them apart.
    """

    index: int
    existing_id: int
    reason: DuplicateReason
    source: str | None


@dataclass
class AddReport:
    """What `ProtectedArtworkIndex.add` did with each input."""

    added: list[AddedArtwork] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    errors: list[ImageError] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """Ids of the newly added artworks, in input order."""
        return [a.artwork_id for a in self.added]


@dataclass(frozen=True)
class EmbedderStats:
    """One embedder's index: kind, size, stale codes, and what the policy would build now."""

    name: str
    metric: Metric
    dim: int
    kind: str
    exact: bool
    codes: int
    stale: int
    index_bytes: int | None
    recommended_kind: str

    @property
    def rebuild_recommended(self) -> bool:
        """True when stale codes exist or the policy would now build another kind."""
        return self.stale > 0 or self.kind != self.recommended_kind


@dataclass(frozen=True)
class RegistryStats:
    """A registry at a glance."""

    location: str
    artworks: int
    owners: int
    next_id: int
    embedders: list[EmbedderStats]
    policy: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with each embedder's `rebuild_recommended`."""
        out = asdict(self)
        for entry, stats in zip(out["embedders"], self.embedders, strict=True):
            entry["rebuild_recommended"] = stats.rebuild_recommended
        return out
