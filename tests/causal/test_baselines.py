"""causal-learn's FCI as a baseline: the endpoint translation and the wall-time budget."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dmsec.causal.baselines import fci_pag, fci_pag_within
from dmsec.causal.graphs import ARROW, NONE
from dmsec.causal.protocol import split_dataset, standardize

pytest.importorskip("causallearn")


def test_fci_finds_the_collider_of_a_v_structure() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3000))
    c = a + b + 0.5 * rng.normal(size=3000)
    pag = fci_pag(np.column_stack([a, b, c]))
    assert pag[0, 1] == NONE and pag[1, 0] == NONE  # a and b independent
    assert pag[0, 2] == ARROW and pag[1, 2] == ARROW  # arrowheads at c


def test_within_budget_returns_fcis_own_result() -> None:
    X = standardize(split_dataset("reporting", 8, 0, n_samples=500).data)
    pag = fci_pag_within(X, max_seconds=120)
    assert pag is not None and np.array_equal(pag, fci_pag(X))


def test_past_the_budget_the_run_is_stopped_and_reported_as_none() -> None:
    X = standardize(split_dataset("reporting", 60, 0, n_samples=2000).data)
    fci_pag_within(X[:, :4], max_seconds=120)  # causal-learn imported before timing
    t0 = time.perf_counter()
    assert fci_pag_within(X, max_seconds=0.5) is None  # this dense graph takes minutes
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ValueError, match="`max_seconds`"):
        fci_pag_within(X, max_seconds=0)
