"""Baselines for SPOT: causal-learn's FCI (the `causal` extra), as a PAG endpoint matrix.

causal-learn's ``G.graph[i, j]`` is the mark *at i* on the i-j edge (-1 tail, 1 arrowhead,
2 circle); ours is the mark at the other end (see `graphs`), so the matrix is transposed while
translating. Known limit found while testing `pag`: causal-learn 0.1.4.8's R9/R10 can orient a
circle that the Markov class leaves undetermined (an equivalent MAG with the opposite mark
exists); FCI results are used as they come.

FCI has no anytime result and no budget of its own: `fci_pag_within` runs it in a forked child
process and stops that process at a wall-time budget (None = it did not finish).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
from multiprocessing.connection import Connection

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


def _fci_child(conn: Connection, data: np.ndarray, alpha: float, depth: int) -> None:
    conn.send(fci_pag(data, alpha, depth))
    conn.close()


def fci_pag_within(
    data: np.ndarray, max_seconds: float, alpha: float = 0.01, depth: int = -1
) -> np.ndarray | None:
    """`fci_pag` stopped after `max_seconds` of wall time: the PAG, or None when it timed out."""
    if not max_seconds > 0:
        raise ValueError(f"`max_seconds` must be > 0; got {max_seconds}")
    import causallearn.search.ConstraintBased.FCI  # noqa: F401  (imported once, before the fork)

    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_fci_child, args=(send, data, alpha, depth), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(max_seconds):
            try:
                pag: np.ndarray = receive.recv()
            except EOFError:  # the child died without a result (it raised: run it here to see why)
                return fci_pag(data, alpha, depth)
            return pag
        return None
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        receive.close()
