"""Clustering generations into groups of the same memorised image (FineXtract, section "clustering").

The paper builds a similarity graph (edge where similarity >= τ), repeatedly removes the largest
maximal clique, and raises τ by 0.01 from τ_0 (the 25% quantile of random pairwise similarities)
until there are at least N0 cliques; each clique's member closest to the clique's mean feature is
one extracted image, ranked by clique size. Two changes, both deterministic and bounded:

1. Cliques. Exact maximal-clique search is exponential (the official code bounds it with a 30 s
   timeout that changes the answer with machine speed). We peel cliques greedily:
       repeat until every node is assigned:
         seed = the unassigned node with the most unassigned neighbours (ties: lowest index)
         grow C = {seed} by the candidate whose lowest similarity to C is highest (complete
         linkage; ties: lowest index), keeping only candidates adjacent to all of C
   Every group is a true clique; tight groups of near-duplicates come out whole. O(n²) per τ.
2. Direction of the τ ladder. Ascending from τ_0 stops at the first τ with N0 cliques, where a
   single clique can still hold several different memorised images (the graph keeps ~75% of all
   edges), so distinct training images get merged and one of them is lost. We walk the same
   0.01 ladder downwards instead, from 0.99 to τ_0, and stop at the first τ where at least N0
   groups hold two or more generations (an image generated twice, nearly identically); if that
   never happens the groups at τ_0 are used. Ranking and representatives are as in the paper.

N0: given by the caller (number of training images, when known) or estimated by
`estimate_num_groups`: the number of groups of size >= 2 at the copy threshold (at least 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dmsec.errors import ConfigError

TOP_THRESHOLD = 0.99


@dataclass(frozen=True)
class Clustering:
    """Groups of sample indices, largest first, with each group's representative."""

    groups: list[np.ndarray]
    representatives: np.ndarray  # sample index per group
    threshold: float

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(g) for g in self.groups], dtype=np.int64)


def greedy_cliques(similarity: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Partition nodes into cliques of the graph `similarity >= threshold` (see module docstring)."""
    n = similarity.shape[0]
    adj = similarity >= threshold
    np.fill_diagonal(adj, False)
    unassigned = np.ones(n, dtype=bool)
    degree = adj.sum(1).astype(np.int64)
    groups: list[np.ndarray] = []
    while unassigned.any():
        masked = np.where(unassigned, degree, -1)
        seed = int(np.argmax(masked))  # argmax returns the lowest index on ties
        if masked[seed] == 0:  # only isolated nodes are left: each is its own group
            groups.extend(np.array([i]) for i in np.flatnonzero(unassigned))
            break
        members = [seed]
        candidates = adj[seed] & unassigned
        link = similarity[seed].copy()  # each node's lowest similarity to the members so far
        while candidates.any():
            cand_idx = np.flatnonzero(candidates)
            pick = int(cand_idx[np.argmax(link[cand_idx])])
            members.append(pick)
            link = np.minimum(link, similarity[pick])
            candidates &= adj[pick]
        group = np.array(sorted(members), dtype=np.int64)
        unassigned[group] = False
        degree -= adj[:, group].sum(1)
        groups.append(group)
    return groups


def initial_threshold(similarity: np.ndarray, n_pairs: int = 1000, seed: int = 0) -> float:
    """τ_0: the 25% quantile of ~`n_pairs` random pairwise similarities, rounded down to 0.01."""
    n = similarity.shape[0]
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = (i + rng.integers(1, n, size=n_pairs)) % n  # j != i
    return math.floor(float(np.quantile(similarity[i, j], 0.25)) * 100) / 100


def representative(embeddings: np.ndarray, group: np.ndarray) -> int:
    """The member closest (cosine) to the group's mean embedding; lowest index on ties."""
    feats = embeddings[group]
    mean = feats.mean(0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return int(group[int(np.argmax(feats @ mean))])


def cluster_samples(
    embeddings: np.ndarray, n_groups: int, step: float = 0.01, seed: int = 0
) -> Clustering:
    """Walk τ down from 0.99 to τ_0 until >= `n_groups` repeated-generation groups; rank by size.

    `embeddings` are L2-normalised (N, D); similarity is their inner product.
    """
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ConfigError(
            f"`embeddings` must be a non-empty (N, D) array; got shape {embeddings.shape}"
        )
    if n_groups < 1:
        raise ConfigError(f"`n_groups` must be >= 1; got {n_groups}")
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, 0.0)
    floor = initial_threshold(sim, seed=seed)
    n_steps = max(0, round((TOP_THRESHOLD - floor) / step))
    threshold = floor
    groups = greedy_cliques(sim, floor)
    for i in range(n_steps + 1):
        tau = round(TOP_THRESHOLD - i * step, 6)
        if tau < floor:
            break
        candidate = greedy_cliques(sim, tau)
        if sum(len(g) >= 2 for g in candidate) >= n_groups:
            threshold, groups = tau, candidate
            break
    return _ranked(embeddings, sim, groups, threshold)


def _ranked(
    embeddings: np.ndarray, sim: np.ndarray, groups: list[np.ndarray], threshold: float
) -> Clustering:
    def cohesion(g: np.ndarray) -> float:
        return float(sim[np.ix_(g, g)].sum() / (len(g) * (len(g) - 1))) if len(g) > 1 else 0.0

    # largest first; ties: tighter group first, then lowest member index
    ordered = sorted(groups, key=lambda g: (-len(g), -cohesion(g), int(g[0])))
    reps = np.array([representative(embeddings, g) for g in ordered], dtype=np.int64)
    return Clustering(groups=ordered, representatives=reps, threshold=threshold)


def estimate_num_groups(embeddings: np.ndarray, copy_threshold: float, max_groups: int = 50) -> int:
    """Estimate N0: groups of size >= 2 among generations at the copy threshold (>= 1)."""
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, 0.0)
    groups = greedy_cliques(sim, copy_threshold)
    return int(min(max_groups, max(1, sum(len(g) >= 2 for g in groups))))
