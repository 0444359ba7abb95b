"""Pair features for the skeleton posterior: (partial) correlations order by order.

ML4S-style (Ma et al., KDD 2022): the evidence that i and j are adjacent is how strongly they stay
dependent as we condition on larger and larger sets of their likely neighbours (their "vicinal
graph"). Everything is computed from the sample correlation matrix ``C`` of the data:

- order 0: ``|c_ij|``, its Fisher z ``sqrt(n - 3) atanh|c_ij|``, the full-order partial correlation
  ``-P_ij / sqrt(P_ii P_jj)`` with ``P = (C + eps I)^{-1}``, and how ``|c_ij|`` ranks in i's and
  j's rows;
- order 1: ``rho_ij|k = (c_ij - c_ik c_jk) / sqrt((1 - c_ik^2)(1 - c_jk^2))`` over every k; the
  minimum, its Fisher z ``sqrt(n - 4) atanh|rho|``, the mean, and the share of k that make i, j
  look independent at the 1% level;
- order k >= 2 (stage k - 1 of the cascade): ``rho_ij|Z`` for every k-subset Z of the `n_vicinal`
  most likely neighbours of i or j under the previous stage's posterior ``S``, via the inverse
  of the ``(k + 2)``-square correlation block; plus vicinal-graph summaries of ``S`` (``S_ij``,
  soft degrees, soft common neighbours, relative rank of ``S_ij`` in each row).

Pairs are the ``i < j`` entries in `numpy.triu_indices` order.
"""

from __future__ import annotations

import itertools

import numpy as np

Z_INDEPENDENT = 2.576  # two-sided 1% normal quantile
_RHO_MAX = 1 - 1e-9

ORDER0_NAMES = (
    "abs_corr",
    "z_corr",
    "abs_pcorr_full",
    "z_pcorr_full",
    "corr_row_rank_min",
    "corr_row_rank_max",
    "log_n",
    "log_d",
)
ORDER1_NAMES = ("min_pcorr1", "z_min_pcorr1", "mean_pcorr1", "share_indep1")
VICINAL_NAMES = ("s_prev", "s_deg_min", "s_deg_max", "s_common", "s_rank_min", "s_rank_max")


def higher_order_names(order: int) -> tuple[str, ...]:
    """Feature names added by the cascade stage that conditions on `order`-subsets."""
    return (f"min_pcorr{order}", f"z_min_pcorr{order}", f"mean_pcorr{order}")


