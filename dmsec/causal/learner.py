"""Differentiable MAG learning (ABIC) with optional per-pair update probabilities (SPOT).

`learn_mag` minimises the score (1) subject to h = 0 (2) of `objective` by the augmented
Lagrangian of NOTEARS/ABIC:

    min  score(W1, W2) + (rho / 2) h^2 + alpha h
    1. rebuild the RICF pseudo-variable statistics at the current (W1, W2, Omega);
    2. draw the free pairs (each pair (a, b) with probability p_ab; all pairs when unguided) and
       minimise over their coefficients only, the others frozen;
    3. if h did not fall below `h_decrease` x its previous value, rho *= rho_growth and go to 2
       (from the same start), else accept; alpha += rho h; update Omega's diagonal (RICF);
    4. stop when h <= h_tol, rho >= rho_max or the run's time budget (`max_seconds`) is spent.

The budget is a wall-time deadline for the whole run, checked at every evaluation of the
objective: an inner solve that reaches it stops there and keeps the best point it evaluated
(flagged ``extra["timed_out"]``), so a run overshoots its budget by one evaluation plus the final
thresholding, not by a whole inner solve.

Data are centred, and standardised only on request (`standardize`): the score is not
scale-free, and on simulated data the raw scales carry causal-order information (Reisach et
al. 2021) that ABIC and the paper's protocol use. Then coefficients below `w_threshold` are dropped, except on the pairs of `keep` (SPOT's
keep-cut), and the graph is repaired into a MAG (`coefficients_to_mag`). With ``p = 1`` everywhere this is the unguided ABIC baseline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dmsec.causal.graphs import (
    ancestor_matrix,
    graph_from_coefficients,
    has_directed_cycle,
    make_maximal,
    symmetric_adjacency,
)
from dmsec.causal.objective import (
    SplitParameters,
    least_squares,
    mag_constraint,
    residual_variances,
    ricf_statistics,
    smoothed_l0,
)
from dmsec.causal.pag import mag_to_pag
from dmsec.causal.solvers import InnerSolver, LBFGSBSolver


@dataclass(frozen=True)
class MAGLearnerConfig:
    """Hyper-parameters of the augmented-Lagrangian ABIC learner (defaults from the SPOT spec)."""

    penalty: float = 0.05  # lambda of the smoothed L0 term
    w_threshold: float = 0.05
    bound: float = 4.0
    rho_init: float = 1.0
    rho_growth: float = 10.0
    h_decrease: float = 0.25
    rho_max: float = 1e16
    h_tol: float = 1e-8
    max_outer: int = 100
    restarts: int = 1
    init_scale: float = 0.0  # 0: start at zero; > 0: ABIC's U(-s, s) on pairs with p >= 1/2
    standardize: bool = False
    max_seconds: float = 0.0  # wall-time budget of one run (0: none); see the module docstring
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "penalty": self.penalty >= 0,
            "w_threshold": self.w_threshold >= 0,
            "bound": self.bound > 0,
            "rho_init": self.rho_init > 0,
            "rho_growth": self.rho_growth > 1,
            "h_decrease": 0 < self.h_decrease < 1,
            "rho_max": self.rho_max >= self.rho_init,
            "h_tol": self.h_tol > 0,
            "max_outer": self.max_outer >= 1,
            "restarts": self.restarts >= 1,
            "init_scale": self.init_scale >= 0,
            "max_seconds": self.max_seconds >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"`{name}` is out of range; got {getattr(self, name)!r}")


@dataclass
class MAGResult:
    """A learned MAG with its coefficients, the PAG of its class, and the run's trace."""

    W1: np.ndarray
    W2: np.ndarray
    mag: np.ndarray
    pag: np.ndarray
    h: float
    score: float
    seconds: float
    inner_solves: int
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_data(data: np.ndarray, standardize: bool) -> np.ndarray:
    """Centred (and by default unit-variance) float64 copy of an ``(n, d)`` data matrix."""
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 3 or X.shape[1] < 2:
        raise ValueError(f"`data` must have shape (n >= 3, d >= 2); got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("`data` must be finite (no NaN or inf)")
    X = X - X.mean(axis=0)
    if standardize:
        std = X.std(axis=0)
        if np.any(std == 0):
            raise ValueError(f"`data` columns {np.flatnonzero(std == 0).tolist()} are constant")
        X = X / std
    return X


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One BLAS / torch thread: the matrices are small (d <= a few hundred), so threads only add
    contention, and an idle OpenBLAS pool spinning next to torch's slows L-BFGS-B many-fold.

    SciPy's optimiser (and with it SciPy's own OpenBLAS) is imported first: `threadpool_limits`
    only limits the libraries loaded when it is entered, and a process whose first L-BFGS-B
    solve loaded it inside the limit ran that solve with every BLAS thread (a first SPOT run at
    d = 100 took 63-70 s of learner time, the same run again 19 s, on the shared 2-core box)."""
    import scipy.optimize  # noqa: F401  (loads SciPy's BLAS before the limit; see above)
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def learn_mag(
    data: np.ndarray,
    probabilities: np.ndarray | None = None,
    config: MAGLearnerConfig | None = None,
    solver: InnerSolver | None = None,
    keep: np.ndarray | None = None,
) -> MAGResult:
    """Learn a MAG; pair (a, b) is free in an inner solve with probability ``probabilities[a, b]``
    (all pairs every time when None); the pairs of the boolean mask `keep` are adjacent in the
    result whatever their coefficients (`coefficients_to_mag`)."""
    with single_threaded():
        return _learn_mag(data, probabilities, config, solver, keep)


def _learn_mag(
    data: np.ndarray,
    probabilities: np.ndarray | None,
    config: MAGLearnerConfig | None,
    solver: InnerSolver | None,
    keep: np.ndarray | None,
) -> MAGResult:
    config = config or MAGLearnerConfig()
    inner: InnerSolver = solver or LBFGSBSolver()
    t0 = time.perf_counter()
    X = prepare_data(data, config.standardize)
    n, d = X.shape
    layout = SplitParameters(d)
    pair_p = _pair_probabilities(probabilities, d, layout)
    rng = np.random.default_rng(config.seed)
    moments = X.T @ X / n
    if config.standardize:
        # the correlation matrix, rounded like `features.correlation`: data that differ only by
        # column scales then give bit-identical inputs, so the same seed learns the same graph
        moments = np.round(moments, 12)
    S = torch.tensor(moments, dtype=torch.float64)

    def sampler() -> np.ndarray:
        pairs = np.flatnonzero(rng.random(layout.n_pairs) < pair_p)
        return layout.pair_indices(pairs)

    deadline = t0 + config.max_seconds if config.max_seconds > 0 else float("inf")
    best: MAGResult | None = None
    for _ in range(config.restarts):
        theta = _initial_theta(layout, pair_p, config.init_scale, rng)
        run = _augmented_lagrangian(S, n, layout, theta, sampler, config, inner, deadline)
        if best is None or run.score < best.score:
            best = run
        if run.extra["timed_out"]:
            break
    assert best is not None
    best.mag = coefficients_to_mag(best.W1, best.W2, config.w_threshold, keep)
    best.pag = mag_to_pag(best.mag)
    best.seconds = time.perf_counter() - t0
    return best


def _initial_theta(
    layout: SplitParameters, pair_p: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """The start: zero when `scale` is 0 (default: deterministic, and a random dense start makes
    ``(I + W1 o W1 / d)^d`` explode for the unguided learner at d >= 50); else ABIC's random start,
    W1 ~ U(-scale, scale) and W2 ~ U(-scale/10, scale/10), on the pairs with update probability
    >= 1/2, zero elsewhere, so pairs the posterior doubts never start away from zero."""
    d = layout.d
    on = pair_p >= 0.5
    a, b = layout.iu[on], layout.ju[on]
    W1 = np.zeros((d, d))
    W2 = np.zeros((d, d))
    W1[a, b] = rng.uniform(-scale, scale, size=len(a))
    W1[b, a] = rng.uniform(-scale, scale, size=len(a))
    W2[a, b] = rng.uniform(-scale / 10, scale / 10, size=len(a))
    return layout.pack(W1, W2 + W2.T)


def _pair_probabilities(
    probabilities: np.ndarray | None, d: int, layout: SplitParameters
) -> np.ndarray:
    if probabilities is None:
        return np.ones(layout.n_pairs)
    P = np.asarray(probabilities, dtype=np.float64)
    if P.shape != (d, d):
        raise ValueError(f"`probabilities` must have shape ({d}, {d}); got {P.shape}")
    if not np.all((P >= 0) & (P <= 1)):
        raise ValueError("`probabilities` must lie in [0, 1]")
    return np.maximum(P[layout.iu, layout.ju], P[layout.ju, layout.iu])


class _OutOfTime(Exception):
    """Raised inside an inner solve when the run's deadline has passed."""


