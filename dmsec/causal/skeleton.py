"""The posterior's own skeleton and the two simple ways of combining it with a learned PAG.

SPOT's learner (with its keep-cut, `spot.SPOTConfig.keep_cut`) keeps every pair the posterior is
sure of inside the learning itself. These are the plain alternatives it is compared with on the
tuning split (`benchmarks/spot.py`), and the ``dmsec spot --skeleton-only`` output:

- `posterior_adjacency`: ``S_ij > cut``, the thresholded posterior (no marks);
- `skeleton_pag`: that adjacency as a PAG with circles at both ends (nothing oriented);
- `with_posterior_skeleton`: the posterior's skeleton, with the learned PAG's marks where the
  learned PAG has the edge and circles elsewhere (edges the posterior lacks are removed);
- `union_with_posterior`: the learned PAG plus the posterior's pairs above a (higher) cut that it
  lacks, those with circles.

The combinations are PAG-level edits: unlike the keep-cut they are not checked to be the PAG of
any MAG (an added circle edge can contradict a collider the learner oriented).
"""

from __future__ import annotations

import numpy as np

from dmsec.causal.graphs import CIRCLE, NONE, check_endpoint_matrix, symmetric_adjacency


def posterior_adjacency(S: np.ndarray, cut: float) -> np.ndarray:
    """Boolean ``(d, d)`` adjacency ``S > cut`` (symmetric, false diagonal)."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"`S` must be a square matrix; got shape {S.shape}")
    if not 0 <= cut < 1:
        raise ValueError(f"`cut` must be in [0, 1); got {cut}")
    adj = (cut < S) | (cut < S.T)
    np.fill_diagonal(adj, False)
    return adj


def skeleton_pag(adjacency: np.ndarray) -> np.ndarray:
    """The adjacency as a PAG with no orientation (``a o-o b`` on every adjacent pair)."""
    adj = np.asarray(adjacency, dtype=bool)
    return np.where(adj | adj.T, CIRCLE, NONE).astype(np.int8)


def with_posterior_skeleton(pag: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """The skeleton of `adjacency` with `pag`'s marks where `pag` has the edge, circles elsewhere."""
    P = check_endpoint_matrix(pag, "pag")
    adj = symmetric_adjacency(adjacency, P.shape[0])
    out = np.where(adj, CIRCLE, NONE).astype(np.int8)
    both = adj & (P != NONE)
    out[both] = P[both]
    return out


def union_with_posterior(pag: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """`pag` plus ``a o-o b`` on the pairs of `adjacency` it lacks."""
    P = check_endpoint_matrix(pag, "pag").copy()
    adj = symmetric_adjacency(adjacency, P.shape[0])
    P[adj & (P == NONE)] = CIRCLE
    return P
