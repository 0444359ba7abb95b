"""Matching images against protected artwork: embedders and a FAISS registry.

Anchor: Meta's python-threatexchange / Hasher-Matcher-Actioner: PDQ hashes in FAISS, match at
Hamming distance <= 31 by range search, int64 ids joined to metadata afterwards, indexes stored
with FAISS's own serialisation (never pickled).

Use::

    from dmsec.match import ProtectedArtworkIndex

    idx = ProtectedArtworkIndex.open("s3://bank/artworks", create=True)   # or a local folder
    report = idx.add(["a.png", "b.jpg"], owner="Studio X", title=["A", "B"])
    report.ids          # new artwork ids; report.duplicates / report.errors for the rest
    hits = idx.search(candidates, embedder="zoo")                 # calibrated threshold
    hits = idx.search(candidates, embedder="pdq", threshold=31)   # explicit threshold
    hits = idx.search(candidates, embedder="pdq", k=5)            # top-k
    idx.artworks()      # pyarrow.Table: id, owner, title, source_uri, sha256, ... (.to_pandas())

`search` returns a list of `Hit` (query_index, artwork_id, score, embedder, metric, threshold,
rank): `score` is a Hamming distance for ``metric="hamming"`` (PDQ; hit when <= threshold) and a
cosine similarity for ``metric="inner_product"`` (zoo, dinov2, clip; hit when >= threshold).
`hits_to_table(hits)` makes an Arrow table to join with `artworks()` on ``artwork_id = id``.

Inputs (for `add` and `search`) may be paths, encoded bytes, PIL images, NumPy arrays
(``(H, W[, C])`` or a ``(B, H, W, C)`` batch) or torch tensors (``(C, H, W)``, or ``(B, C, H, W)``
/ ``(B, H, W)`` batches in [0, 1], the layout of `dmsec.metrics`). Files are untrusted: they are
decoded by `dmsec.images` under `DecodeLimits` (formats, pixels, bytes), and bad files become
`ImageError` records.

Embedders (`embedder_names()`): ``pdq`` (PDQ, 256 bits), ``zoo`` (16x16 Pearson correlation,
threshold `dmsec.metrics.copy_threshold()`), ``dinov2`` and ``clip`` (transformers models from a
local folder; no default threshold). New ones subclass `Embedder` with `@register_embedder`.
"""

from dmsec.match.embedder import (
    Embedder,
    create_embedder,
    embedder_class,
    embedder_names,
    register_embedder,
)
from dmsec.match.errors import EmbedderError, MatchError, RegistryError
from dmsec.match.index_policy import IndexPolicy
from dmsec.match.registry import ProtectedArtworkIndex
from dmsec.match.registry_records import AddReport, Hit, RegistryStats, hits_to_table

__all__ = [
    "AddReport",
    "Embedder",
    "EmbedderError",
    "Hit",
    "IndexPolicy",
    "MatchError",
    "ProtectedArtworkIndex",
    "RegistryError",
    "RegistryStats",
    "create_embedder",
    "embedder_class",
    "embedder_names",
    "hits_to_table",
    "register_embedder",
]
