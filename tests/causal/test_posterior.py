"""The skeleton posterior: clearly better than chance on fresh graphs, stored without pickle."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dmsec.causal.graphs import NONE
from dmsec.causal.posterior import MODEL_NAME, SkeletonPosterior
from dmsec.causal.posterior_train import PosteriorTrainingConfig, build_posterior
from dmsec.causal.simulate import SimulationConfig, simulate

# Seeds far from the training/held-out ones (seed * 100_003 + g for seeds 1 and 2).
FRESH_SEEDS = (900_001, 900_002, 900_003)
TINY = PosteriorTrainingConfig(
    n_graphs=6,
    heldout_graphs=2,
    observed_range=(6, 12),
    sample_sizes=(300,),
    n_stages=2,
    n_vicinal=3,
    n_estimators=8,
)


@pytest.mark.parametrize(("d", "latent"), [(30, 3), (60, 6)])
def test_posterior_beats_chance_clearly_on_fresh_graphs(
    posterior: SkeletonPosterior, d: int, latent: int
) -> None:
    labels, scores = [], []
    for seed in FRESH_SEEDS:
        ds = simulate(SimulationConfig(n_observed=d, n_latent=latent, n_samples=1000), seed)
        S = posterior(ds.data)
        assert np.allclose(S, S.T) and S.min() >= 0 and S.max() <= 1 and np.all(np.diag(S) == 0)
        iu = np.triu_indices(d, k=1)
        labels.append((ds.mag != NONE)[iu])
        scores.append(S[iu])
    auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    assert auc > 0.75, auc


def test_packaged_model_is_small_and_pickle_free(posterior: SkeletonPosterior) -> None:
    from dmsec.causal.posterior import ASSET_DIR

    npz = ASSET_DIR / f"{MODEL_NAME}.npz"
    assert npz.stat().st_size < 2 * 2**20
    with zipfile.ZipFile(npz) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(npz, allow_pickle=False) as arrays:  # raises on any object array
        assert all(arrays[k].dtype != object for k in arrays.files)
    assert min(posterior.manifest["heldout_auc_per_stage"]) > 0.9


@pytest.fixture(scope="module")
def tiny_posterior() -> SkeletonPosterior:
    return build_posterior(TINY)


def test_build_save_load_round_trip(tiny_posterior: SkeletonPosterior, tmp_path: Path) -> None:
    tiny_posterior.save(tmp_path)
    loaded = SkeletonPosterior.load(tmp_path)
    data = simulate(SimulationConfig(n_observed=7, n_latent=1, n_samples=300), 5).data
    assert np.array_equal(tiny_posterior(data), loaded(data))
    manifest = json.loads((tmp_path / f"{MODEL_NAME}.json").read_text())
    assert manifest["config_hash"] == TINY.config_hash() and manifest["n_stages"] == 2


def test_tampered_model_is_refused(tiny_posterior: SkeletonPosterior, tmp_path: Path) -> None:
    tiny_posterior.save(tmp_path)
    npz = tmp_path / f"{MODEL_NAME}.npz"
    blob = bytearray(npz.read_bytes())
    blob[-100] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        SkeletonPosterior.load(tmp_path)


def test_training_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="`n_vicinal`"):
        PosteriorTrainingConfig(n_stages=3, n_vicinal=2)
    with pytest.raises(ValueError, match="`observed_range`"):
        PosteriorTrainingConfig(observed_range=(2, 10))


def test_features_and_posterior_are_invariant_to_rescaling_a_column(
    posterior: SkeletonPosterior,
) -> None:
    from dmsec.causal import features as F
    from dmsec.causal.posterior import base_features

    X = simulate(SimulationConfig(n_observed=12, n_latent=2, n_samples=1000), 21).data
    Y = X.copy()
    Y[:, 3] *= 1e4  # another unit
    Y[:, 7] = -0.01 * Y[:, 7] + 5.0  # rescaled, sign-flipped and shifted
    n = X.shape[0]
    bx, by = base_features(F.correlation(X), n), base_features(F.correlation(Y), n)
    assert np.allclose(bx, by, atol=1e-9)
    assert np.allclose(posterior(X), posterior(Y), atol=1e-6)


def test_packaged_manifest_reports_auc_on_unseen_generators(posterior: SkeletonPosterior) -> None:
    manifest = posterior.manifest
    assert manifest["training_config"]["family"] == "tuning"
    assert manifest["heldout_family"] == "reporting"
    assert len(manifest["heldout_auc_per_stage"]) == manifest["n_stages"]
    assert len(manifest["training_family_auc_per_stage"]) == manifest["n_stages"]
