"""Linear-Gaussian data from random DAGs with hidden confounders, and the true MAG and PAG.

Generative model: an Erdos-Renyi DAG over ``n_observed + n_latent`` variables in a random causal
order; edge weights ``w ~ U(weight_range)`` with a random sign; ``X = X W + e`` with independent
Gaussian noise ``e_i ~ N(0, s_i^2)``, ``s_i ~ U(noise_std_range)``. The hidden variables are
picked among vertices with at least two children (so each one confounds a pair) and dropped
from the data.

True MAG (Richardson & Spirtes 2002, Sec. 4.2.1): observed a, b are adjacent iff an inducing path
relative to the latents joins them, which holds iff they are d-connected given
``(An({a, b}) & O) minus {a, b}``; the edge is a -> b when a is an ancestor of b in the DAG,
b -> a in the reverse case, and a <-> b otherwise. The true PAG is `mag_to_pag` of that MAG.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dmsec.causal.graphs import (
    ancestor_matrix,
    graph_from_edges,
    m_connected,
    neighbours,
)
from dmsec.causal.pag import mag_to_pag


@dataclass(frozen=True)
class SimulationConfig:
    """Size, density and noise of one simulated linear-Gaussian MAG dataset."""

    n_observed: int = 20
    n_latent: int = 2
    expected_degree: float = 3.0
    n_samples: int = 2000
    weight_range: tuple[float, float] = (0.5, 2.0)
    noise_std_range: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if self.n_observed < 2:
            raise ValueError(f"`n_observed` must be >= 2; got {self.n_observed}")
        if self.n_latent < 0:
            raise ValueError(f"`n_latent` must be >= 0; got {self.n_latent}")
        if not 0 < self.expected_degree < self.n_observed + self.n_latent - 1:
            raise ValueError(
                f"`expected_degree` must be in (0, {self.n_observed + self.n_latent - 1}); "
                f"got {self.expected_degree}"
            )
        if self.n_samples < 10:
            raise ValueError(f"`n_samples` must be >= 10; got {self.n_samples}")
        lo, hi = self.weight_range
        if not 0 < lo <= hi:
            raise ValueError(
                f"`weight_range` must satisfy 0 < low <= high; got {self.weight_range}"
            )
        lo, hi = self.noise_std_range
        if not 0 < lo <= hi:
            raise ValueError(
                f"`noise_std_range` must satisfy 0 < low <= high; got {self.noise_std_range}"
            )


@dataclass(frozen=True)
class SimulatedDataset:
    """Data (observed columns only) and the true graphs. DAG vertices: observed first."""

    data: np.ndarray  # (n_samples, n_observed)
    dag_weights: np.ndarray  # (p, p); w[a, b] != 0 iff a -> b; vertices >= n_observed are hidden
    n_observed: int
    mag: np.ndarray  # endpoint matrix over observed variables
    pag: np.ndarray
    seed: int = 0
    names: list[str] = field(default_factory=list)

    @property
    def dag(self) -> np.ndarray:
        """Boolean DAG adjacency ``dag[a, b]`` = a -> b over all (observed + hidden) vertices."""
        return self.dag_weights != 0


def random_dag(n_vertices: int, expected_degree: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean adjacency of an Erdos-Renyi DAG (edge probability = degree / (p - 1)) in random order."""
    prob = expected_degree / max(n_vertices - 1, 1)
    upper = np.triu(rng.random((n_vertices, n_vertices)) < prob, k=1)
    order = rng.permutation(n_vertices)
    return upper[np.ix_(order, order)]


def choose_latents(dag: np.ndarray, n_latent: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n_latent` hidden confounders: vertices with >= 2 children, most-children first
    when there are too few."""
    children = dag.sum(axis=1)
    eligible = np.flatnonzero(children >= 2)
    if len(eligible) >= n_latent:
        return np.sort(rng.choice(eligible, size=n_latent, replace=False))
    order = np.lexsort((rng.random(len(children)), -children))
    return np.sort(order[:n_latent])


def sample_linear_gaussian(
    weights: np.ndarray, noise_std: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Samples of ``X = X W + e`` (row vectors), i.e. ``X = e (I - W)^{-1}``."""
    p = weights.shape[0]
    noise = rng.standard_normal((n, p)) * noise_std
    return noise @ np.linalg.inv(np.eye(p) - weights)


def dag_to_mag(dag: np.ndarray, n_observed: int) -> np.ndarray:
    """The MAG over vertices ``0..n_observed-1`` of a DAG whose other vertices are hidden."""
    dag = np.asarray(dag, dtype=bool)
    p = dag.shape[0]
    E = graph_from_edges(p, directed=[tuple(e) for e in np.argwhere(dag)])
    anc = ancestor_matrix(dag)
    nbrs = neighbours(E)
    directed, bidirected = [], []
    for a in range(n_observed):
        for b in range(a + 1, n_observed):
            ancestors = np.flatnonzero(anc[:, a] | anc[:, b])
            z = [int(v) for v in ancestors if v < n_observed and v not in (a, b)]
            if not m_connected(E, a, b, z, anc=anc, nbrs=nbrs):
                continue
            if anc[a, b]:
                directed.append((a, b))
            elif anc[b, a]:
                directed.append((b, a))
            else:
                bidirected.append((a, b))
    return graph_from_edges(n_observed, directed, bidirected)


def simulate(config: SimulationConfig, seed: int) -> SimulatedDataset:
    """Draw one DAG with hidden confounders, its data, and the true MAG and PAG."""
    rng = np.random.default_rng(seed)
    p = config.n_observed + config.n_latent
    dag = random_dag(p, config.expected_degree, rng)
    latent = choose_latents(dag, config.n_latent, rng)
    observed = np.setdiff1d(np.arange(p), latent)
    order = np.concatenate([rng.permutation(observed), latent])
    dag = dag[np.ix_(order, order)]
    lo, hi = config.weight_range
    weights = dag * rng.uniform(lo, hi, size=(p, p)) * rng.choice([-1.0, 1.0], size=(p, p))
    noise_std = rng.uniform(*config.noise_std_range, size=p)
    data = sample_linear_gaussian(weights, noise_std, config.n_samples, rng)
    mag = dag_to_mag(dag, config.n_observed)
    return SimulatedDataset(
        data=data[:, : config.n_observed],
        dag_weights=weights,
        n_observed=config.n_observed,
        mag=mag,
        pag=mag_to_pag(mag),
        seed=seed,
        names=[f"x{i}" for i in range(config.n_observed)],
    )
