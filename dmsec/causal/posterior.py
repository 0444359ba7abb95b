"""The skeleton posterior ``S_ij = P(i and j adjacent | data)`` (SPOT phase 1).

A cascade of gradient-boosted tree ensembles (ML4S style, see `features`): stage 0 scores every
pair from order-0/1 (partial) correlations; stage s >= 1 adds order-(s + 1) partial correlations
over each pair's most likely neighbours under stage s - 1 and summaries of that vicinal graph.
The last stage's probabilities are the posterior. Trained once on simulated graphs
(`posterior_train`), applied to a new table in one pass (amortised inference).

Storage, without pickle: ``<name>.npz`` holds only numeric arrays (node feature, threshold,
children and leaf value of every tree, per stage) and is read with ``allow_pickle=False``;
``<name>.json`` is the manifest (format version, training config, feature names, held-out scores
and the npz's sha256). Loading refuses a file whose hash does not match its manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmsec.causal import features as F

log = logging.getLogger(__name__)
FORMAT = "dmsec.skeleton_posterior/1"
MODEL_NAME = "skeleton_posterior"
ASSET_DIR = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class TreeEnsemble:
    """Binary gradient-boosted trees: ``logit = init + learning_rate * sum_t leaf_t(x)``."""

    feature: np.ndarray  # (nodes,) int32, -1 at leaves
    threshold: np.ndarray  # (nodes,) float64; go left when x <= threshold
    left: np.ndarray  # (nodes,) int32 global node index, -1 at leaves
    right: np.ndarray  # (nodes,) int32
    value: np.ndarray  # (nodes,) float64 leaf values
    roots: np.ndarray  # (trees,) int32 root node of each tree
    init: float
    learning_rate: float
    depth: int

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds per row. Inputs are rounded to float32 first, as scikit-learn's trees do."""
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        if X.ndim != 2 or X.shape[1] <= int(self.feature.max(initial=0)):
            raise ValueError(
                f"`X` must be (rows, >{int(self.feature.max(initial=0))}); got {X.shape}"
            )
        rows = np.arange(X.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (X.shape[0], len(self.roots))).copy()
        for _ in range(self.depth):
            leaf = self.left[node] < 0
            x = X[rows, np.where(leaf, 0, self.feature[node])]
            nxt = np.where(x <= self.threshold[node], self.left[node], self.right[node])
            node = np.where(leaf, node, nxt)
        return self.init + self.learning_rate * self.value[node].sum(axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``P(y = 1 | x) = sigmoid(logit)``, written with tanh so large logits cannot overflow."""
        return 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(X)))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The ensemble as named numeric arrays for an npz file."""
        scalars = np.array([self.init, self.learning_rate, float(self.depth)])
        names = ("feature", "threshold", "left", "right", "value", "roots")
        out = {f"{prefix}{k}": getattr(self, k) for k in names}
        out[f"{prefix}scalars"] = scalars
        return out

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> TreeEnsemble:
        """Inverse of `arrays`."""
        init, lr, depth = (float(v) for v in arrays[f"{prefix}scalars"])
        return cls(
            feature=np.asarray(arrays[f"{prefix}feature"], dtype=np.int32),
            threshold=np.asarray(arrays[f"{prefix}threshold"], dtype=np.float64),
            left=np.asarray(arrays[f"{prefix}left"], dtype=np.int32),
            right=np.asarray(arrays[f"{prefix}right"], dtype=np.int32),
            value=np.asarray(arrays[f"{prefix}value"], dtype=np.float64),
            roots=np.asarray(arrays[f"{prefix}roots"], dtype=np.int32),
            init=init,
            learning_rate=lr,
            depth=int(depth),
        )


def stage_features(
    C: np.ndarray, n: int, stage: int, previous: list[np.ndarray], base: np.ndarray, n_vicinal: int
) -> np.ndarray:
    """Feature matrix of cascade `stage` given the earlier stages' posteriors `previous`.

    Stage 0 is `base` (order-0 and order-1 features); stage s appends, for each earlier stage t < s,
    the vicinal summaries of ``S_t`` and order-(t + 2) partial correlations over its vicinal sets.
    """
    cols = [base]
    for t in range(stage):
        cols.append(F.vicinal_features(previous[t]))
        cols.append(F.conditional_features(C, n, previous[t], t + 2, n_vicinal))
    return np.concatenate(cols, axis=1)


def feature_names(stage: int) -> list[str]:
    """Column names of `stage_features` for one stage."""
    names = [*F.ORDER0_NAMES, *F.ORDER1_NAMES]
    for t in range(stage):
        names += [f"{v}_{t}" for v in F.VICINAL_NAMES]
        names += list(F.higher_order_names(t + 2))
    return names


def base_features(C: np.ndarray, n: int) -> np.ndarray:
    """Order-0 and order-1 features: the input of cascade stage 0."""
    return np.concatenate([F.order0_features(C, n), F.order1_features(C, n)], axis=1)


class SkeletonPosterior:
    """Callable cascade: ``posterior(data) -> S`` with ``S[i, j] = P(i - j adjacent | data)``."""

    def __init__(
        self, stages: list[TreeEnsemble], n_vicinal: int, manifest: dict[str, Any]
    ) -> None:
        if not stages:
            raise ValueError("`stages` must hold at least one tree ensemble")
        if n_vicinal < 1:
            raise ValueError(f"`n_vicinal` must be >= 1; got {n_vicinal}")
        self.stages = stages
        self.n_vicinal = n_vicinal
        self.manifest = manifest

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Posterior adjacency probabilities, a symmetric ``(d, d)`` matrix with zero diagonal."""
        C = F.correlation(data)
        n, d = np.asarray(data).shape
        base = base_features(C, n)
        previous: list[np.ndarray] = []
        for s, model in enumerate(self.stages):
            X = stage_features(C, n, s, previous, base, self.n_vicinal)
            previous.append(F.pairs_to_matrix(model.predict_proba(X), d))
        return previous[-1]

    def save(self, directory: str | Path, name: str = MODEL_NAME) -> Path:
        """Write ``<name>.npz`` (arrays only) and ``<name>.json`` (manifest with its sha256)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for s, model in enumerate(self.stages):
            arrays.update(model.arrays(f"s{s}_"))
        npz = directory / f"{name}.npz"
        tmp = npz.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, npz)
        manifest = dict(self.manifest)
        manifest.update(
            format=FORMAT,
            n_stages=len(self.stages),
            n_vicinal=self.n_vicinal,
            sha256=_sha256(npz),
            feature_names=[feature_names(s) for s in range(len(self.stages))],
        )
        (directory / f"{name}.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return npz

    @classmethod
    def load(cls, directory: str | Path, name: str = MODEL_NAME) -> SkeletonPosterior:
        """Read a saved posterior; refuses a wrong format or an npz whose sha256 differs."""
        directory = Path(directory)
        manifest_path, npz = directory / f"{name}.json", directory / f"{name}.npz"
        if not manifest_path.is_file() or not npz.is_file():
            raise FileNotFoundError(f"{directory}: no {name}.json / {name}.npz pair")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(
                f"{manifest_path}: `format` must be {FORMAT!r}; got {manifest.get('format')!r}"
            )
        digest = _sha256(npz)
        if digest != manifest.get("sha256"):
            raise ValueError(
                f"{npz}: sha256 {digest} does not match the manifest's {manifest.get('sha256')}"
            )
        with np.load(npz, allow_pickle=False) as arrays:
            stages = [
                TreeEnsemble.from_arrays(arrays, f"s{s}_") for s in range(int(manifest["n_stages"]))
            ]
        return cls(stages, int(manifest["n_vicinal"]), manifest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where built posteriors are cached: ``$DMSEC_CACHE/causal`` or ``~/.cache/dmsec/causal``."""
    root = os.environ.get("DMSEC_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "dmsec") / "causal"


def load_posterior(path: str | Path | None = None) -> SkeletonPosterior:
    """The posterior at `path`, else the packaged asset, else a cached build of the default config
    (built and cached on first use; takes minutes)."""
    if path is not None:
        return SkeletonPosterior.load(path)
    if (ASSET_DIR / f"{MODEL_NAME}.json").is_file():
        return SkeletonPosterior.load(ASSET_DIR)
    from dmsec.causal.posterior_train import PosteriorTrainingConfig, build_posterior

    config = PosteriorTrainingConfig()
    target = cache_dir() / config.config_hash()
    if (target / f"{MODEL_NAME}.json").is_file():
        return SkeletonPosterior.load(target)
    log.warning("no packaged skeleton posterior; training one into %s (minutes, once)", target)
    posterior = build_posterior(config)
    posterior.save(target)
    return posterior
