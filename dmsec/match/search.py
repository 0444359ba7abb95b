"""Turning one FAISS index's raw answers into `Hit` records: range or top-k, live ids only.

Range search returns every artwork within the threshold (inclusive). Top-k asks FAISS for k plus
the number of stale codes (removed artworks an HNSW or multi-hash index still holds), so k live
answers remain after the stale ones are dropped. Hits of one query are ordered from the closest,
ties broken by artwork id, so results do not depend on FAISS's internal order.
"""

from __future__ import annotations

import numpy as np

from dmsec.match.embedder import Embedder
from dmsec.match.faiss_index import VectorIndex
from dmsec.match.registry_records import Hit


def collect_hits(
    index: VectorIndex,
    embedder: Embedder,
    codes: np.ndarray,
    *,
    threshold: float | None,
    k: int | None,
    live_ids: np.ndarray,
) -> list[Hit]:
    """Search `index` with `codes` and return hits on live artworks (`live_ids`, sorted)."""
    stale = index.ntotal - len(live_ids)
    if k is None:
        t = embedder.validate_threshold(threshold)
        lims, scores, ids = index.range_search(codes, t)
        query_of = np.repeat(np.arange(len(codes)), np.diff(lims))
        keep = np.isin(ids, live_ids) if stale else np.ones(len(ids), dtype=bool)
        return _to_hits(query_of[keep], ids[keep], scores[keep], embedder, t, k=None)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer; got {k!r}")
    limit = None if threshold is None else embedder.validate_threshold(threshold)
    scores, ids = index.knn(codes, min(int(k) + max(stale, 0), max(index.ntotal, 1)))
    keep = ids >= 0
    if stale:
        keep &= np.isin(ids, live_ids)
    if limit is not None:
        keep &= scores <= limit if embedder.metric == "hamming" else scores >= np.float32(limit)
    query_of = np.broadcast_to(np.arange(len(codes))[:, None], ids.shape)
    return _to_hits(query_of[keep], ids[keep], scores[keep], embedder, limit, k=int(k))


def _to_hits(
    query_of: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    embedder: Embedder,
    threshold: float | None,
    k: int | None,
) -> list[Hit]:
    closeness = scores if embedder.metric == "hamming" else -scores
    order = np.lexsort((ids, closeness, query_of))
    query_of, ids, scores = query_of[order], ids[order], scores[order]
    starts = np.searchsorted(query_of, query_of, side="left")
    ranks = np.arange(len(query_of)) - starts
    hits = []
    for q, artwork, score, rank in zip(
        query_of.tolist(), ids.tolist(), scores.tolist(), ranks.tolist(), strict=True
    ):
        if k is not None and rank >= k:
            continue
        hits.append(
            Hit(
                query_index=q,
                artwork_id=artwork,
                score=float(score),
                embedder=embedder.name,
                metric=embedder.metric,
                threshold=threshold,
                rank=rank,
            )
        )
    return hits
