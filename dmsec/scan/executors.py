"""The executors a scan runs its stages with, by name: `local` (this process) or `ray`.

`ray` is `dmsec_pipelines.scan.ray_executor` (Ray Data actor pools), reached through the Ray job
table `dmsec.jobs` and imported only when a scan asks for it: `dmsec/` never imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from dmsec.errors import ConfigError
from dmsec.jobs import ray_job
from dmsec.scan.config import EXECUTORS
from dmsec.scan.records import ScanItem
from dmsec.scan.resolve import ResolvedScan

#: (items, resolved scan, staging folder) -> finished items, in any order
Executor = Callable[[list[ScanItem], ResolvedScan, Path], Iterable[ScanItem]]


def executor_named(name: str) -> Executor:
    """The executor `name` (one of `EXECUTORS`)."""
    if name == "local":
        from dmsec.scan.local import local_executor

        return local_executor
    if name == "ray":
        executor: Executor = ray_job("scan").ray_executor
        return executor
    raise ConfigError(f"`run.executor` must be one of {EXECUTORS}; got {name!r}")
