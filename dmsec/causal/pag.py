"""MAG -> PAG: the partial ancestral graph of a maximal ancestral graph's Markov class.

Zhang (2008), "On the completeness of orientation rules for causal discovery in the presence of
latent confounders and selection variables", Artificial Intelligence 172. The PAG keeps the
MAG's skeleton; a mark is an arrowhead or tail only when every MAG in the class shares it.
Procedure (the oracle version of FCI's orientation phase, no selection bias):

1. all marks start as circles;
2. an unshielded triple a *-* b *-* c is oriented a *-> b <-* c when b is a collider in the MAG;
3. rules R1-R4 and R8-R10 are applied until none changes the graph (R5-R7 only produce
   undirected / selection edges and never fire without selection). R4's collider question
   ("is b in the separating set?") is answered from the MAG itself.

Known limit: R9/R10 search uncovered potentially directed paths, which is exponential in the
worst case; the search stops after `path_budget` expansions per query and then leaves the mark
as a circle (sound, possibly less informative). Oracle PAGs of the sparse graphs we simulate
never hit the budget.
"""

from __future__ import annotations

import numpy as np

from dmsec.causal.graphs import ARROW, CIRCLE, NONE, TAIL, check_endpoint_matrix, is_ancestral

DEFAULT_PATH_BUDGET = 20_000


def mag_to_pag(mag: np.ndarray, path_budget: int = DEFAULT_PATH_BUDGET) -> np.ndarray:
    """Return the PAG (endpoint matrix, see `graphs`) of the Markov class of an ancestral `mag`."""
    M = check_endpoint_matrix(mag, "mag")
    if not is_ancestral(M):
        raise ValueError("`mag` must be ancestral (no directed or almost-directed cycle)")
    if path_budget < 1:
        raise ValueError(f"`path_budget` must be >= 1; got {path_budget}")
    adj = M != NONE
    P = np.where(adj, CIRCLE, NONE).astype(np.int8)
    _orient_unshielded_colliders(P, M, adj)
    rules = _Rules(P, M, adj, path_budget)
    changed = True
    while changed:
        # bitwise | so that every rule runs in each sweep
        changed = rules.r1() | rules.r2() | rules.r3() | rules.r4()
        if not changed:
            changed = rules.r8() | rules.r9() | rules.r10()
    return P


def _orient_unshielded_colliders(P: np.ndarray, M: np.ndarray, adj: np.ndarray) -> None:
    """Step 2: copy the MAG's unshielded colliders a *-> b <-* c into P."""
    for b in range(P.shape[0]):
        nb = np.flatnonzero(adj[b])
        for i, a in enumerate(nb):
            for c in nb[i + 1 :]:
                if not adj[a, c] and M[a, b] == ARROW and M[c, b] == ARROW:
                    P[a, b] = ARROW
                    P[c, b] = ARROW


