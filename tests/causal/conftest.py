"""Shared fixtures of the causal tests: small simulated datasets and the packaged posterior."""

from __future__ import annotations

import pytest

from dmsec.causal.posterior import SkeletonPosterior, load_posterior
from dmsec.causal.simulate import SimulatedDataset, SimulationConfig, simulate


@pytest.fixture(scope="session")
def posterior() -> SkeletonPosterior:
    """The packaged (committed) skeleton posterior."""
    return load_posterior()


@pytest.fixture(scope="session")
def small_dataset() -> SimulatedDataset:
    """Eight observed variables, one hidden confounder, 2,000 samples."""
    return simulate(SimulationConfig(n_observed=8, n_latent=1, expected_degree=2.5), seed=11)
