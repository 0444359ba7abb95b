"""The posterior's skeleton, its two simple combinations with a learned PAG, and the variants."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.causal.graphs import ARROW, CIRCLE, NONE, TAIL, graph_from_edges
from dmsec.causal.skeleton import (
    posterior_adjacency,
    skeleton_pag,
    union_with_posterior,
    with_posterior_skeleton,
)
from dmsec.causal.variants import KEEP_CUTS, choose_variant, variant_pags

S = np.array(
    [
        [0.0, 0.9, 0.45, 0.1],
        [0.9, 0.0, 0.2, 0.6],
        [0.45, 0.2, 0.0, 0.05],
        [0.1, 0.6, 0.05, 0.0],
    ]
)


def test_posterior_adjacency_is_the_strict_cut() -> None:
    adj = posterior_adjacency(S, 0.45)
    assert {tuple(p) for p in np.argwhere(np.triu(adj))} == {(0, 1), (1, 3)}
    assert np.array_equal(adj, adj.T) and not np.any(np.diag(adj))
    with pytest.raises(ValueError, match="`cut`"):
        posterior_adjacency(S, 1.0)


def test_skeleton_pag_has_circles_only() -> None:
    P = skeleton_pag(posterior_adjacency(S, 0.3))
    assert set(np.unique(P)) == {NONE, CIRCLE}
    assert np.count_nonzero(P) // 2 == 3


def test_combinations_keep_the_learned_marks_where_they_can() -> None:
    learned = graph_from_edges(4, directed=[(0, 1), (2, 3)])  # 0 -> 1, 2 -> 3
    post = posterior_adjacency(S, 0.3)  # 0-1, 0-2, 1-3
    marks = with_posterior_skeleton(learned, post)
    assert marks[0, 1] == ARROW and marks[1, 0] == TAIL  # learned marks kept
    assert marks[0, 2] == CIRCLE and marks[1, 3] == CIRCLE  # posterior-only pairs unoriented
    assert marks[2, 3] == NONE  # the learned edge the posterior lacks is removed
    union = union_with_posterior(learned, posterior_adjacency(S, 0.5))  # adds 1-3 only
    assert union[2, 3] == ARROW and union[0, 1] == ARROW
    assert union[1, 3] == CIRCLE == union[3, 1] and union[0, 2] == NONE


def test_variants_from_coefficients() -> None:
    W1 = np.zeros((4, 4))
    W1[0, 1] = 0.8  # a strong 0 -> 1; the pair 1-3 (S = 0.6) only has a tiny coefficient
    W1[1, 3] = 0.001
    out = variant_pags(W1, np.zeros((4, 4)), S, cut=0.32, w_threshold=0.05)
    assert out["drop"][1, 3] == NONE  # thresholded away
    for c in KEEP_CUTS:
        if c < 0.6:
            assert out[f"keep@{c:g}"][1, 3] != NONE  # kept: S above the keep-cut
    assert out["keep@0.7"][1, 3] == NONE
    assert out["union@0.5"][1, 3] == CIRCLE and out["posterior"][0, 2] == CIRCLE
    post = posterior_adjacency(S, 0.32)
    for c in KEEP_CUTS:
        marks = out[f"posterior+marks@{c:g}"]
        assert np.array_equal(marks != NONE, post)  # exactly the posterior's skeleton
        if c > 0.32:
            added = out[f"keep@{c:g}+posterior"] != NONE
            assert np.all(added[post])  # never drops a posterior pair
    learned = out["keep@0.5"] != NONE
    assert np.array_equal(
        out["posterior+marks@0.5"][learned & post], out["keep@0.5"][learned & post]
    )
    assert "keep@0.32+posterior" not in out  # the same graph as keep@0.32


def test_choose_variant_maximises_skeleton_f1_under_the_marks_floor() -> None:
    skeleton = {"drop": [0.70, 0.72], "keep@0.4": [0.80, 0.82], "keep@0.5": [0.78, 0.80], "posterior": [0.9, 0.9]}  # fmt: skip
    marks = {"drop": [0.50, 0.52], "keep@0.4": [0.49, 0.50], "keep@0.5": [0.55, 0.56], "posterior": [0.0, 0.0]}  # fmt: skip
    assert choose_variant(skeleton, marks, reference_arrowhead_f1=0.5) == "keep@0.5"
    assert choose_variant(skeleton, marks, reference_arrowhead_f1=0.45) == "keep@0.4"
    # no variant reaches the reference: the floor becomes the best marks any variant has
    assert choose_variant(skeleton, marks, reference_arrowhead_f1=0.9) == "keep@0.5"
    with pytest.raises(ValueError, match="`skeleton_f1`"):
        choose_variant({"posterior": [0.9]}, {}, 0.5)


def test_choose_variant_never_below_the_posterior_on_a_dataset() -> None:
    """With the posterior's per-dataset F1 given, a variant worse than it on any dataset is out,
    even with the best mean; ties on skeleton F1 go to the better marks."""
    skeleton = {"keep@0.5": [0.95, 0.70], "posterior+marks@0.5": [0.80, 0.80], "posterior+marks@0.4": [0.80, 0.80], "posterior": [0.80, 0.80]}  # fmt: skip
    marks = {"keep@0.5": [0.60], "posterior+marks@0.5": [0.58], "posterior+marks@0.4": [0.55]}
    assert choose_variant(skeleton, marks, 0.5) == "keep@0.5"  # without the condition
    assert choose_variant(skeleton, marks, 0.5, posterior_f1=[0.80, 0.80]) == "posterior+marks@0.5"
    # no variant is never below the posterior: the condition is dropped
    assert choose_variant(skeleton, marks, 0.5, posterior_f1=[0.99, 0.99]) == "keep@0.5"