class _Rules:
    """Zhang's orientation rules on a PAG `P` being built in place; each returns 'changed'."""

    def __init__(self, P: np.ndarray, M: np.ndarray, adj: np.ndarray, budget: int) -> None:
        self.P, self.M, self.adj, self.budget = P, M, adj, budget
        self.nbrs = [[int(x) for x in np.flatnonzero(adj[v])] for v in range(P.shape[0])]

    def _is_parent(self, a: int, c: int) -> bool:
        return bool(self.P[a, c] == ARROW and self.P[c, a] == TAIL)

    def r1(self) -> bool:
        """R1: a *-> b o-* c, a and c not adjacent  =>  b -> c."""
        P, adj, changed = self.P, self.adj, False
        for b in range(P.shape[0]):
            into_b = [a for a in self.nbrs[b] if P[a, b] == ARROW]
            for c in self.nbrs[b]:
                if P[c, b] != CIRCLE:
                    continue
                if any(a != c and not adj[a, c] for a in into_b):
                    P[c, b], P[b, c] = TAIL, ARROW
                    changed = True
        return changed

    def r2(self) -> bool:
        """R2: (a -> b *-> c  or  a *-> b -> c) and a *-o c  =>  a *-> c."""
        P = self.P
        arrow = (P == ARROW).astype(np.int32)
        parent = ((P == ARROW) & (P.T == TAIL)).astype(np.int32)
        cond = ((parent @ arrow) > 0) | ((arrow @ parent) > 0)
        hit = cond & (P == CIRCLE)
        P[hit] = ARROW
        return bool(hit.any())

    def r3(self) -> bool:
        """R3: a *-> b <-* c, a *-o d o-* c, a and c not adjacent, d *-o b  =>  d *-> b."""
        P, adj, changed = self.P, self.adj, False
        for b in range(P.shape[0]):
            for d in self.nbrs[b]:
                if P[d, b] != CIRCLE:
                    continue
                cand = [
                    x for x in self.nbrs[b] if x != d and P[x, b] == ARROW and P[x, d] == CIRCLE
                ]
                if any(not adj[x, y] for i, x in enumerate(cand) for y in cand[i + 1 :]):
                    P[d, b] = ARROW
                    changed = True
        return changed

    def r4(self) -> bool:
        """R4: on a discriminating path <d, ..., a, b, c> for b with b o-* c, orient b -> c when b
        is a non-collider in the MAG, else a <-> b <-> c."""
        P, changed = self.P, False
        for c in range(P.shape[0]):
            for b in self.nbrs[c]:
                if P[c, b] != CIRCLE:
                    continue
                for a in self.nbrs[b]:
                    if a == c or P[b, a] != ARROW or not self._is_parent(a, c):
                        continue
                    if self._discriminating_path(a, b, c):
                        if self.M[a, b] == ARROW and self.M[c, b] == ARROW:
                            P[a, b] = P[b, a] = P[b, c] = P[c, b] = ARROW
                        else:
                            P[c, b], P[b, c] = TAIL, ARROW
                        changed = True
                        break
        return changed

    def _discriminating_path(self, a: int, b: int, c: int) -> bool:
        """Breadth-first search back from a for d: each inner vertex a collider and parent of c."""
        P, adj = self.P, self.adj
        visited = {a, b, c}
        frontier = [a]
        while frontier:
            nxt = []
            for v in frontier:
                for w in self.nbrs[v]:
                    if w in visited or P[w, v] != ARROW:
                        continue
                    if not adj[w, c]:
                        return True
                    if P[v, w] == ARROW and self._is_parent(w, c):
                        visited.add(w)
                        nxt.append(w)
            frontier = nxt
        return False

    def r8(self) -> bool:
        """R8: (a -> b -> c  or  a -o b -> c) and a o-> c  =>  a -> c."""
        P = self.P
        first = ((P == ARROW) | (P == CIRCLE)) & (P.T == TAIL)
        parent = (P == ARROW) & (P.T == TAIL)
        cond = (first.astype(np.int32) @ parent.astype(np.int32)) > 0
        hit = np.argwhere(cond & (P == ARROW) & (P.T == CIRCLE))
        for a, c in hit:
            P[c, a] = TAIL
        return len(hit) > 0

    def r9(self) -> bool:
        """R9: a o-> c and an uncovered p.d. path <a, b, ..., c> with b, c not adjacent => a -> c."""
        P, adj, changed = self.P, self.adj, False
        for a, c in np.argwhere((P == ARROW) & (P.T == CIRCLE)).tolist():
            for b in self.nbrs[a]:
                if b == c or adj[b, c] or not self._pd(a, b):
                    continue
                if self._uncovered_pd_path([a, b], c):
                    P[c, a] = TAIL
                    changed = True
                    break
        return changed

    def r10(self) -> bool:
        """R10: a o-> c, b -> c <- d, uncovered p.d. paths a..b and a..d whose first vertices
        after a (mu, omega) differ and are not adjacent  =>  a -> c."""
        P, adj, changed = self.P, self.adj, False
        for a, c in np.argwhere((P == ARROW) & (P.T == CIRCLE)).tolist():
            parents = [x for x in self.nbrs[c] if x != a and self._is_parent(x, c)]
            if len(parents) < 2:
                continue
            firsts = {x: self._first_vertices(a, x) for x in parents}
            found = any(
                mu != om and not adj[mu, om]
                for i, x in enumerate(parents)
                for y in parents[i + 1 :]
                for mu in firsts[x]
                for om in firsts[y]
            )
            if found:
                P[c, a] = TAIL
                changed = True
        return changed

    def _first_vertices(self, a: int, target: int) -> set[int]:
        """Vertices mu such that an uncovered p.d. path <a, mu, ..., target> exists."""
        out = set()
        for mu in self.nbrs[a]:
            if not self._pd(a, mu):
                continue
            if mu == target or self._uncovered_pd_path([a, mu], target):
                out.add(mu)
        return out

    def _pd(self, u: int, v: int) -> bool:
        """The edge u *-* v is potentially directed from u to v: no arrowhead at u, no tail at v."""
        return bool(self.adj[u, v] and self.P[v, u] != ARROW and self.P[u, v] != TAIL)

    def _uncovered_pd_path(self, start: list[int], target: int) -> bool:
        """Depth-first search for an uncovered p.d. path extending `start` to `target`."""
        adj, budget = self.adj, self.budget
        stack = [start]
        while stack and budget > 0:
            path = stack.pop()
            budget -= 1
            u, v = path[-2], path[-1]
            for w in self.nbrs[v]:
                if w in path or adj[u, w] or not self._pd(v, w):
                    continue
                if w == target:
                    return True
                stack.append([*path, w])
        return False
