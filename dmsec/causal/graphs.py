"""Mixed graphs (DAGs, MAGs, PAGs) as endpoint matrices, and their graphical queries.

Encoding (the `pcalg` ``amat.pag`` convention): an ``(d, d)`` int8 matrix ``E`` where
``E[a, b]`` is the mark *at b* on the edge between a and b:
``NONE`` (no edge), ``CIRCLE`` (o), ``ARROW`` (>) or ``TAIL`` (-). So ``a -> b`` is
``E[a, b] == ARROW and E[b, a] == TAIL``, ``a <-> b`` has ``ARROW`` at both ends, and
``a o-> b`` is ``E[a, b] == ARROW and E[b, a] == CIRCLE``. The matrix is "symmetric in support":
``E[a, b] != NONE`` iff ``E[b, a] != NONE``.

References: Richardson & Spirtes (2002), "Ancestral graph Markov models" (ancestral, maximal,
inducing paths, Theorem 4.2 / 5.1); Zhang (2008) for PAGs. We assume no selection bias, so
undirected (tail-tail) edges never occur in a MAG.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

NONE, CIRCLE, ARROW, TAIL = 0, 1, 2, 3
MARK_NAMES = {NONE: "none", CIRCLE: "circle", ARROW: "arrow", TAIL: "tail"}


def empty_graph(d: int) -> np.ndarray:
    """An endpoint matrix with `d` vertices and no edges."""
    if d < 0:
        raise ValueError(f"`d` must be >= 0; got {d}")
    return np.zeros((d, d), dtype=np.int8)


def check_endpoint_matrix(E: np.ndarray, name: str = "graph") -> np.ndarray:
    """Validate an endpoint matrix (square, marks in {0..3}, zero diagonal, symmetric support)."""
    E = np.asarray(E)
    if E.ndim != 2 or E.shape[0] != E.shape[1]:
        raise ValueError(f"`{name}` must be a square (d, d) matrix; got shape {E.shape}")
    if E.size and (E.min() < NONE or E.max() > TAIL):
        raise ValueError(f"`{name}` marks must be in {{0, 1, 2, 3}}; got {np.unique(E)}")
    if np.any(np.diag(E) != NONE):
        raise ValueError(f"`{name}` must have no self loops (zero diagonal)")
    if np.any((E != NONE) != (E.T != NONE)):
        raise ValueError(f"`{name}` must have symmetric support: E[a, b] != 0 iff E[b, a] != 0")
    return E.astype(np.int8, copy=False)


def graph_from_edges(
    d: int,
    directed: Iterable[tuple[int, int]] = (),
    bidirected: Iterable[tuple[int, int]] = (),
) -> np.ndarray:
    """Endpoint matrix of a MAG/DAG from lists of directed ``(a, b)`` = a->b and bidirected pairs."""
    E = empty_graph(d)
    for a, b in directed:
        E[a, b], E[b, a] = ARROW, TAIL
    for a, b in bidirected:
        E[a, b], E[b, a] = ARROW, ARROW
    return E


def graph_from_coefficients(directed: np.ndarray, bidirected: np.ndarray) -> np.ndarray:
    """Endpoint matrix from boolean ``directed[a, b]`` (a->b) and symmetric ``bidirected``."""
    D = np.asarray(directed, dtype=bool)
    B = np.asarray(bidirected, dtype=bool)
    if np.any(D & D.T):
        raise ValueError("`directed` has a 2-cycle a->b->a; pick one direction per pair")
    if np.any(B != B.T):
        raise ValueError("`bidirected` must be symmetric")
    if np.any((D | D.T) & B):
        raise ValueError("a pair cannot be both directed and bidirected")
    E = empty_graph(D.shape[0])
    E[D] = ARROW
    E[D.T] = TAIL
    E[B] = ARROW
    np.fill_diagonal(E, NONE)
    return E


def skeleton(E: np.ndarray) -> np.ndarray:
    """Boolean adjacency (symmetric) of a mixed graph."""
    return np.asarray(E) != NONE


def directed_part(E: np.ndarray) -> np.ndarray:
    """Boolean ``D[a, b]`` = ``a -> b``."""
    E = np.asarray(E)
    return (E == ARROW) & (E.T == TAIL)


def bidirected_part(E: np.ndarray) -> np.ndarray:
    """Boolean symmetric ``B[a, b]`` = ``a <-> b``."""
    E = np.asarray(E)
    return (E == ARROW) & (E.T == ARROW)


def ancestor_matrix(directed: np.ndarray) -> np.ndarray:
    """``A[a, b]`` = a is a proper ancestor of b (a directed path a -> ... -> b) by closure."""
    reach = np.asarray(directed, dtype=bool).copy()
    d = reach.shape[0]
    # Boolean transitive closure by repeated squaring: after k squarings, paths up to 2^k edges.
    for _ in range(max(1, int(np.ceil(np.log2(max(d, 2)))) + 1)):
        step = reach | ((reach.astype(np.int32) @ reach.astype(np.int32)) > 0)
        if np.array_equal(step, reach):
            break
        reach = step
    return reach


def has_directed_cycle(directed: np.ndarray) -> bool:
    """True when the directed edges contain a cycle."""
    return bool(np.any(np.diag(ancestor_matrix(directed))))


def is_ancestral(E: np.ndarray) -> bool:
    """Ancestral (no selection): no directed cycle, no almost-directed cycle, no undirected edge.

    An almost-directed cycle is ``a <-> b`` with a an ancestor of b (or b of a).
    """
    E = check_endpoint_matrix(E)
    if np.any((E == TAIL) & (E.T == TAIL)) or np.any(E == CIRCLE):
        return False
    D = directed_part(E)
    anc = ancestor_matrix(D)
    if np.any(np.diag(anc)):
        return False
    B = bidirected_part(E)
    return not np.any(B & (anc | anc.T))


def neighbours(E: np.ndarray) -> list[np.ndarray]:
    """Adjacency lists of a mixed graph."""
    return [np.flatnonzero(E[v] != NONE) for v in range(E.shape[0])]


def m_connected(
    E: np.ndarray,
    a: int,
    b: int,
    Z: Iterable[int] = (),
    anc: np.ndarray | None = None,
    nbrs: list[np.ndarray] | None = None,
) -> bool:
    """True when a and b are m-connected given Z (d-connected when E is a DAG).

    A path is m-connecting when every non-collider on it is outside Z and every collider is in
    Z or an ancestor of Z. Searched as reachability over (vertex, arrived-with-arrowhead) states,
    which is equivalent to searching paths (Bayes-ball argument). `anc` (from
    `ancestor_matrix`) and `nbrs` may be passed in when many queries share one graph.
    """
    E = np.asarray(E)
    z = np.zeros(E.shape[0], dtype=bool)
    z[list(Z)] = True
    if z[a] or z[b]:
        raise ValueError("`Z` must not contain the end points a or b")
    if anc is None:
        anc = ancestor_matrix(directed_part(E))
    if nbrs is None:
        nbrs = neighbours(E)
    collider_ok = z | anc[:, z].any(axis=1)
    # state: (vertex, True when the edge we arrived by has an arrowhead at this vertex)
    seen: set[tuple[int, bool]] = set()
    queue: deque[tuple[int, bool]] = deque()
    for w in nbrs[a]:
        queue.append((int(w), bool(E[a, w] == ARROW)))
    while queue:
        v, into = queue.popleft()
        if (v, into) in seen:
            continue
        seen.add((v, into))
        if v == b:
            return True
        for w in nbrs[v]:
            out_arrow = E[w, v] == ARROW  # mark at v on the edge v - w
            collider = into and out_arrow
            if (collider and collider_ok[v]) or (not collider and not z[v]):
                queue.append((int(w), bool(E[v, w] == ARROW)))
    return False


def primitive_inducing_path(E: np.ndarray, a: int, b: int, anc: np.ndarray | None = None) -> bool:
    """True when an inducing path (relative to no latents) joins a and b.

    Every non-endpoint on such a path is a collider and an ancestor of a or b, so the inner edges
    are bidirected: ``a *-> v1 <-> ... <-> vk <-* b`` with all v in An({a, b}). Found by
    reachability inside that vertex set.
    """
    E = np.asarray(E)
    if anc is None:
        anc = ancestor_matrix(directed_part(E))
    allowed = anc[:, a] | anc[:, b]
    allowed[[a, b]] = False
    B = bidirected_part(E)
    start = np.flatnonzero((E[a] == ARROW) & allowed)
    goal = (E[b] == ARROW) & allowed
    seen = np.zeros(E.shape[0], dtype=bool)
    seen[start] = True
    queue = deque(int(v) for v in start)
    while queue:
        v = queue.popleft()
        if goal[v]:
            return True
        nxt = np.flatnonzero(B[v] & allowed & ~seen)
        seen[nxt] = True
        queue.extend(int(w) for w in nxt)
    return False


def is_maximal(E: np.ndarray) -> bool:
    """Maximal: no two non-adjacent vertices are joined by an inducing path (R&S 2002, Th. 4.2)."""
    E = np.asarray(E)
    anc = ancestor_matrix(directed_part(E))
    d = E.shape[0]
    for a in range(d):
        for b in range(a + 1, d):
            if E[a, b] == NONE and primitive_inducing_path(E, a, b, anc):
                return False
    return True


def make_maximal(E: np.ndarray) -> np.ndarray:
    """Add an edge between each non-adjacent pair joined by an inducing path (R&S 2002, Th. 5.1).

    In an ancestral graph neither end point of such a path is an ancestor of the other, so each
    added edge is bidirected; the result is a Markov-equivalent maximal ancestral graph.
    """
    E = np.array(E, dtype=np.int8, copy=True)
    while True:
        anc = ancestor_matrix(directed_part(E))
        d = E.shape[0]
        added = [
            (a, b)
            for a in range(d)
            for b in range(a + 1, d)
            if E[a, b] == NONE and primitive_inducing_path(E, a, b, anc)
        ]
        if not added:
            return E
        for a, b in added:
            if anc[a, b]:
                E[a, b], E[b, a] = ARROW, TAIL
            elif anc[b, a]:
                E[b, a], E[a, b] = ARROW, TAIL
            else:
                E[a, b], E[b, a] = ARROW, ARROW


def edge_string(E: np.ndarray, a: int, b: int, names: list[str] | None = None) -> str:
    """Human-readable edge such as ``'x o-> y'`` (empty string when not adjacent)."""
    if E[a, b] == NONE:
        return ""
    left = {CIRCLE: "o", ARROW: "<", TAIL: "-"}[int(E[b, a])]
    right = {CIRCLE: "o", ARROW: ">", TAIL: "-"}[int(E[a, b])]
    na, nb = (names[a], names[b]) if names else (str(a), str(b))
    return f"{na} {left}-{right} {nb}"


def edge_list(E: np.ndarray, names: list[str] | None = None) -> list[str]:
    """All edges of a mixed graph as strings, each pair once (a < b)."""
    d = E.shape[0]
    return [edge_string(E, a, b, names) for a in range(d) for b in range(a + 1, d) if E[a, b]]


def symmetric_adjacency(mask: np.ndarray, d: int, name: str = "adjacency") -> np.ndarray:
    """`mask` as a symmetric ``(d, d)`` boolean matrix with a false diagonal (`name` in errors)."""
    adj = np.asarray(mask, dtype=bool)
    if adj.shape != (d, d):
        raise ValueError(f"`{name}` must have shape ({d}, {d}); got {adj.shape}")
    adj = adj | adj.T
    np.fill_diagonal(adj, False)
    return adj
