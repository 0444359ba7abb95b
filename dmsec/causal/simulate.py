"""Linear SEM data from random DAGs with hidden variables, and the true MAG and PAG.

Generative model: a DAG over ``n_observed + n_latent`` variables in a random causal order, either
Erdos-Renyi (``graph="er"``: each ordered pair an edge with probability degree / (p - 1)) or
scale-free (Barabasi-Albert preferential attachment, each new vertex joined to about degree / 2
earlier ones; ``"sf"`` points edges from the earlier vertex to the new one, so hubs are causes,
``"sf_in"`` the other way, so hubs are effects, as NOTEARS' SF graphs); edge weights
``|w| ~ U(weight_range)`` with a random sign; ``X = X W + e`` with independent noise
``e_i = s_i * u_i``, ``s_i ~ U(noise_std_range)`` and ``u_i`` a unit-variance draw from
`NOISES` (Gaussian or non-Gaussian). The hidden variables are chosen (`latent_choice`) either
among vertices with at least two *observed* children, so each one really confounds a pair
(``"confounder"``), or uniformly at random (``"random"``: a hidden mediator or a hidden source
with one child also happens), and are dropped from the data.

True MAG (Richardson & Spirtes 2002, Sec. 4.2.1): observed a, b are adjacent iff an inducing path
relative to the latents joins them, which holds iff they are d-connected given
``(An({a, b}) & O) minus {a, b}``; the edge is a -> b when a is an ancestor of b in the DAG,
b -> a in the reverse case, and a <-> b otherwise. The true PAG is `mag_to_pag` of that MAG.

`varsortability` (Reisach et al., NeurIPS 2021) measures how much the raw scale gives away: the
share of the true MAG's directed edges whose effect has the larger sample variance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dmsec.causal.graphs import (
    ancestor_matrix,
    directed_part,
    graph_from_edges,
    m_connected,
    neighbours,
)
from dmsec.causal.pag import mag_to_pag


def _unit_noise() -> dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]]:
    """Zero-mean, unit-variance noise families by name."""
    return {
        "gaussian": lambda rng, shape: rng.standard_normal(shape),
        "uniform": lambda rng, shape: rng.uniform(-np.sqrt(3), np.sqrt(3), shape),
        "laplace": lambda rng, shape: rng.laplace(0.0, 1 / np.sqrt(2), shape),
        "exponential": lambda rng, shape: rng.exponential(1.0, shape) - 1.0,
        "gumbel": lambda rng, shape: (
            (rng.gumbel(0.0, 1.0, shape) - np.euler_gamma) * np.sqrt(6) / np.pi
        ),
        "student_t": lambda rng, shape: rng.standard_t(5, shape) * np.sqrt(3 / 5),
        # two training-only kinds (the posterior's wider training family, `protocol.FAMILIES`):
        # a symmetric two-mode mixture, +-0.9 with sd sqrt(1 - 0.81), and a centred lognormal
        "bimodal": lambda rng, shape: (
            np.where(rng.random(shape) < 0.5, -0.9, 0.9)
            + np.sqrt(0.19) * rng.standard_normal(shape)
        ),
        "lognormal": lambda rng, shape: (
            (rng.lognormal(0.0, 0.5, shape) - np.exp(0.125))
            / np.sqrt((np.e**0.25 - 1) * np.e**0.25)
        ),
    }


NOISES = _unit_noise()
GRAPHS = ("er", "sf", "sf_in")
LATENT_CHOICES = ("confounder", "random")
MAX_CONFOUNDED = 5  # observed children of a hidden confounder, at most


@dataclass(frozen=True)
class SimulationConfig:
    """Graph generator, size, density, weights and noise of one simulated MAG dataset."""

    n_observed: int = 20
    n_latent: int = 2
    expected_degree: float = 3.0
    n_samples: int = 2000
    weight_range: tuple[float, float] = (0.5, 2.0)
    noise_std_range: tuple[float, float] = (1.0, 1.0)
    graph: str = "er"
    latent_choice: str = "confounder"
    noise: str = "gaussian"

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
        for name, allowed in (
            ("graph", GRAPHS),
            ("latent_choice", LATENT_CHOICES),
            ("noise", tuple(NOISES)),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}; got {getattr(self, name)!r}")

    def describe(self) -> str:
        """One-line summary of the generator, for benchmark tables."""
        w, s = self.weight_range, self.noise_std_range
        return (
            f"{self.graph} deg {self.expected_degree:g}, {self.n_latent} hidden "
            f"({self.latent_choice}), |w|~U({w[0]:g},{w[1]:g}), {self.noise} noise "
            f"sd~U({s[0]:g},{s[1]:g})"
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
    config: SimulationConfig | None = None

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


def scale_free_dag(
    n_vertices: int, expected_degree: float, rng: np.random.Generator, hubs_are_causes: bool = True
) -> np.ndarray:
    """Boolean adjacency of a Barabasi-Albert DAG in random order.

    Vertex t joins ``m_t`` distinct earlier vertices, picked with probability proportional to
    degree + 1; ``m_t`` is ``floor(k)`` or ``ceil(k)`` with mean ``k = degree / 2`` (each edge
    adds 2 to the total degree). Edges point from the earlier vertex to t when `hubs_are_causes`.
    """
    half = expected_degree / 2
    adj = np.zeros((n_vertices, n_vertices), dtype=bool)
    degree = np.zeros(n_vertices)
    for t in range(1, n_vertices):
        m = int(np.floor(half)) + int(rng.random() < half - np.floor(half))
        m = min(m, t)
        if m == 0:
            continue
        weight = degree[:t] + 1.0
        targets = rng.choice(t, size=m, replace=False, p=weight / weight.sum())
        adj[targets, t] = True
        degree[targets] += 1
        degree[t] += m
    if not hubs_are_causes:
        adj = adj.T
    order = rng.permutation(n_vertices)
    return adj[np.ix_(order, order)]


def choose_latents(
    dag: np.ndarray, n_latent: int, rng: np.random.Generator, how: str = "confounder"
) -> np.ndarray:
    """Indices of `n_latent` hidden vertices.

    ``"random"``: uniformly at random. ``"confounder"``: in random order, a vertex is hidden when
    it keeps between 2 and `MAX_CONFOUNDED` observed children and every vertex hidden so far
    keeps at least two; when too few qualify, the rest are drawn at random. The cap keeps a
    hidden scale-free hub from turning its children into one large bidirected clique.
    """
    p = dag.shape[0]
    if how == "random":
        return np.sort(rng.choice(p, size=n_latent, replace=False))
    if how != "confounder":
        raise ValueError(f"`how` must be one of {LATENT_CHOICES}; got {how!r}")
    dag = np.asarray(dag, dtype=bool)
    hidden = np.zeros(p, dtype=bool)
    for v in rng.permutation(p):
        if hidden.sum() == n_latent:
            break
        trial = hidden.copy()
        trial[v] = True
        kept = (dag[trial] & ~trial).sum(axis=1)
        if np.all(kept >= 2) and (dag[v] & ~trial).sum() <= MAX_CONFOUNDED:
            hidden = trial
    rest = np.flatnonzero(~hidden)
    extra = rng.choice(rest, size=n_latent - int(hidden.sum()), replace=False)
    hidden[extra] = True
    return np.flatnonzero(hidden)


def sample_linear_sem(
    weights: np.ndarray,
    noise_std: np.ndarray,
    n: int,
    rng: np.random.Generator,
    noise: str = "gaussian",
) -> np.ndarray:
    """Samples of ``X = X W + e`` (row vectors), i.e. ``X = e (I - W)^{-1}``, with
    ``e = noise_std * u`` and ``u`` unit-variance noise of the named family (`NOISES`)."""
    if noise not in NOISES:
        raise ValueError(f"`noise` must be one of {tuple(NOISES)}; got {noise!r}")
    p = weights.shape[0]
    e = NOISES[noise](rng, (n, p)) * noise_std
    return e @ np.linalg.inv(np.eye(p) - weights)


def sample_linear_gaussian(
    weights: np.ndarray, noise_std: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """`sample_linear_sem` with Gaussian noise."""
    return sample_linear_sem(weights, noise_std, n, rng, "gaussian")


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
    """Draw one DAG with hidden variables, its data, and the true MAG and PAG."""
    rng = np.random.default_rng(seed)
    p = config.n_observed + config.n_latent
    if config.graph == "er":
        dag = random_dag(p, config.expected_degree, rng)
    else:
        dag = scale_free_dag(p, config.expected_degree, rng, hubs_are_causes=config.graph == "sf")
    latent = choose_latents(dag, config.n_latent, rng, config.latent_choice)
    observed = np.setdiff1d(np.arange(p), latent)
    order = np.concatenate([rng.permutation(observed), latent])
    dag = dag[np.ix_(order, order)]
    lo, hi = config.weight_range
    weights = dag * rng.uniform(lo, hi, size=(p, p)) * rng.choice([-1.0, 1.0], size=(p, p))
    noise_std = rng.uniform(*config.noise_std_range, size=p)
    data = sample_linear_sem(weights, noise_std, config.n_samples, rng, config.noise)
    mag = dag_to_mag(dag, config.n_observed)
    return SimulatedDataset(
        data=data[:, : config.n_observed],
        dag_weights=weights,
        n_observed=config.n_observed,
        mag=mag,
        pag=mag_to_pag(mag),
        seed=seed,
        names=[f"x{i}" for i in range(config.n_observed)],
        config=config,
    )


def varsortability(data: np.ndarray, mag: np.ndarray) -> float:
    """Share of the MAG's directed edges a -> b with ``var(b) > var(a)`` in `data` (ties, equal
    up to rounding, count one half; NaN when the MAG has no directed edge). 0.5 after standardising; near 1 on raw
    simulated scales means sorting by variance recovers the causal order."""
    var = np.asarray(data, dtype=np.float64).var(axis=0)
    a, b = np.nonzero(directed_part(mag))
    if len(a) == 0:
        return float("nan")
    tie = np.isclose(var[b], var[a], rtol=1e-9, atol=0.0)  # equal up to rounding
    return float(np.mean(np.where(tie, 0.5, var[b] > var[a])))