def correlation(data: np.ndarray) -> np.ndarray:
    """Sample correlation matrix of an ``(n, d)`` array (rounded to 12 decimals); constant or
    non-finite columns are errors."""
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 5 or X.shape[1] < 2:
        raise ValueError(f"`data` must be (n >= 5, d >= 2); got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("`data` must be finite (no NaN or inf)")
    std = X.std(axis=0)
    if np.any(std == 0):
        raise ValueError(f"`data` columns {np.flatnonzero(std == 0).tolist()} are constant")
    Xs = (X - X.mean(axis=0)) / std
    C = Xs.T @ Xs / X.shape[0]
    np.fill_diagonal(C, 1.0)
    # rounded to 12 decimals: rescaling a column changes C only by float noise (~1e-16), which
    # must not reach the trees' thresholds or the learner (the learner rounds its moments alike)
    return np.clip(np.round(C, 12), -_RHO_MAX, _RHO_MAX)


def _fisher_z(rho: np.ndarray, dof: float) -> np.ndarray:
    return np.sqrt(max(dof, 1.0)) * np.arctanh(np.clip(np.abs(rho), 0, _RHO_MAX))


def order0_features(C: np.ndarray, n: int) -> np.ndarray:
    """Order-0 features per pair, columns `ORDER0_NAMES`."""
    d = C.shape[0]
    iu, ju = np.triu_indices(d, k=1)
    absc = np.abs(C)
    np.fill_diagonal(absc, 0.0)
    P = np.linalg.inv(C + 1e-6 * np.eye(d))
    pfull = -P / np.sqrt(np.outer(np.diag(P), np.diag(P)))
    row_max = absc.max(axis=1)
    rank_i = absc[iu, ju] / np.maximum(row_max[iu], 1e-12)
    rank_j = absc[iu, ju] / np.maximum(row_max[ju], 1e-12)
    return np.column_stack(
        [
            absc[iu, ju],
            _fisher_z(C[iu, ju], n - 3),
            np.abs(pfull[iu, ju]),
            _fisher_z(pfull[iu, ju], n - d - 1),
            np.minimum(rank_i, rank_j),
            np.maximum(rank_i, rank_j),
            np.full(len(iu), np.log(n)),
            np.full(len(iu), np.log(d)),
        ]
    )


def order1_features(C: np.ndarray, n: int, chunk: int = 20_000) -> np.ndarray:
    """Order-1 features per pair over all single conditioning variables, `ORDER1_NAMES`."""
    d = C.shape[0]
    iu, ju = np.triu_indices(d, k=1)
    if d < 3:
        base = np.abs(C[iu, ju])
        return np.column_stack([base, _fisher_z(base, n - 4), base, np.zeros(len(iu))])
    parts = [
        _order1_chunk(C, n, iu[s : s + chunk], ju[s : s + chunk]) for s in range(0, len(iu), chunk)
    ]
    return np.concatenate(parts, axis=0)


def _order1_chunk(C: np.ndarray, n: int, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    d = C.shape[0]
    # rho[p, k] for pair p = (i, j) and conditioning vertex k
    ci, cj = C[iu], C[ju]  # (pairs, d)
    denom = np.sqrt(np.clip((1 - ci**2) * (1 - cj**2), 1e-12, None))
    rho = np.abs((C[iu, ju][:, None] - ci * cj) / denom)
    rows = np.arange(len(iu))
    rho[rows, iu] = np.nan
    rho[rows, ju] = np.nan
    rho_min = np.nanmin(rho, axis=1)
    z_all = _fisher_z(np.nan_to_num(rho, nan=1.0), n - 4)
    share = np.mean(z_all < Z_INDEPENDENT, axis=1) * d / (d - 2)
    return np.column_stack([rho_min, _fisher_z(rho_min, n - 4), np.nanmean(rho, axis=1), share])


def vicinal_sets(S: np.ndarray, n_vicinal: int) -> np.ndarray:
    """Per pair, the `n_vicinal` vertices most likely adjacent to i or j under ``S``."""
    d = S.shape[0]
    iu, ju = np.triu_indices(d, k=1)
    score = np.maximum(S[iu], S[ju])
    rows = np.arange(len(iu))
    score[rows, iu] = -1.0
    score[rows, ju] = -1.0
    m = min(n_vicinal, d - 2)
    top = np.argpartition(-score, m - 1, axis=1)[:, :m] if m > 0 else np.zeros((len(iu), 0), int)
    return top


def conditional_features(
    C: np.ndarray, n: int, S: np.ndarray, order: int, n_vicinal: int
) -> np.ndarray:
    """Order-`order` features: ``|rho_ij|Z|`` over `order`-subsets Z of the vicinal set."""
    d = C.shape[0]
    iu, ju = np.triu_indices(d, k=1)
    top = vicinal_sets(S, n_vicinal)
    subsets = list(itertools.combinations(range(top.shape[1]), order))
    if not subsets:
        base = np.abs(C[iu, ju])
        return np.column_stack([base, _fisher_z(base, n - 3), base])
    # index blocks (pairs, n_subsets, order + 2): [i, j, z_1..z_k]
    zs = top[:, np.array(subsets)]
    ij = np.broadcast_to(np.stack([iu, ju], axis=1)[:, None, :], (len(iu), len(subsets), 2))
    idx = np.concatenate([ij, zs], axis=2)
    blocks = C[idx[..., :, None], idx[..., None, :]] + 1e-9 * np.eye(order + 2)
    prec = np.linalg.inv(blocks)
    rho = np.abs(-prec[..., 0, 1] / np.sqrt(prec[..., 0, 0] * prec[..., 1, 1]))
    rho_min = rho.min(axis=1)
    return np.column_stack([rho_min, _fisher_z(rho_min, n - order - 3), rho.mean(axis=1)])


def vicinal_features(S: np.ndarray) -> np.ndarray:
    """Summaries of the previous stage's posterior around each pair, `VICINAL_NAMES`."""
    d = S.shape[0]
    iu, ju = np.triu_indices(d, k=1)
    deg = S.sum(axis=1)
    common = (S @ S)[iu, ju]
    row_max = np.maximum(S.max(axis=1), 1e-12)
    rank_i, rank_j = S[iu, ju] / row_max[iu], S[iu, ju] / row_max[ju]
    return np.column_stack(
        [
            S[iu, ju],
            np.minimum(deg[iu], deg[ju]),
            np.maximum(deg[iu], deg[ju]),
            common,
            np.minimum(rank_i, rank_j),
            np.maximum(rank_i, rank_j),
        ]
    )


def pairs_to_matrix(values: np.ndarray, d: int) -> np.ndarray:
    """Symmetric ``(d, d)`` matrix from per-pair values in `triu_indices` order."""
    iu, ju = np.triu_indices(d, k=1)
    M = np.zeros((d, d))
    M[iu, ju] = values
    M[ju, iu] = values
    return M
