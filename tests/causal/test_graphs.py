"""Graph queries on hand-made graphs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.causal.graphs import (
    ARROW,
    NONE,
    TAIL,
    ancestor_matrix,
    check_endpoint_matrix,
    edge_list,
    graph_from_edges,
    is_ancestral,
    is_maximal,
    m_connected,
    make_maximal,
)


def test_ancestors_of_a_chain() -> None:
    D = np.zeros((4, 4), dtype=bool)
    D[0, 1] = D[1, 2] = D[2, 3] = True
    anc = ancestor_matrix(D)
    assert anc[0, 3] and anc[1, 3] and not anc[3, 0]
    assert not np.any(np.diag(anc))


def test_d_separation_of_collider_and_chain() -> None:
    # 0 -> 1 <- 2, 1 -> 3 : 0 and 2 are independent, dependent given 1 or its child 3
    E = graph_from_edges(4, directed=[(0, 1), (2, 1), (1, 3)])
    assert not m_connected(E, 0, 2)
    assert m_connected(E, 0, 2, [1])
    assert m_connected(E, 0, 2, [3])
    assert m_connected(E, 0, 3)
    assert not m_connected(E, 0, 3, [1])


def test_m_separation_through_bidirected_edge() -> None:
    # 0 -> 1 <-> 2 <- 3: 1 is a collider on 0 -> 1 <-> 2
    E = graph_from_edges(4, directed=[(0, 1), (3, 2)], bidirected=[(1, 2)])
    assert not m_connected(E, 0, 2)
    assert m_connected(E, 0, 2, [1])
    assert not m_connected(E, 0, 3, [])
    assert m_connected(E, 0, 3, [1, 2])


def test_ancestral_rejects_almost_directed_cycle() -> None:
    good = graph_from_edges(3, directed=[(0, 1)], bidirected=[(1, 2)])
    bad = graph_from_edges(3, directed=[(0, 1), (1, 2)], bidirected=[(0, 2)])
    cyclic = graph_from_edges(3, directed=[(0, 1), (1, 2), (2, 0)])
    assert is_ancestral(good)
    assert not is_ancestral(bad)
    assert not is_ancestral(cyclic)


def test_maximality_and_its_repair() -> None:
    # 0 <-> 1 <-> 2 <-> 3 with 1 -> 3 and 2 -> 0 is ancestral, but 0 and 3 are joined by an
    # inducing path (1 and 2 are colliders and ancestors of an end point) without being adjacent.
    E = graph_from_edges(4, directed=[(1, 3), (2, 0)], bidirected=[(0, 1), (1, 2), (2, 3)])
    assert is_ancestral(E)
    assert not is_maximal(E)
    M = make_maximal(E)
    assert is_maximal(M) and is_ancestral(M)
    assert M[0, 3] == ARROW and M[3, 0] == ARROW  # the added edge is bidirected
    assert int(np.sum(M != E)) == 2  # and it is the only change


def test_endpoint_matrix_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="`mag` must have symmetric support"):
        E = np.zeros((2, 2), dtype=np.int8)
        E[0, 1] = ARROW
        check_endpoint_matrix(E, "mag")
    with pytest.raises(ValueError, match="self loops"):
        check_endpoint_matrix(np.eye(2, dtype=np.int8), "g")


def test_edge_list_renders_marks() -> None:
    E = graph_from_edges(3, directed=[(0, 1)], bidirected=[(1, 2)])
    assert edge_list(E, ["a", "b", "c"]) == ["a --> b", "b <-> c"]
    assert E[1, 0] == TAIL and E[0, 2] == NONE
