"""Training the skeleton posterior cascade on simulated (graph, data) pairs.

Each training graph is drawn with a random size and sample size (`PosteriorTrainingConfig`) and a
generator setting from the protocol's tuning family (`protocol.FAMILIES`: Erdos-Renyi and
scale-free graphs, hidden confounders and random hidden vertices, several weight ranges, noise
scales and noise families); the data are standardised (the features are correlations, so this
changes nothing but says what the model is for), and labels are the true MAG's adjacencies.
Held-out AUC is measured twice: on fresh graphs of the training family, and on the protocol's
reporting family, whose generators the training never saw (``heldout_auc_per_stage``). Stage s is a
scikit-learn `GradientBoostingClassifier` (log-loss, so its probabilities stay calibrated to the
simulation prior; no class rebalancing). The next stage's vicinal features need stage-s
posteriors on the training graphs: those come from 2-fold cross-fitting by graph (stacking), so
stage s + 1 learns from the same out-of-sample quality of ``S_s`` it will see at inference.
The fitted trees are copied into plain arrays (`TreeEnsemble`) and checked to reproduce
scikit-learn's probabilities; nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from dmsec.causal import features as F
from dmsec.causal.graphs import NONE
from dmsec.causal.posterior import SkeletonPosterior, TreeEnsemble, base_features, stage_features
from dmsec.causal.protocol import FAMILIES, standardize
from dmsec.causal.simulate import SimulationConfig, simulate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PosteriorTrainingConfig:
    """What the posterior is trained on and how. Seeds make a build reproducible."""

    n_graphs: int = 100
    observed_range: tuple[int, int] = (10, 100)
    family: str = "tuning"
    heldout_family: str = "reporting"
    sample_sizes: tuple[int, ...] = (500, 1000, 2000, 5000)
    n_stages: int = 3
    n_vicinal: int = 5
    n_estimators: int = 120
    max_depth: int = 3
    learning_rate: float = 0.1
    subsample: float = 0.5
    heldout_graphs: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        lo, hi = self.observed_range
        if not 3 <= lo <= hi:
            raise ValueError(
                f"`observed_range` must satisfy 3 <= low <= high; got {self.observed_range}"
            )
        if self.n_graphs < 2:
            raise ValueError(
                f"`n_graphs` must be >= 2 (two cross-fitting folds); got {self.n_graphs}"
            )
        if not 1 <= self.n_stages <= 4:
            raise ValueError(f"`n_stages` must be in [1, 4]; got {self.n_stages}")
        if self.n_vicinal < self.n_stages:
            raise ValueError(
                f"`n_vicinal` must be >= n_stages ({self.n_stages}); got {self.n_vicinal}"
            )
        for name in ("family", "heldout_family"):
            if getattr(self, name) not in FAMILIES:
                raise ValueError(
                    f"`{name}` must be one of {sorted(FAMILIES)}; got {getattr(self, name)!r}"
                )
        if not 0 < self.subsample <= 1:
            raise ValueError(f"`subsample` must be in (0, 1]; got {self.subsample}")
        if not self.sample_sizes or min(self.sample_sizes) < 50:
            raise ValueError(
                f"`sample_sizes` must be non-empty, each >= 50; got {self.sample_sizes}"
            )

    def config_hash(self) -> str:
        """First 16 hex digits of the sha256 of the config's JSON: the cache key."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class _Graph:
    C: np.ndarray
    n: int
    d: int
    base: np.ndarray
    labels: np.ndarray


def random_simulation(
    config: PosteriorTrainingConfig, rng: np.random.Generator, family: str | None = None
) -> SimulationConfig:
    """One training graph's simulation settings: size and sample size from `config`, the rest
    from the generator family (`config.family` unless named)."""
    d = int(rng.integers(config.observed_range[0], config.observed_range[1] + 1))
    n = int(rng.choice(config.sample_sizes))
    return FAMILIES[family or config.family].draw(d, n, rng)


def simulate_training_graphs(
    config: PosteriorTrainingConfig, count: int, seed: int, family: str | None = None
) -> list[_Graph]:
    """`count` simulated graphs with their stage-0 features and MAG adjacency labels."""
    rng = np.random.default_rng(seed)
    graphs = []
    for g in range(count):
        ds = simulate(random_simulation(config, rng, family), seed=seed * 100_003 + g)
        C = F.correlation(standardize(ds.data))
        n, d = ds.data.shape
        iu, ju = np.triu_indices(d, k=1)
        graphs.append(_Graph(C, n, d, base_features(C, n), (ds.mag != NONE)[iu, ju]))
    return graphs


def _fit(X: np.ndarray, y: np.ndarray, config: PosteriorTrainingConfig, seed: int) -> TreeEnsemble:
    from sklearn.ensemble import GradientBoostingClassifier

    clf = GradientBoostingClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        learning_rate=config.learning_rate,
        subsample=config.subsample,
        random_state=seed,
    )
    clf.fit(X, y)
    return export_gradient_boosting(clf, X[: min(len(X), 2000)])


