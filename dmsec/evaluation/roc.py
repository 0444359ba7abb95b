"""ROC summaries of a membership score: AUC, best accuracy over thresholds, TPR at a fixed FPR.

`labels` are 1 for members (positives) and 0 for non-members; a higher score means "member".
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from dmsec.errors import ConfigError


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ConfigError(f"`labels` and `scores` must be 1-d of one length; got {labels.shape} and {scores.shape}")  # fmt: skip
    if not set(np.unique(labels)) <= {0.0, 1.0}:
        raise ConfigError("`labels` must be 0 (non-member) or 1 (member)")
    return labels, scores


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (0.5: chance; ties count half)."""
    labels, scores = _checked(labels, scores)
    return float(roc_auc_score(labels, scores))


def best_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Highest accuracy of `score >= threshold` over every threshold (including all/none)."""
    labels, scores = _checked(labels, scores)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    n_pos, n = int(labels.sum()), len(labels)
    best = max(n_pos, n - n_pos) / n  # predict all positive / all negative
    tp = np.cumsum(sorted_labels)
    fp = np.cumsum(1 - sorted_labels)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    accuracy = (tp + (n - n_pos - fp)) / n
    return float(max(best, accuracy[last_of_tie].max()))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float = 0.01) -> float:
    """Highest true-positive rate among thresholds whose false-positive rate is <= `max_fpr`
    (with fewer than 1/`max_fpr` non-members this allows no false positive at all)."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ConfigError(f"`max_fpr` must be in [0, 1]; got {max_fpr}")
    labels, scores = _checked(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())
