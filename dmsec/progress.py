"""Progress of long commands, fit for terminals and for log files alike.

On a terminal (stderr is a TTY) a tqdm bar; otherwise (a CronJob, `>> file 2>&1`, CI) one plain
line per unit of work, so a log never fills with carriage returns:

    bar = progress(total=len(jobs), desc="zoo small", unit="model")
    bar.set_postfix_str("full-7a-light")     # shown on the bar, and on the next line
    bar.update(1)                            # -> "zoo small: 1/4 model (full-7a-light) 12 s"

`every` prints a line only each `every` units (a training loop's unit is a tenth of its steps);
`enabled=False` shows nothing at all. Lines go to stderr, like the bars: stdout stays the
command's result. The scan follows the same rule with its own per-checkpoint lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether progress bars belong on `stream` (default stderr): it is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something without a TTY
        return False


class LineProgress:
    """tqdm's interface (iterate, `update`, `set_postfix[_str]`, `close`) printing plain lines."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", every: int = 1, stream: TextIO | None = None) -> None:  # fmt: skip
        if every < 1:
            raise ValueError(f"`every` must be >= 1; got {every}")
        self.iterable = iterable
        self.total = total if total is not None else _len(iterable)
        self.desc, self.unit, self.every = desc, unit, every
        self.stream = stream
        self.n = 0
        self.postfix = ""
        self.started = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "LineProgress was built without an iterable"
        for value in self.iterable:
            yield value
            self.update(1)

    def update(self, n: int = 1) -> None:
        """Count `n` finished units; print a line when a multiple of `every` (or the end) passes."""
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or (self.total and self.n >= self.total > before):  # fmt: skip
            self.line()

    def line(self) -> None:
        """Print the current state as one line."""
        of = f"/{self.total}" if self.total else ""
        note = f" ({self.postfix})" if self.postfix else ""
        took = time.perf_counter() - self.started
        print(f"{self.desc}: {self.n}{of} {self.unit}{note} {took:.0f} s", file=self.stream or sys.stderr, flush=True)  # fmt: skip

    def set_postfix(self, **values: Any) -> None:
        """Extra values for the next line (e.g. the running loss)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        """Extra text for the next line (e.g. what is being trained)."""
        self.postfix = text

    def close(self) -> None:
        """Nothing to clean up (tqdm compatibility)."""


class _Silent(LineProgress):
    def line(self) -> None:
        return None


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", every: int = 1, enabled: bool = True, leave: bool = True) -> Any:  # fmt: skip
    """A tqdm bar on a terminal, else a `LineProgress`; nothing shown when not `enabled`."""
    if not enabled:
        return _Silent(iterable, total, desc, unit, every)
    if on_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(iterable, total, desc, unit, every)


def _len(iterable: Iterable[Any] | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
