"""Accuracy of an estimated PAG (or MAG) against the true one.

- skeleton F1: adjacencies as unordered pairs, precision = TP / #estimated, recall = TP / #true;
- arrowhead F1 / tail F1: marks as ordered pairs ``(a, b)`` = "the mark at b on the a-b edge";
  an estimated arrowhead is a true positive only when the true graph has that edge with an
  arrowhead at the same end (so a wrong adjacency never earns mark credit);
- PAG SHD: the number of unordered pairs whose edge differs in presence or in either mark.

F1 is ``2 TP / (2 TP + FP + FN)``; when both graphs have no item of that kind it is 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dmsec.causal.graphs import ARROW, NONE, TAIL, check_endpoint_matrix


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one kind of graph feature."""

    precision: float
    recall: float
    f1: float


def _prf(est: np.ndarray, true: np.ndarray) -> PRF:
    """Equation: P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN) over boolean masks."""
    tp = int(np.sum(est & true))
    fp = int(np.sum(est & ~true))
    fn = int(np.sum(~est & true))
    precision = tp / (tp + fp) if tp + fp else float(fn == 0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return PRF(precision, recall, f1)


def _pair_mask(d: int) -> np.ndarray:
    return np.triu(np.ones((d, d), dtype=bool), k=1)


def _check_pair(est: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = check_endpoint_matrix(est, "est")
    true = check_endpoint_matrix(true, "true")
    if est.shape != true.shape:
        raise ValueError(
            f"`est` and `true` must have the same shape; got {est.shape}, {true.shape}"
        )
    return est, true


def skeleton_prf(est: np.ndarray, true: np.ndarray) -> PRF:
    """Adjacency precision / recall / F1 over unordered pairs."""
    est, true = _check_pair(est, true)
    upper = _pair_mask(est.shape[0])
    return _prf((est != NONE)[upper], (true != NONE)[upper])


def mark_prf(est: np.ndarray, true: np.ndarray, mark: int) -> PRF:
    """Precision / recall / F1 of one endpoint mark (ARROW or TAIL) over ordered pairs."""
    if mark not in (ARROW, TAIL):
        raise ValueError(f"`mark` must be ARROW ({ARROW}) or TAIL ({TAIL}); got {mark}")
    est, true = _check_pair(est, true)
    return _prf(est == mark, true == mark)


def pag_shd(est: np.ndarray, true: np.ndarray) -> int:
    """Structural Hamming distance: unordered pairs whose edge (presence or any mark) differs."""
    est, true = _check_pair(est, true)
    differs = (est != true) | (est.T != true.T)
    return int(np.sum(differs[_pair_mask(est.shape[0])]))


@dataclass(frozen=True)
class GraphScores:
    """All scores of one estimate, flat so they go straight into a table row."""

    skeleton_precision: float
    skeleton_recall: float
    skeleton_f1: float
    arrowhead_precision: float
    arrowhead_recall: float
    arrowhead_f1: float
    tail_precision: float
    tail_recall: float
    tail_f1: float
    shd: int

    def as_dict(self) -> dict[str, float]:
        """The scores as a plain dict."""
        return {k: float(v) for k, v in asdict(self).items()}


def score_graph(est: np.ndarray, true: np.ndarray) -> GraphScores:
    """Skeleton, arrowhead and tail precision/recall/F1 and PAG SHD of `est` against `true`."""
    skel = skeleton_prf(est, true)
    arrow = mark_prf(est, true, ARROW)
    tail = mark_prf(est, true, TAIL)
    return GraphScores(
        skel.precision,
        skel.recall,
        skel.f1,
        arrow.precision,
        arrow.recall,
        arrow.f1,
        tail.precision,
        tail.recall,
        tail.f1,
        pag_shd(est, true),
    )
