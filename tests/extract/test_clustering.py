"""Clustering: planted duplicates end up together, deterministically, and groups are cliques."""

from __future__ import annotations

import numpy as np

from dmsec.extract.clustering import cluster_samples, estimate_num_groups, greedy_cliques


def _planted(seed=0, sizes=(7, 5, 3), n_noise=20, dim=64, jitter=0.02):
    """Like a fine-tune's generations: tight near-duplicates of a few images (the planted groups)
    plus looser variations around them and some unrelated images (label -1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    rows, labels = [], []
    for g, size in enumerate(sizes):
        rows.append(centres[g] + jitter * rng.normal(size=(size, dim)))
        labels += [g] * size
    loose = centres[rng.integers(0, len(sizes), n_noise // 2)] + 0.8 * rng.normal(
        size=(n_noise // 2, dim)
    )
    rows += [loose, rng.normal(size=(n_noise - n_noise // 2, dim))]
    labels += [-1] * n_noise
    x = np.concatenate(rows)
    perm = rng.permutation(len(x))
    x, labels = x[perm], np.array(labels)[perm]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_planted_duplicates_are_grouped_and_ranked():
    emb, labels = _planted()
    result = cluster_samples(emb, n_groups=3)
    for planted in (0, 1, 2):
        holders = [i for i, g in enumerate(result.groups) if (labels[g] == planted).any()]
        assert len(holders) == 1, f"planted group {planted} split over groups {holders}"
    for g in result.groups:
        assert len(set(labels[g].tolist()) - {-1}) <= 1, "two planted groups merged"
    # the three largest groups are the planted ones, in size order, represented by a planted member
    assert [int(labels[r]) for r in result.representatives[:3]] == [0, 1, 2]


def test_deterministic_and_order_independent_membership():
    emb, labels = _planted(seed=1)
    a, b = cluster_samples(emb, n_groups=3), cluster_samples(emb.copy(), n_groups=3)
    assert [g.tolist() for g in a.groups] == [g.tolist() for g in b.groups]
    assert a.threshold == b.threshold
    perm = np.random.default_rng(2).permutation(len(emb))
    c = cluster_samples(emb[perm], n_groups=3)
    planted_0 = set(np.flatnonzero(labels == 0).tolist())
    assert planted_0 <= set(perm[c.groups[0]].tolist()) and planted_0 <= set(a.groups[0].tolist())


def test_every_group_is_a_clique():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    for g in greedy_cliques(sim, 0.3):
        sub = sim[np.ix_(g, g)]
        assert (sub[~np.eye(len(g), dtype=bool)] >= 0.3).all()


def test_estimate_counts_repeated_images():
    emb, _ = _planted(seed=4)
    assert estimate_num_groups(emb, copy_threshold=0.99) == 3
