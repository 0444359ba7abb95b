"""The benchmark protocol: disjoint tuning / reporting splits, generator families as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmsec.causal.posterior_train import PosteriorTrainingConfig
from dmsec.causal.protocol import (
    FAMILIES,
    SPLIT_SEEDS,
    dataset_seed,
    split_config,
    split_dataset,
    standardize,
)


def test_splits_share_no_graph() -> None:
    sizes, per_size = (8, 12), 6
    seen: dict[str, list[tuple[int, np.ndarray]]] = {"tuning": [], "reporting": []}
    for split, d, k in itertools.product(seen, sizes, range(per_size)):
        ds = split_dataset(split, d, k, n_samples=50)
        seen[split].append((ds.seed, ds.dag))
    tuning_seeds = {s for s, _ in seen["tuning"]}
    reporting_seeds = {s for s, _ in seen["reporting"]}
    assert len(tuning_seeds) == len(reporting_seeds) == len(sizes) * per_size
    assert not tuning_seeds & reporting_seeds
    for (_, a), (_, b) in itertools.product(seen["tuning"], seen["reporting"]):
        assert a.shape != b.shape or not np.array_equal(a, b)


def test_seed_ranges_of_training_tuning_and_reporting_are_disjoint() -> None:
    # posterior training draws graph seeds (2 seed + 1) * 100_003 + g, held-out ones from
    # 2 seed + 2 and 2 seed + 51: all below the first split seed for seeds < 40
    config = PosteriorTrainingConfig()
    top = (2 * config.seed + 51) * 100_003 + max(config.n_graphs, config.heldout_graphs)
    assert top < min(SPLIT_SEEDS.values())
    assert dataset_seed("tuning", 999, 999) < dataset_seed("reporting", 2, 0)
    with pytest.raises(ValueError, match="`split`"):
        dataset_seed("test", 10, 0)
    with pytest.raises(ValueError, match="`index`"):
        dataset_seed("tuning", 10, 1000)


def test_reporting_generators_include_ones_never_tuned_on() -> None:
    tuning, reporting = FAMILIES["tuning"], FAMILIES["reporting"]
    assert set(reporting.graphs) - set(tuning.graphs) == {"sf_in"}
    assert not set(reporting.weight_ranges) & set(tuning.weight_ranges)
    assert not set(reporting.noise_std_ranges) & set(tuning.noise_std_ranges)
    assert set(reporting.noises) - set(tuning.noises) >= {"laplace", "exponential"}
    configs = [split_config("reporting", 30, k, 100) for k in range(40)]
    assert {c.graph for c in configs} == set(reporting.graphs)
    assert {c.latent_choice for c in configs} == {"confounder", "random"}
    assert all(2 <= c.expected_degree <= 4 and c.n_latent >= 1 for c in configs)


def test_the_wider_training_family_adds_no_reporting_kind() -> None:
    """``tuning_wide`` (a posterior training family) holds the tuning family's kinds plus its own,
    none of which is a reporting-only graph or noise kind, and it draws no benchmark split."""
    tuning, wide, reporting = FAMILIES["tuning"], FAMILIES["tuning_wide"], FAMILIES["reporting"]
    assert set(tuning.noises) <= set(wide.noises) and set(tuning.graphs) == set(wide.graphs)
    assert not (set(wide.noises) - set(tuning.noises)) & set(reporting.noises)
    assert wide.degree_range[0] < tuning.degree_range[0] < tuning.degree_range[1] < wide.degree_range[1]  # fmt: skip
    assert "tuning_wide" not in SPLIT_SEEDS
    assert PosteriorTrainingConfig(family="tuning_wide").family == "tuning_wide"


def test_standardize_gives_unit_variance_columns() -> None:
    X = split_dataset("tuning", 10, 0, n_samples=200).data
    Z = standardize(X)
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.std(axis=0), 1)
