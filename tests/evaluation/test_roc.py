"""ROC helpers: AUC, best accuracy and TPR at a fixed FPR on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.errors import ConfigError
from dmsec.evaluation import auc, best_accuracy, tpr_at_fpr


def test_perfect_separation():
    labels, scores = np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])
    assert auc(labels, scores) == best_accuracy(labels, scores) == tpr_at_fpr(labels, scores) == 1.0


def test_one_hold_out_above_a_member():
    labels, scores = np.array([1, 1, 0, 0]), np.array([0.9, 0.3, 0.5, 0.1])
    assert auc(labels, scores) == pytest.approx(0.75)
    assert best_accuracy(labels, scores) == pytest.approx(0.75)  # threshold 0.9 or 0.3
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.5)  # only the 0.9 member
    assert tpr_at_fpr(labels, scores, 0.5) == pytest.approx(1.0)


def test_ties_are_one_threshold():
    labels, scores = np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])
    assert best_accuracy(labels, scores) == 0.5 and auc(labels, scores) == 0.5


def test_bad_inputs_name_the_field():
    with pytest.raises(ConfigError, match="labels"):
        auc(np.array([1, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ConfigError, match="max_fpr"):
        tpr_at_fpr(np.array([1, 0]), np.array([0.1, 0.2]), 2.0)
