"""GPU FAISS for exact (flat) indexes, used when faiss-gpu and a CUDA device are present.

FAISS's GPU indexes answer k-nearest-neighbour queries but not range search, so a range search
runs as k-NN with a growing k: a query whose k-th neighbour is still inside the threshold is
asked again with twice the k, up to the GPU's k limit (2048); the few queries with even more
neighbours inside the threshold are left to the CPU index. The result is the exact range search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

# Largest k FAISS's GPU k-selection supports.
GPU_MAX_K = 2048

KnnFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def gpu_faiss_available() -> bool:
    """True when the installed FAISS has GPU support and sees at least one CUDA device."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class GpuFlatSearcher:
    """A GPU copy of a flat index (``IndexFlatIP`` or ``IndexBinaryFlat``) for k-NN."""

    def __init__(self, cpu_flat: Any, *, binary: bool, device: int = 0) -> None:
        self.resources = faiss.StandardGpuResources()
        self.index: Any
        if binary:
            self.index = faiss.GpuIndexBinaryFlat(self.resources, cpu_flat)
        else:
            self.index = faiss.index_cpu_to_gpu(self.resources, device, cpu_flat)
        self.ntotal = int(cpu_flat.ntotal)

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and positions (into the flat index) of each query's `k` nearest codes."""
        return self.index.search(queries, min(k, self.ntotal, GPU_MAX_K))


def range_via_knn(
    knn: KnnFn,
    queries: np.ndarray,
    within: Callable[[np.ndarray], np.ndarray],
    ntotal: int,
    *,
    k_start: int = 64,
    k_max: int = GPU_MAX_K,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact range search from k-NN by doubling k.

    `within(scores)` marks the scores inside the threshold; `knn` returns results sorted from
    nearest. Returns ``(lims, scores, positions, unresolved)`` in FAISS's range-search layout;
    `unresolved` lists queries with more than `k_max` results inside the threshold, whose rows
    are left empty for the caller to fill from another index.
    """
    nq = len(queries)
    per_query_scores: list[np.ndarray] = [np.empty(0)] * nq
    per_query_pos: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * nq
    unresolved: list[int] = []
    pending = np.arange(nq)
    k = min(k_start, ntotal, k_max)
    while len(pending) and k > 0:
        scores, positions = knn(queries[pending], k)
        inside = within(scores) & (positions >= 0)
        full = inside[:, -1] if k < ntotal else np.zeros(len(pending), dtype=bool)
        for row, q in enumerate(pending):
            if not full[row]:
                keep = inside[row]
                per_query_scores[q] = scores[row][keep]
                per_query_pos[q] = positions[row][keep].astype(np.int64)
        pending = pending[full]
        if len(pending) and k >= min(k_max, ntotal):
            unresolved.extend(int(q) for q in pending)
            pending = pending[:0]
        k = min(2 * k, k_max, ntotal)
    counts = np.array([len(p) for p in per_query_pos], dtype=np.int64)
    lims = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    all_scores = (
        np.concatenate([s.astype(np.float32) for s in per_query_scores])
        if nq
        else np.empty(0, np.float32)
    )
    all_pos = np.concatenate(per_query_pos) if nq else np.empty(0, dtype=np.int64)
    return lims, all_scores, all_pos, np.asarray(unresolved, dtype=np.int64)
