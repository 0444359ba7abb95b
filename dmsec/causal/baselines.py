"""Baselines for SPOT: causal-learn's FCI (the `causal` extra), as a PAG endpoint matrix.

causal-learn's ``G.graph[i, j]`` is the mark *at i* on the i-j edge (-1 tail, 1 arrowhead,
2 circle); ours is the mark at the other end (see `graphs`), so the matrix is transposed while
translating. Known limit found while testing `pag`: causal-learn 0.1.4.8's R9/R10 can orient a
circle that the Markov class leaves undetermined (an equivalent MAG with the opposite mark
exists); FCI results are used as they come.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from dmsec.causal.graphs import ARROW, CIRCLE, NONE, TAIL

_FROM_CAUSALLEARN = {-1: TAIL, 1: ARROW, 2: CIRCLE}


def causallearn_to_endpoints(graph: np.ndarray) -> np.ndarray:
    """Endpoint matrix from a causal-learn ``GeneralGraph.graph`` array."""
    g = np.asarray(graph)
    E = np.zeros(g.shape, dtype=np.int8)
    for a, b in np.argwhere(g != 0):
        E[a, b] = _FROM_CAUSALLEARN[int(g[b, a])] if g[b, a] != 0 else NONE
    return E


def fci_pag(data: np.ndarray, alpha: float = 0.01, depth: int = -1) -> np.ndarray:
    """FCI with Fisher-z tests at level `alpha`; causal-learn's progress printing is silenced."""
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha}")
    from causallearn.search.ConstraintBased.FCI import fci

    with contextlib.redirect_stdout(io.StringIO()):
        graph, _ = fci(
            np.asarray(data, dtype=np.float64), "fisherz", alpha, depth=depth, show_progress=False
        )
    return causallearn_to_endpoints(graph.graph)