def export_gradient_boosting(clf: object, X_check: np.ndarray) -> TreeEnsemble:
    """Copy a fitted binary `GradientBoostingClassifier` into a `TreeEnsemble`.

    The constant ``init`` is recovered from ``decision_function - lr * sum(tree outputs)`` and the
    copy must reproduce scikit-learn's log-odds on `X_check` to 1e-6.
    """
    trees = [est.tree_ for est in clf.estimators_[:, 0]]  # type: ignore[attr-defined]
    lr = float(clf.learning_rate)  # type: ignore[attr-defined]
    offsets = np.cumsum([0] + [t.node_count for t in trees])
    shift = [np.where(t.children_left >= 0, off, 0) for t, off in zip(trees, offsets, strict=False)]
    left = np.concatenate([t.children_left + s for t, s in zip(trees, shift, strict=True)])
    right = np.concatenate([t.children_right + s for t, s in zip(trees, shift, strict=True)])
    ens = TreeEnsemble(
        feature=np.concatenate(
            [np.where(t.children_left >= 0, t.feature, -1) for t in trees]
        ).astype(np.int32),
        threshold=np.concatenate([t.threshold for t in trees]).astype(np.float64),
        left=left.astype(np.int32),
        right=right.astype(np.int32),
        value=np.concatenate([t.value[:, 0, 0] for t in trees]).astype(np.float64),
        roots=offsets[:-1].astype(np.int32),
        init=0.0,
        learning_rate=lr,
        depth=max(int(t.max_depth) for t in trees),
    )
    raw = clf.decision_function(X_check)  # type: ignore[attr-defined]
    init = float(np.mean(raw - ens.decision_function(X_check)))
    ens = dataclasses.replace(ens, init=init)
    err = float(np.max(np.abs(ens.decision_function(X_check) - raw)))
    if err > 1e-6:
        raise RuntimeError(f"exported trees differ from scikit-learn's by {err:.3g} in log-odds")
    return ens


def _stage_auc(
    model: TreeEnsemble,
    graphs: list[_Graph],
    previous: list[list[np.ndarray]],
    stage: int,
    n_vicinal: int,
) -> float:
    """AUC of cascade `stage` on held-out graphs; appends its posteriors to `previous`."""
    from sklearn.metrics import roc_auc_score

    probs = []
    for g, p in zip(graphs, previous, strict=True):
        prob = model.predict_proba(stage_features(g.C, g.n, stage, p, g.base, n_vicinal))
        p.append(F.pairs_to_matrix(prob, g.d))
        probs.append(prob)
    return float(roc_auc_score(np.concatenate([g.labels for g in graphs]), np.concatenate(probs)))


def build_posterior(config: PosteriorTrainingConfig | None = None) -> SkeletonPosterior:
    """Simulate, train the cascade, check it on held-out graphs, return the posterior.

    Held-out sets: `heldout_graphs` fresh graphs of the training family (seed ``2 seed + 2``) and
    as many of `heldout_family` (seed ``2 seed + 51``), whose generators training never saw.
    """
    config = config or PosteriorTrainingConfig()
    t0 = time.perf_counter()
    train = simulate_training_graphs(config, config.n_graphs, seed=config.seed * 2 + 1)
    held = {
        "same": simulate_training_graphs(config, config.heldout_graphs, seed=config.seed * 2 + 2),
        "unseen": simulate_training_graphs(
            config, config.heldout_graphs, seed=config.seed * 2 + 51, family=config.heldout_family
        ),
    }
    log.info("simulated %d + 2 x %d graphs in %.1fs", len(train), config.heldout_graphs,
             time.perf_counter() - t0)  # fmt: skip
    fold = np.arange(len(train)) % 2
    prev_train: list[list[np.ndarray]] = [[] for _ in train]
    prev_held: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in v] for k, v in held.items()}
    stages: list[TreeEnsemble] = []
    aucs: dict[str, list[float]] = {"same": [], "unseen": []}
    for s in range(config.n_stages):
        Xs = [
            stage_features(g.C, g.n, s, p, g.base, config.n_vicinal)
            for g, p in zip(train, prev_train, strict=True)
        ]
        ys = [g.labels for g in train]
        model = _fit(np.concatenate(Xs), np.concatenate(ys), config, seed=config.seed + s)
        stages.append(model)
        for key in held:
            aucs[key].append(_stage_auc(model, held[key], prev_held[key], s, config.n_vicinal))
        log.info("stage %d: held-out AUC %.4f (training family), %.4f (%s family) (%.1fs)", s,
                 aucs["same"][-1], aucs["unseen"][-1], config.heldout_family,
                 time.perf_counter() - t0)  # fmt: skip
        if s == config.n_stages - 1:
            break
        for k in (0, 1):  # cross-fit: the model from the other fold scores this fold
            idx = np.flatnonzero(fold != k)
            half = _fit(
                np.concatenate([Xs[i] for i in idx]),
                np.concatenate([ys[i] for i in idx]),
                config,
                seed=config.seed + 10 * s + k,
            )
            for i in np.flatnonzero(fold == k):
                prev_train[i].append(F.pairs_to_matrix(half.predict_proba(Xs[i]), train[i].d))
    import sklearn

    manifest = {
        "training_config": asdict(config),
        "config_hash": config.config_hash(),
        "heldout_auc_per_stage": aucs["unseen"],
        "heldout_family": config.heldout_family,
        "training_family_auc_per_stage": aucs["same"],
        "sklearn_version": sklearn.__version__,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return SkeletonPosterior(stages, config.n_vicinal, manifest)
