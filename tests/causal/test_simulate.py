"""Simulated MAGs are ancestral, maximal and Markov equivalent to the DAG they come from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmsec.causal.graphs import NONE, graph_from_edges, is_ancestral, is_maximal, m_connected
from dmsec.causal.simulate import (
    MAX_CONFOUNDED,
    NOISES,
    SimulationConfig,
    dag_to_mag,
    simulate,
    varsortability,
)


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


@pytest.mark.parametrize("graph", ["sf", "sf_in"])
def test_scale_free_graphs_have_hubs_on_the_documented_side(graph: str) -> None:
    cfg = SimulationConfig(
        n_observed=60, n_latent=0, expected_degree=3.0, graph=graph, n_samples=20
    )
    dag = simulate(cfg, 3).dag
    out_deg, in_deg = dag.sum(axis=1), dag.sum(axis=0)
    hubs, other = (out_deg, in_deg) if graph == "sf" else (in_deg, out_deg)
    assert hubs.max() >= 8 and other.max() <= 2
    assert 2.0 <= 2 * dag.sum() / 60 <= 4.0  # mean degree near the expected 3


def test_confounder_latents_have_two_observed_children() -> None:
    for seed in range(5):
        cfg = SimulationConfig(n_observed=30, n_latent=4, latent_choice="confounder", n_samples=20)
        ds = simulate(cfg, seed)
        hidden_children = ds.dag[ds.n_observed :, : ds.n_observed].sum(axis=1)
        assert np.all((hidden_children >= 2) & (hidden_children <= MAX_CONFOUNDED))


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_noise_families_have_zero_mean_and_unit_variance(noise: str) -> None:
    u = NOISES[noise](np.random.default_rng(0), (200_000, 1))
    assert abs(u.mean()) < 0.02 and abs(u.var() - 1) < 0.05


def test_varsortability_is_high_on_raw_scale_and_half_after_standardising() -> None:
    ds = simulate(SimulationConfig(n_observed=30, n_latent=3, n_samples=2000), 4)
    assert varsortability(ds.data, ds.mag) > 0.75
    Z = ds.data / ds.data.std(axis=0)
    assert varsortability(Z, ds.mag) == 0.5


def test_new_generator_fields_are_validated() -> None:
    with pytest.raises(ValueError, match="`graph`"):
        SimulationConfig(graph="tree")
    with pytest.raises(ValueError, match="`noise`"):
        SimulationConfig(noise="cauchy")
    with pytest.raises(ValueError, match="`latent_choice`"):
        SimulationConfig(latent_choice="all")
