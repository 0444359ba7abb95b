"""The SPOT benchmark protocol: generator families and the disjoint tuning / reporting splits.

Every setting of SPOT (its posterior's training distribution, the Ray Tune search) is chosen on
the *tuning* family; figures are reported on the *reporting* family. The two differ in seeds and
in generators:

- ``tuning`` (also the skeleton posterior's training distribution): Erdos-Renyi and scale-free
  DAGs with causes as hubs (``er``, ``sf``), Gaussian and uniform noise, ``|w| ~ U(0.5, 2)`` or
  ``U(0.2, 1)``, noise sd 1 or ``U(0.5, 2)``;
- ``reporting``: Erdos-Renyi and both scale-free orientations (``sf_in``, hubs as effects, is
  never seen in tuning or training), Gaussian, Laplace, centred exponential, Gumbel and
  Student-t(5) noise, ``|w| ~ U(0.3, 1.2)`` or ``U(0.6, 2.5)``, noise sd ``U(0.2, 1)`` or
  ``U(0.5, 3)``.

Both: expected degree ``U(2, 4)``, 5-15% of the vertices hidden, chosen as confounders (at least
two observed children) or at random. Seeds: dataset k of size d in split s is drawn with seed
``SPLIT_SEEDS[s] + 1000 d + k``; the posterior trains on seeds below 10^7 (see
`posterior_train`), so no graph is shared between training, tuning and reporting.

A third family, ``tuning_wide``, draws no benchmark split: it is a training family for the
skeleton posterior (``PosteriorTrainingConfig(family="tuning_wide")``), the tuning family's kinds
plus sparser and denser graphs (expected degree ``U(1.5, 5)``) and two noise kinds of its own
(``bimodal``, ``lognormal``), none of the reporting family's. Tried for issue #35 (recall), it did
not raise the posterior's tuning-split skeleton F1 (0.846 vs 0.847 at cut 0.32), so the packaged
posterior stays trained on ``tuning``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dmsec.causal.simulate import SimulatedDataset, SimulationConfig, simulate

SPLIT_SEEDS = {"tuning": 10_000_000, "reporting": 20_000_000}
SEEDS_PER_SIZE = 1000  # datasets per (split, size) before seeds would run into the next size


@dataclass(frozen=True)
class GeneratorFamily:
    """A distribution over `SimulationConfig`s: each field is drawn uniformly from its options."""

    name: str
    graphs: tuple[str, ...]
    degree_range: tuple[float, float]
    latent_choices: tuple[str, ...]
    latent_fraction_range: tuple[float, float]
    weight_ranges: tuple[tuple[float, float], ...]
    noise_std_ranges: tuple[tuple[float, float], ...]
    noises: tuple[str, ...]

    def draw(
        self, n_observed: int, n_samples: int, rng: np.random.Generator, min_latent: int = 1
    ) -> SimulationConfig:
        """One generator setting of this family for `n_observed` observed variables."""
        latent = max(min_latent, int(round(n_observed * rng.uniform(*self.latent_fraction_range))))
        degree = float(min(rng.uniform(*self.degree_range), n_observed + latent - 2))

        def pick(options: tuple[Any, ...]) -> Any:
            return options[int(rng.integers(len(options)))]

        return SimulationConfig(
            n_observed=n_observed,
            n_latent=latent,
            expected_degree=degree,
            n_samples=n_samples,
            weight_range=pick(self.weight_ranges),
            noise_std_range=pick(self.noise_std_ranges),
            graph=str(pick(self.graphs)),
            latent_choice=str(pick(self.latent_choices)),
            noise=str(pick(self.noises)),
        )


FAMILIES = {
    "tuning": GeneratorFamily(
        name="tuning",
        graphs=("er", "sf"),
        degree_range=(2.0, 4.0),
        latent_choices=("confounder", "random"),
        latent_fraction_range=(0.05, 0.15),
        weight_ranges=((0.5, 2.0), (0.2, 1.0)),
        noise_std_ranges=((1.0, 1.0), (0.5, 2.0)),
        noises=("gaussian", "uniform"),
    ),
    "reporting": GeneratorFamily(
        name="reporting",
        graphs=("er", "sf", "sf_in"),
        degree_range=(2.0, 4.0),
        latent_choices=("confounder", "random"),
        latent_fraction_range=(0.05, 0.15),
        weight_ranges=((0.3, 1.2), (0.6, 2.5)),
        noise_std_ranges=((0.2, 1.0), (0.5, 3.0)),
        noises=("gaussian", "laplace", "exponential", "gumbel", "student_t"),
    ),
    # the skeleton posterior's training family (`posterior_train`): the tuning family's kinds plus
    # sparser and denser graphs and two more noise kinds; none of the reporting family's graph or
    # noise kinds (``sf_in``, Laplace, exponential, Gumbel, Student-t) is added
    "tuning_wide": GeneratorFamily(
        name="tuning_wide",
        graphs=("er", "sf"),
        degree_range=(1.5, 5.0),
        latent_choices=("confounder", "random"),
        latent_fraction_range=(0.05, 0.15),
        weight_ranges=((0.5, 2.0), (0.2, 1.0)),
        noise_std_ranges=((1.0, 1.0), (0.5, 2.0)),
        noises=("gaussian", "uniform", "bimodal", "lognormal"),
    ),
}


def dataset_seed(split: str, n_observed: int, index: int) -> int:
    """The seed of dataset `index` of size `n_observed` in `split` (see the module docstring)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"`split` must be one of {sorted(SPLIT_SEEDS)}; got {split!r}")
    if not 0 <= index < SEEDS_PER_SIZE:
        raise ValueError(f"`index` must be in [0, {SEEDS_PER_SIZE}); got {index}")
    if not 2 <= n_observed < 1000:
        raise ValueError(f"`n_observed` must be in [2, 1000); got {n_observed}")
    return SPLIT_SEEDS[split] + SEEDS_PER_SIZE * n_observed + index


def split_config(split: str, n_observed: int, index: int, n_samples: int) -> SimulationConfig:
    """The generator setting of one benchmark dataset (drawn from its split's family)."""
    rng = np.random.default_rng(dataset_seed(split, n_observed, index))
    return FAMILIES[split].draw(n_observed, n_samples, rng)


def split_dataset(split: str, n_observed: int, index: int, n_samples: int) -> SimulatedDataset:
    """Benchmark dataset `index` of size `n_observed` in `split` (raw scale)."""
    config = split_config(split, n_observed, index, n_samples)
    return simulate(config, dataset_seed(split, n_observed, index))


def standardize(data: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (how users' tables reach SPOT)."""
    X = np.asarray(data, dtype=np.float64)
    return (X - X.mean(axis=0)) / X.std(axis=0)
