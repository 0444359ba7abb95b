"""The ABIC score's sufficient-statistics form and the MAG constraint h."""

from __future__ import annotations

import numpy as np
import torch

from dmsec.causal.objective import (
    SplitParameters,
    least_squares,
    mag_constraint,
    residual_variances,
    ricf_statistics,
)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def _sym(rng: np.random.Generator, d: int, scale: float) -> np.ndarray:
    W = np.triu(rng.uniform(-scale, scale, (d, d)), 1)
    return W + W.T


def test_least_squares_equals_explicit_pseudo_variable_regression() -> None:
    """(1/2n)||X_i - X W1[:, i] - Z_i W2[:, i]||^2 with Z_i = e_{-i} Omega_{-i,-i}^{-1} built from
    the data, against the d x d sufficient-statistics version."""
    rng = np.random.default_rng(0)
    n, d = 400, 6
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    X -= X.mean(axis=0)
    W1_prev = rng.uniform(-0.5, 0.5, (d, d))
    np.fill_diagonal(W1_prev, 0)
    W2_prev, omega = _sym(rng, d, 0.2), np.full(d, 2.0)
    W1 = rng.uniform(-0.5, 0.5, (d, d))
    np.fill_diagonal(W1, 0)
    W2 = _sym(rng, d, 0.3)
    Omega = W2_prev + np.diag(omega)
    eps = X - X @ W1_prev
    direct = []
    for i in range(d):
        rest = [k for k in range(d) if k != i]
        Z = np.zeros((n, d))
        Z[:, rest] = eps[:, rest] @ np.linalg.inv(Omega[np.ix_(rest, rest)])
        r = X[:, i] - X @ W1[:, i] - Z @ W2[:, i]
        direct.append(r @ r / (2 * n))
    stats = ricf_statistics(_t(X.T @ X / n), _t(W1_prev), _t(W2_prev), _t(omega))
    assert np.allclose(least_squares(stats, _t(W1), _t(W2)).numpy(), direct)
    assert torch.all(residual_variances(stats, _t(W1), _t(W2)) > 0)


def test_constraint_is_zero_exactly_on_ancestral_graphs() -> None:
    d = 4
    W1 = np.zeros((d, d))
    W1[0, 1] = W1[1, 2] = 0.8  # 0 -> 1 -> 2
    W2 = np.zeros((d, d))
    W2[2, 3] = W2[3, 2] = 0.5  # 2 <-> 3: fine
    assert abs(float(mag_constraint(_t(W1), _t(W2)))) < 1e-12
    cyclic = W1.copy()
    cyclic[2, 0] = 0.8
    assert float(mag_constraint(_t(cyclic), _t(W2))) > 1e-3
    W2_bad = W2.copy()
    W2_bad[0, 2] = W2_bad[2, 0] = 0.5  # 0 <-> 2 with 0 an ancestor of 2: not ancestral
    assert float(mag_constraint(_t(W1), _t(W2_bad))) > 1e-3


def test_split_parameters_round_trip() -> None:
    rng = np.random.default_rng(1)
    d = 5
    layout = SplitParameters(d)
    W1 = rng.normal(size=(d, d))
    np.fill_diagonal(W1, 0)
    W2 = _sym(rng, d, 1.0)
    theta = layout.pack(W1, W2)
    assert theta.min() >= 0 and theta.size == layout.size
    back1, back2 = layout.unpack(_t(theta))
    assert np.allclose(back1.numpy(), W1) and np.allclose(back2.numpy(), W2)
    # the indices a pair owns move exactly that pair's three coefficients
    pair = 3
    a, b = layout.iu[pair], layout.ju[pair]
    bumped = theta.copy()
    bumped[layout.pair_indices(np.array([pair]))] += 1.0
    n1, n2 = (m.numpy() for m in layout.unpack(_t(bumped)))
    changed1, changed2 = np.argwhere(n1 != W1), np.argwhere(np.triu(n2 != W2))
    assert {tuple(x) for x in changed1} <= {(a, b), (b, a)}
    assert {tuple(x) for x in changed2} <= {(a, b)}
