"""SPOT's final-graph variants, compared on the tuning split to choose the default.

One SPOT run (its coefficients ``W1, W2`` and posterior ``S``) gives every variant below without
running the learner again, because the keep-cut and the final skeleton act only after learning
(`learner.coefficients_to_mag`, `spot.final_pag`):

- ``drop``: the learner's graph, no keep-cut (SPOT before the keep-cut);
- ``keep@c``: the learner's graph with every pair ``S > c`` kept adjacent (c >= the guidance cut,
  since pairs below it were never optimised; ``skeleton="learner"``);
- ``keep@c+posterior``: ``keep@c`` plus the posterior's pairs ``S > cut`` it lacks, unoriented
  (the learner adds to the posterior, never drops from it; ``skeleton="union"``);
- ``posterior+marks@c``: the posterior's skeleton ``S > cut`` with ``keep@c``'s marks, circles
  where ``keep@c`` lacks the edge (``skeleton="posterior"``);
- ``posterior+marks``: the posterior's skeleton with the ``drop`` PAG's marks
  (`skeleton.with_posterior_skeleton`; the simple combination of the issue);
- ``union@h``: the ``drop`` PAG plus the pairs ``S > h`` it lacks, unoriented
  (`skeleton.union_with_posterior`; the other simple combination);
- ``posterior``: the thresholded posterior alone, no marks.

`choose_variant` is the selection rule, on the tuning split's datasets only.
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
    post = posterior_adjacency(S, cut)
    out = {"drop": drop}
    keeps = {}
    for c in KEEP_CUTS:
        if c >= cut:
            mag = coefficients_to_mag(W1, W2, w_threshold, posterior_adjacency(S, c))
            keeps[c] = out[f"keep@{c:g}"] = mag_to_pag(mag)
    for c, pag in keeps.items():
        if c > cut:  # at c = cut the learner keeps every posterior pair itself
            out[f"keep@{c:g}+posterior"] = union_with_posterior(pag, post)
    for c, pag in keeps.items():
        out[f"posterior+marks@{c:g}"] = with_posterior_skeleton(pag, post)
    out["posterior+marks"] = with_posterior_skeleton(drop, post)
    for h in UNION_CUTS:
        out[f"union@{h:g}"] = union_with_posterior(drop, posterior_adjacency(S, h))
    out["posterior"] = skeleton_pag(post)
    return out


def choose_variant(
    skeleton_f1: Mapping[str, Sequence[float]],
    arrowhead_f1: Mapping[str, Sequence[float]],
    reference_arrowhead_f1: float,
    posterior_f1: Sequence[float] | None = None,
) -> str:
    """The variant with the highest mean skeleton F1 (ties: the higher mean arrowhead F1) among
    those whose

    - skeleton F1 is at least the posterior's on every dataset, when `posterior_f1` (the
      posterior alone, per dataset in the order of `skeleton_f1`'s lists) is given: SPOT must
      never be worse than the posterior it starts from; and whose
    - mean arrowhead F1 is at least ``min(reference_arrowhead_f1, the best such variant's)``: at
      least FCI's marks when some variant reaches them, else the best marks any variant has.

    When no variant meets the first condition it is dropped (the rule before issue #35).
    `skeleton_f1` maps a variant to its skeleton F1 per tuning dataset; `arrowhead_f1` to its
    arrowhead F1 on the tuning datasets where the reference (FCI) has a result, so the marks
    are compared on the same datasets. ``posterior`` (no marks) is never chosen.
    """
    names = [k for k in skeleton_f1 if k != "posterior" and len(skeleton_f1[k])]
    if not names:
        raise ValueError("`skeleton_f1` must hold at least one variant with scores")
    if posterior_f1 is not None:
        base = np.asarray(posterior_f1, dtype=float)
        never_worse = [
            k
            for k in names
            if len(skeleton_f1[k]) == len(base)
            and bool(np.all(np.asarray(skeleton_f1[k]) >= base - 1e-12))
        ]
        names = never_worse or names
    sk = {k: float(np.mean(skeleton_f1[k])) for k in names}
    ah = {
        k: float(np.mean(arrowhead_f1[k])) if len(arrowhead_f1.get(k, ())) else 0.0 for k in names
    }
    floor = min(reference_arrowhead_f1, max(ah.values()))
    eligible = [k for k in names if ah[k] >= floor]
    return max(eligible, key=lambda k: (round(sk[k], 12), ah[k]))
