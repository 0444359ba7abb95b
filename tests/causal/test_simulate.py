"""Simulated MAGs are ancestral, maximal and Markov equivalent to the DAG they come from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmsec.causal.graphs import NONE, graph_from_edges, is_ancestral, is_maximal, m_connected
from dmsec.causal.simulate import SimulationConfig, dag_to_mag, simulate


@pytest.mark.parametrize(
    ("d", "latent", "degree", "seed"),
    [(8, 2, 3.0, 0), (15, 3, 3.0, 1), (30, 3, 2.0, 2), (40, 6, 4.0, 3)],
)
def test_simulated_mags_are_ancestral_and_maximal(
    d: int, latent: int, degree: float, seed: int
) -> None:
    ds = simulate(
        SimulationConfig(n_observed=d, n_latent=latent, expected_degree=degree, n_samples=50), seed
    )
    assert ds.data.shape == (50, d)
    assert is_ancestral(ds.mag)
    assert is_maximal(ds.mag)
    assert np.any(ds.mag != NONE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mag_separations_match_the_dag(seed: int) -> None:
    """m-separation in the MAG equals d-separation in the DAG for every pair and every
    conditioning set of observed variables up to size 2 (all sets for 6 observed)."""
    ds = simulate(
        SimulationConfig(n_observed=6, n_latent=2, expected_degree=3.0, n_samples=20), seed
    )
    p = ds.dag.shape[0]
    dag = graph_from_edges(p, directed=[tuple(e) for e in np.argwhere(ds.dag)])
    d = ds.n_observed
    for a, b in itertools.combinations(range(d), 2):
        rest = [v for v in range(d) if v not in (a, b)]
        for k in range(len(rest) + 1):
            for Z in itertools.combinations(rest, k):
                assert m_connected(ds.mag, a, b, Z) == m_connected(dag, a, b, Z), (a, b, Z)


def test_hidden_confounder_becomes_bidirected_edge() -> None:
    # 0 <- L -> 1 with L hidden, plus 0 -> 2
    dag = np.zeros((4, 4), dtype=bool)
    dag[3, 0] = dag[3, 1] = dag[0, 2] = True
    mag = dag_to_mag(dag, 3)
    assert mag[0, 1] == mag[1, 0] == 2  # 0 <-> 1
    assert mag[0, 2] == 2 and mag[2, 0] == 3  # 0 -> 2
    assert mag[1, 2] == NONE


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="`n_observed`"):
        SimulationConfig(n_observed=1)
    with pytest.raises(ValueError, match="`weight_range`"):
        SimulationConfig(weight_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="`expected_degree`"):
        SimulationConfig(n_observed=3, n_latent=0, expected_degree=5.0)


def test_simulation_is_reproducible() -> None:
    cfg = SimulationConfig(n_observed=10, n_latent=1, n_samples=30)
    a, b = simulate(cfg, 5), simulate(cfg, 5)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.pag, b.pag)
