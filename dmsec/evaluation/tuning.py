"""The one rule every benchmark uses to choose a method's setting, on the tuning split only.

A benchmark records one `Trial` per (split, group, setting, unit): e.g. FineXtract at w 1.5 on one
checkpoint of the tuning split, or the direct-sampling baseline at CFG scale 3 on the same one.
`choose_setting(trials, method, group)` looks only at the tuning split's trials of that method and
group and returns the setting with the best mean primary score (ties: the best mean secondary
score, then the smaller setting). Reporting-split trials may sit in the same list, they never
change a choice; a method or group with no tuning trial is an error, never a silent default.
A method and its baseline get the same rule, and the benchmark gives both the same grid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dmsec.errors import ConfigError

TUNING = "tuning"
REPORTING = "reporting"
SPLITS = (TUNING, REPORTING)


@dataclass(frozen=True)
class Trial:
    """One measurement: `method` at `setting` on one `unit` (a checkpoint, seed, ...) of `split`,
    in `group` (e.g. the fine-tune kind); `primary` is maximised, `secondary` breaks ties."""

    split: str
    method: str
    group: str
    setting: float
    unit: str
    primary: float
    secondary: float = 0.0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"`split` must be one of {SPLITS}; got {self.split!r}")
        if not np.isfinite(self.primary) or not np.isfinite(self.secondary):
            raise ConfigError(f"`primary` and `secondary` must be finite; got {self.primary}, {self.secondary}")  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The chosen setting of `method` for `group` and the tuning-split means it was chosen by."""

    method: str
    group: str
    setting: float
    primary: float
    secondary: float
    n_units: int
    grid: tuple[float, ...]

    def describe(self) -> str:
        return (f"{self.method} {self.group}: {self.setting:g} (tuning split, mean {self.primary:.2f} / "
                f"{self.secondary:.3f} over {self.n_units} runs; grid {', '.join(f'{g:g}' for g in self.grid)})")  # fmt: skip


def sweep_table(trials: Iterable[Trial], method: str, group: str, split: str = TUNING) -> dict[float, tuple[float, float, int]]:  # fmt: skip
    """setting -> (mean primary, mean secondary, runs) of `method`'s trials in `group` and `split`."""
    cells: dict[float, list[Trial]] = defaultdict(list)
    for t in trials:
        if (t.split, t.method, t.group) == (split, method, group):
            cells[t.setting].append(t)
    return {s: (float(np.mean([t.primary for t in ts])), float(np.mean([t.secondary for t in ts])), len(ts))
            for s, ts in sorted(cells.items())}  # fmt: skip


def choose_setting(trials: Sequence[Trial], method: str, group: str) -> Choice:
    """The tuning split's best setting of `method` in `group` (see the module docstring). Every
    setting of the grid must have been run on the same number of units, so no setting is judged
    on an easier subset."""
    table = sweep_table(trials, method, group, TUNING)
    if not table:
        raise ConfigError(f"no tuning-split trial for method {method!r}, group {group!r}: nothing to choose from")  # fmt: skip
    counts = {n for _, _, n in table.values()}
    if len(counts) != 1:
        raise ConfigError(f"method {method!r}, group {group!r}: settings ran on different numbers of units {sorted(counts)}")  # fmt: skip
    setting = max(table, key=lambda s: (table[s][0], table[s][1], -s))
    primary, secondary, n = table[setting]
    return Choice(method, group, setting, primary, secondary, n, tuple(table))


def smallest_within(scores: dict[float, float], tolerance: float) -> float:
    """The smallest setting whose score is within `tolerance` of the best (a cost knob, e.g. PGD
    steps: the cheapest that is as good as the best, up to `tolerance`). `scores` must be the
    tuning split's figures; ties between settings never arise (the smallest wins)."""
    if not scores:
        raise ConfigError("`scores` is empty: nothing to choose from")
    if tolerance < 0:
        raise ConfigError(f"`tolerance` must be >= 0; got {tolerance}")
    best = max(scores.values())
    return min(k for k, v in scores.items() if v >= best - tolerance)
