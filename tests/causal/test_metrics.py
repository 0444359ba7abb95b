"""Metrics on graphs whose scores can be counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.causal.graphs import ARROW, CIRCLE, TAIL, graph_from_edges
from dmsec.causal.metrics import mark_prf, pag_shd, score_graph, skeleton_prf


def _pag(d: int, edges: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Edges as (a, b, mark at a, mark at b)."""
    E = np.zeros((d, d), dtype=np.int8)
    for a, b, ma, mb in edges:
        E[b, a], E[a, b] = ma, mb
    return E


TRUE = _pag(4, [(0, 1, CIRCLE, ARROW), (2, 1, CIRCLE, ARROW), (1, 3, TAIL, ARROW)])  # Y-structure


def test_identical_graphs_score_perfectly() -> None:
    s = score_graph(TRUE, TRUE)
    assert s.skeleton_f1 == s.arrowhead_f1 == s.tail_f1 == 1.0 and s.shd == 0


def test_missing_and_extra_edges() -> None:
    # drop 1 -> 3, add 0 o-o 2
    est = _pag(4, [(0, 1, CIRCLE, ARROW), (2, 1, CIRCLE, ARROW), (0, 2, CIRCLE, CIRCLE)])
    skel = skeleton_prf(est, TRUE)
    assert skel.precision == pytest.approx(2 / 3) and skel.recall == pytest.approx(2 / 3)
    arrow = mark_prf(est, TRUE, ARROW)  # est arrows: at 1 twice (both right); true has 3 arrows
    assert (
        arrow.precision == 1.0
        and arrow.recall == pytest.approx(2 / 3)
        and arrow.f1 == pytest.approx(0.8)
    )
    tail = mark_prf(est, TRUE, TAIL)  # the only true tail is lost, none predicted
    assert tail.recall == 0.0 and tail.f1 == 0.0
    assert pag_shd(est, TRUE) == 2


def test_wrong_mark_counts_once_in_shd() -> None:
    est = TRUE.copy()
    est[0, 1] = CIRCLE  # 0 o-o 1 instead of 0 o-> 1
    assert pag_shd(est, TRUE) == 1
    assert skeleton_prf(est, TRUE).f1 == 1.0
    assert mark_prf(est, TRUE, ARROW).recall == pytest.approx(2 / 3)


def test_empty_graphs_and_shape_check() -> None:
    empty = np.zeros((3, 3), dtype=np.int8)
    assert skeleton_prf(empty, empty).f1 == 1.0
    assert skeleton_prf(empty, graph_from_edges(3, [(0, 1)])).f1 == 0.0
    with pytest.raises(ValueError, match="same shape"):
        pag_shd(empty, TRUE)
    with pytest.raises(ValueError, match="`mark`"):
        mark_prf(TRUE, TRUE, CIRCLE)
