"""MAG -> PAG on textbook examples, and against brute-force Markov equivalence classes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmsec.causal.graphs import (
    ARROW,
    CIRCLE,
    NONE,
    TAIL,
    edge_list,
    graph_from_edges,
    is_ancestral,
    m_connected,
)
from dmsec.causal.pag import mag_to_pag
from dmsec.causal.simulate import SimulationConfig, simulate


def pag_edges(mag: np.ndarray, names: str) -> set[str]:
    """PAG edges rendered in index order, e.g. ``'a <-o d'`` is ``d o-> a``."""
    return set(edge_list(mag_to_pag(mag), list(names)))


def test_y_structure() -> None:
    # a -> c <- b, c -> d: the collider is identified, and R1 orients c -> d (no confounding)
    mag = graph_from_edges(4, directed=[(0, 2), (1, 2), (2, 3)])
    assert pag_edges(mag, "abcd") == {"a o-> c", "b o-> c", "c --> d"}


def test_chain_has_only_circles() -> None:
    mag = graph_from_edges(3, directed=[(0, 1), (1, 2)])
    assert pag_edges(mag, "abc") == {"a o-o b", "b o-o c"}


def test_hidden_confounder_between_two_colliders() -> None:
    # a -> x <- L -> y <- b with L hidden: MAG a -> x <-> y <- b; both ends of x <-> y are fixed
    mag = graph_from_edges(4, directed=[(0, 1), (3, 2)], bidirected=[(1, 2)])
    assert pag_edges(mag, "axyb") == {"a o-> x", "x <-> y", "y <-o b"}


def test_instrumental_variable_is_not_identified() -> None:
    # z -> x -> y with x <- L -> y: the inducing path z -> x <- L -> y makes z, y adjacent;
    # a complete triangle carries no independence, so every mark stays a circle
    mag = graph_from_edges(3, directed=[(0, 1), (1, 2), (0, 2)])
    assert pag_edges(mag, "zxy") == {"z o-o x", "x o-o y", "z o-o y"}


def test_instrument_with_confounded_pair_only() -> None:
    # z -> x <-> y (no x -> y): an unshielded collider at x
    mag = graph_from_edges(3, directed=[(0, 1)], bidirected=[(1, 2)])
    assert pag_edges(mag, "zxy") == {"z o-> x", "x <-o y"}


def test_discriminating_path_non_collider() -> None:
    # d -> a <-> b, a -> c, b -> c: <d, a, b, c> discriminates b, which is a non-collider, so
    # R4 gives b -> c (without R4 it would stay b o-> c)
    mag = graph_from_edges(4, directed=[(3, 0), (0, 2), (1, 2)], bidirected=[(0, 1)])
    assert pag_edges(mag, "abcd") == {"a <-o d", "a <-o b", "a --> c", "b --> c"}


def test_discriminating_path_collider() -> None:
    # d -> a <-> b <-> c, a -> c: b is a collider on the discriminating path: a <-> b <-> c
    mag = graph_from_edges(4, directed=[(3, 0), (0, 2)], bidirected=[(0, 1), (1, 2)])
    assert pag_edges(mag, "abcd") == {"a <-o d", "a <-> b", "b <-> c", "a --> c"}


def test_non_ancestral_input_is_refused() -> None:
    bad = graph_from_edges(3, directed=[(0, 1), (1, 2)], bidirected=[(0, 2)])
    with pytest.raises(ValueError, match="`mag` must be ancestral"):
        mag_to_pag(bad)


def _equivalence_class(mag: np.ndarray) -> list[np.ndarray]:
    """Every ancestral orientation of `mag`'s skeleton with exactly its m-separations."""
    d = mag.shape[0]
    pairs = [(a, b) for a in range(d) for b in range(a + 1, d) if mag[a, b] != NONE]
    queries = [
        (a, b, Z)
        for a, b in itertools.combinations(range(d), 2)
        for k in range(d - 1)
        for Z in itertools.combinations([v for v in range(d) if v not in (a, b)], k)
    ]
    truth = [m_connected(mag, a, b, Z) for a, b, Z in queries]
    members = []
    for kinds in itertools.product(range(3), repeat=len(pairs)):
        E = np.zeros_like(mag)
        for (a, b), k in zip(pairs, kinds, strict=True):
            E[a, b], E[b, a] = [(ARROW, TAIL), (TAIL, ARROW), (ARROW, ARROW)][k]
        if not is_ancestral(E):
            continue
        if all(m_connected(E, a, b, Z) == t for (a, b, Z), t in zip(queries, truth, strict=True)):
            members.append(E)
    return members


@pytest.mark.parametrize("seed", [10, 13, 17, 18])
def test_pag_marks_are_exactly_the_invariant_ones(seed: int) -> None:
    """Arrowheads/tails in the PAG are shared by every Markov-equivalent MAG (soundness), and every
    circle is an arrowhead in one equivalent MAG and a tail in another (completeness)."""
    ds = simulate(
        SimulationConfig(n_observed=5, n_latent=1, expected_degree=2.5, n_samples=20), seed
    )
    members = _equivalence_class(ds.mag)
    assert any(np.array_equal(m, ds.mag) for m in members)
    marks = np.stack(members)
    pag = ds.pag
    for a, b in np.argwhere(pag != NONE):
        seen = set(marks[:, a, b].tolist())
        if pag[a, b] == CIRCLE:
            assert seen == {ARROW, TAIL}, (a, b, seen)
        else:
            assert seen == {int(pag[a, b])}, (a, b, seen)
