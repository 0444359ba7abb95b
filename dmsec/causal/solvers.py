"""Inner solvers of the augmented Lagrangian: minimise a torch objective over a free subset.

Both variants take a `sampler` returning the indices of the split parameter vector that may move
(SPOT's sampled skeleton; every pair for the unguided learner); all other entries stay frozen at
their current values. Entries live in ``[0, bound]`` (split parameters, see `objective`).

- ``lbfgsb`` (the paper's choice): scipy's L-BFGS-B with box bounds on torch gradients; one
  skeleton sample per inner solve.
- ``adam``: projected Adam; a fresh skeleton sample every `resample_every` steps, the literal
  "sample at each optimisation step" reading of SPOT. Has a learning rate to tune.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

Objective = Callable[[torch.Tensor], torch.Tensor]
Sampler = Callable[[], np.ndarray]


class InnerSolver(Protocol):
    """One inner minimisation of the augmented Lagrangian."""

    def solve(
        self, objective: Objective, theta: np.ndarray, sampler: Sampler, bound: float
    ) -> np.ndarray:
        """Return the new full parameter vector."""
        ...


def _value_and_grad(objective: Objective, full: np.ndarray) -> tuple[float, np.ndarray]:
    t = torch.tensor(full, dtype=torch.float64, requires_grad=True)
    value = objective(t)
    (grad,) = torch.autograd.grad(value, t)
    return float(value.detach()), grad.numpy()


@dataclass(frozen=True)
class LBFGSBSolver:
    """scipy L-BFGS-B over the sampled entries (bounds ``[0, bound]``)."""

    max_iter: int = 200

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"`max_iter` must be >= 1; got {self.max_iter}")

    def solve(
        self, objective: Objective, theta: np.ndarray, sampler: Sampler, bound: float
    ) -> np.ndarray:
        """Minimise over ``theta[free]`` with the rest frozen."""
        from scipy.optimize import minimize

        free = sampler()
        if len(free) == 0:
            return theta.copy()
        full = theta.copy()

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            full[free] = x
            value, grad = _value_and_grad(objective, full)
            return value, grad[free]

        res = minimize(
            fun,
            theta[free],
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, bound)] * len(free),
            options={"maxiter": self.max_iter},
        )
        out = theta.copy()
        out[free] = np.clip(res.x, 0.0, bound)
        return out


@dataclass(frozen=True)
class AdamSolver:
    """Projected Adam; the free set is resampled every `resample_every` steps."""

    lr: float = 0.01
    steps: int = 300
    resample_every: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.lr <= 1:
            raise ValueError(f"`lr` must be in (0, 1]; got {self.lr}")
        if self.steps < 1 or self.resample_every < 1:
            raise ValueError(
                f"`steps` and `resample_every` must be >= 1; got {self.steps}, {self.resample_every}"
            )

    def solve(
        self, objective: Objective, theta: np.ndarray, sampler: Sampler, bound: float
    ) -> np.ndarray:
        """`steps` projected Adam updates, only the sampled entries move at each one."""
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([t], lr=self.lr)
        mask = torch.zeros_like(t, dtype=torch.bool)
        for step in range(self.steps):
            if step % self.resample_every == 0:
                mask = torch.zeros_like(t, dtype=torch.bool)
                mask[torch.as_tensor(sampler(), dtype=torch.long)] = True
            opt.zero_grad()
            objective(t).backward()
            assert t.grad is not None
            t.grad[~mask] = 0.0
            opt.step()
            with torch.no_grad():
                t[~mask] = torch.as_tensor(theta)[~mask]
                t.clamp_(0.0, bound)
            theta = t.detach().numpy().copy()
        return theta


SOLVERS: dict[str, type[LBFGSBSolver] | type[AdamSolver]] = {
    "lbfgsb": LBFGSBSolver,
    "adam": AdamSolver,
}


def make_solver(name: str, **options: float | int) -> InnerSolver:
    """Build an inner solver by its registry name with its options."""
    if name not in SOLVERS:
        raise ValueError(f"`solver` must be one of {sorted(SOLVERS)}; got {name!r}")
    solver: InnerSolver = SOLVERS[name](**options)  # type: ignore[arg-type]
    return solver