class _Timed:
    """An objective that remembers its best evaluated point and stops the solve at `deadline`."""

    def __init__(self, objective: Any, deadline: float) -> None:
        self.objective, self.deadline = objective, deadline
        self.best_value = float("inf")
        self.best: np.ndarray | None = None

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if self.best is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime
        value = self.objective(t)
        v = float(value.detach())
        if v < self.best_value or self.best is None:
            self.best_value, self.best = v, t.detach().numpy().copy()
        return value


@dataclass
class _Lagrangian:
    """The augmented Lagrangian ``score + (rho/2) h^2 + alpha h`` at fixed RICF statistics."""

    stats: Any
    layout: SplitParameters
    penalty: float
    n: int
    rho: float
    alpha: float

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        w1, w2 = self.layout.unpack(t)
        hv = mag_constraint(w1, w2)
        fit = least_squares(self.stats, w1, w2).sum() + self.penalty * smoothed_l0(t, self.n)
        return fit + 0.5 * self.rho * hv * hv + self.alpha * hv


def _augmented_lagrangian(
    S: torch.Tensor,
    n: int,
    layout: SplitParameters,
    theta: np.ndarray,
    sampler: Any,
    config: MAGLearnerConfig,
    solver: InnerSolver,
    deadline: float,
) -> MAGResult:
    """Steps 1-4 of the module docstring from the start `theta`, until `deadline`."""
    rho, alpha, h = config.rho_init, 0.0, float("inf")
    omega = torch.diagonal(S).clone()
    history: list[dict[str, float]] = []
    solves, timed_out = 0, False

    def unpack(vec: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return layout.unpack(torch.tensor(vec))

    for _ in range(config.max_outer):
        stats = ricf_statistics(S, *unpack(theta), omega)  # step 1
        while True:
            lagrangian = _Timed(_Lagrangian(stats, layout, config.penalty, n, rho, alpha), deadline)
            try:
                new = solver.solve(lagrangian, theta, sampler, config.bound)  # step 2
            except _OutOfTime:
                assert lagrangian.best is not None
                new = np.clip(lagrangian.best, 0.0, config.bound)
            solves += 1
            h_new = float(mag_constraint(*unpack(new)))
            timed_out = time.perf_counter() > deadline
            if h_new > config.h_decrease * h and rho < config.rho_max and not timed_out:  # step 3
                rho *= config.rho_growth
                continue
            break
        theta, h = new, h_new
        alpha += rho * h
        W1, W2 = unpack(theta)
        omega = residual_variances(stats, W1, W2)
        fit = float(least_squares(stats, W1, W2).sum())
        history.append({"rho": rho, "alpha": alpha, "h": h, "least_squares": fit})
        if h <= config.h_tol or rho >= config.rho_max or timed_out:  # step 4
            break
    W1, W2 = unpack(theta)
    score = float(
        least_squares(stats, W1, W2).sum() + config.penalty * smoothed_l0(torch.tensor(theta), n)
    )
    return MAGResult(
        W1=W1.numpy(),
        W2=W2.numpy(),
        mag=np.zeros((layout.d, layout.d), dtype=np.int8),
        pag=np.zeros((layout.d, layout.d), dtype=np.int8),
        h=h,
        score=score,
        seconds=0.0,
        inner_solves=solves,
        history=history,
        extra={"timed_out": timed_out},
    )


def coefficients_to_mag(
    W1: np.ndarray, W2: np.ndarray, threshold: float, keep: np.ndarray | None = None
) -> np.ndarray:
    """A maximal ancestral graph from learned coefficients; the pairs in `keep` stay adjacent.

    1. drop ``|w| <= threshold``, except on the pairs of `keep` (a symmetric boolean mask: SPOT's
       pairs whose posterior is above its keep-cut), where no threshold applies; per pair keep
       the largest of ``|W1[a,b]|``, ``|W1[b,a]|``, ``|W2[a,b]|`` (a -> b, b -> a or a <-> b;
       a kept pair whose coefficients are all zero becomes a <-> b);
    2. while a directed cycle remains, take its weakest directed edge: drop it, or, on a kept
       pair, make it bidirected (step 3 then orients it along the ancestor relation that is left);
    3. turn ``a <-> b`` with a an ancestor of b into ``a -> b`` (the ancestor relation is
       unchanged, so one pass suffices);
    4. `make_maximal` adds the edges that inducing paths imply.

    No step removes a kept pair, so the skeleton contains `keep` whatever the coefficients are.
    """
    d = W1.shape[0]
    kept = np.zeros((d, d), dtype=bool) if keep is None else symmetric_adjacency(keep, d, "keep")
    A1 = np.abs(W1) * ((np.abs(W1) > threshold) | kept)
    A2 = np.abs(W2) * ((np.abs(W2) > threshold) | kept)
    np.fill_diagonal(A1, 0.0)
    np.fill_diagonal(A2, 0.0)
    directed = (A1 > A1.T) & (A1 >= A2)
    bidirected = (np.maximum(A1, A1.T) < A2) & (A2 > 0)
    bidirected |= kept & ~(directed | directed.T | bidirected)  # kept pairs left without an edge
    weights = np.where(directed, A1, 0.0)
    while has_directed_cycle(weights > 0):
        anc = ancestor_matrix(weights > 0)
        on_cycle = (weights > 0) & anc.T  # a -> b with b an ancestor of a
        a, b = np.unravel_index(np.argmin(np.where(on_cycle, weights, np.inf)), weights.shape)
        weights[a, b] = 0.0
        if kept[a, b]:
            bidirected[a, b] = bidirected[b, a] = True
    directed = weights > 0
    anc = ancestor_matrix(directed)
    promote = bidirected & anc
    directed |= promote
    bidirected &= ~(promote | promote.T)
    return make_maximal(graph_from_coefficients(directed, bidirected))
