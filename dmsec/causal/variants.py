"""SPOT's final-graph variants, compared on the tuning split to choose the default.

One SPOT run (its coefficients ``W1, W2`` and posterior ``S``) gives every variant below without
running the learner again, because the keep-cut acts only when the coefficients become a graph
(`learner.coefficients_to_mag`):

- ``drop``: no keep-cut (SPOT before the keep-cut: thresholded coefficients only);
- ``keep@c``: the learner's graph with every pair ``S > c`` kept adjacent (the method change;
  c >= the guidance cut, since pairs below it were never optimised);
- ``posterior+marks``: the posterior's skeleton ``S > cut`` with the ``drop`` PAG's marks
  (`skeleton.with_posterior_skeleton`);
- ``union@h``: the ``drop`` PAG plus the pairs ``S > h`` it lacks, unoriented
  (`skeleton.union_with_posterior`);
- ``posterior``: the thresholded posterior alone, no marks.

`choose_variant` is the selection rule: the highest mean skeleton F1 among the variants whose mean
arrowhead F1 is at least FCI's on the same datasets (or the best any variant reaches, if none
reaches FCI's), on the tuning split's datasets only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dmsec.causal.learner import coefficients_to_mag
from dmsec.causal.pag import mag_to_pag
from dmsec.causal.skeleton import (
    posterior_adjacency,
    skeleton_pag,
    union_with_posterior,
    with_posterior_skeleton,
)

KEEP_CUTS = (0.32, 0.4, 0.5, 0.6, 0.7)
UNION_CUTS = (0.4, 0.5, 0.6, 0.7)


def variant_pags(
    W1: np.ndarray, W2: np.ndarray, S: np.ndarray, cut: float, w_threshold: float
) -> dict[str, np.ndarray]:
    """Every variant's PAG from one run's coefficients and posterior (see the module docstring)."""
    drop = mag_to_pag(coefficients_to_mag(W1, W2, w_threshold))
    out = {"drop": drop}
    for c in KEEP_CUTS:
        if c >= cut:
            mag = coefficients_to_mag(W1, W2, w_threshold, posterior_adjacency(S, c))
            out[f"keep@{c:g}"] = mag_to_pag(mag)
    post = posterior_adjacency(S, cut)
    out["posterior+marks"] = with_posterior_skeleton(drop, post)
    for h in UNION_CUTS:
        out[f"union@{h:g}"] = union_with_posterior(drop, posterior_adjacency(S, h))
    out["posterior"] = skeleton_pag(post)
    return out


def choose_variant(
    skeleton_f1: Mapping[str, Sequence[float]],
    arrowhead_f1: Mapping[str, Sequence[float]],
    reference_arrowhead_f1: float,
) -> str:
    """The variant with the highest mean skeleton F1 whose mean arrowhead F1 is at least
    ``min(reference_arrowhead_f1, the best variant's)``: at least FCI's marks when some variant
    reaches them, else the best marks any variant has.

    `skeleton_f1` maps a variant to its skeleton F1 per tuning dataset; `arrowhead_f1` to its
    arrowhead F1 on the tuning datasets where the reference (FCI) has a result, so the marks
    are compared on the same datasets. ``posterior`` (no marks) is never chosen.
    """
    names = [k for k in skeleton_f1 if k != "posterior" and len(skeleton_f1[k])]
    if not names:
        raise ValueError("`skeleton_f1` must hold at least one variant with scores")
    sk = {k: float(np.mean(skeleton_f1[k])) for k in names}
    ah = {
        k: float(np.mean(arrowhead_f1[k])) if len(arrowhead_f1.get(k, ())) else 0.0 for k in names
    }
    floor = min(reference_arrowhead_f1, max(ah.values()))
    eligible = [k for k in names if ah[k] >= floor]
    return max(eligible, key=lambda k: (sk[k], ah[k]))
