"""FAISS's range-search result layout and small operations on it.

A range search over nq queries returns ``(lims, scores, ids)``: query i's results are
``scores[lims[i]:lims[i+1]]`` and ``ids[lims[i]:lims[i+1]]``; ``lims`` has nq + 1 entries.
"""

from __future__ import annotations

import numpy as np

RangeResult = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(lims, scores, ids)`` as above."""


def filter_ranges(
    lims: np.ndarray, scores: np.ndarray, ids: np.ndarray, keep: np.ndarray
) -> RangeResult:
    """Drop range-search results where `keep` is False, fixing up `lims`."""
    if keep.all():
        return lims, scores, ids.astype(np.int64)
    query_of = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
    counts = np.bincount(query_of[keep], minlength=len(lims) - 1)
    new_lims = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_lims, scores[keep], ids[keep].astype(np.int64)


def merge_ranges(a: RangeResult, b: RangeResult) -> RangeResult:
    """Two range-search results over the same queries, merged per query."""
    nq = len(a[0]) - 1
    query_of = np.concatenate([np.repeat(np.arange(nq), np.diff(r[0])) for r in (a, b)])
    order = np.argsort(query_of, kind="stable")
    lims = np.concatenate([[0], np.cumsum(np.bincount(query_of, minlength=nq))]).astype(np.int64)
    scores = np.concatenate([a[1], b[1]])[order]
    ids = np.concatenate([a[2], b[2]]).astype(np.int64)[order]
    return lims, scores, ids


def pad_knn(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (nq, k') results to (nq, k) with id -1."""
    if scores.shape[1] >= k:
        return scores, ids
    extra = k - scores.shape[1]
    nq = len(scores)
    return (
        np.concatenate([scores, np.zeros((nq, extra), np.float32)], axis=1),
        np.concatenate([ids, np.full((nq, extra), -1, np.int64)], axis=1),
    )


def replace_rows(result: RangeResult, rows: np.ndarray, other: RangeResult) -> RangeResult:
    """`result` with the results of queries `rows` replaced by `other`'s (in `rows` order)."""
    lims, scores, ids = result
    nq = len(lims) - 1
    rows_s = [scores[lims[i] : lims[i + 1]] for i in range(nq)]
    rows_i = [ids[lims[i] : lims[i + 1]] for i in range(nq)]
    o_lims, o_scores, o_ids = other
    for j, q in enumerate(rows):
        rows_s[q] = o_scores[o_lims[j] : o_lims[j + 1]]
        rows_i[q] = o_ids[o_lims[j] : o_lims[j + 1]]
    counts = np.array([len(r) for r in rows_i], dtype=np.int64)
    new_lims = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_lims, np.concatenate(rows_s).astype(np.float32), np.concatenate(rows_i)
