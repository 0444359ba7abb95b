"""The in-process executor: the same stages as the Ray pipeline, one checkpoint at a time.

For debugging, tests without Ray and machines without it (`dmsec scan --set run.executor=local`).
Each stage is built once, like one actor per stage in `pipelines/scan.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dmsec.scan.records import ScanItem
from dmsec.scan.resolve import ResolvedScan
from dmsec.scan.stages import STAGE_CLASSES, Stage


def build_stages(resolved: ResolvedScan, staging: Path) -> list[Stage]:
    """One instance of each stage, in scan order."""
    return [cls(**resolved.stage_kwargs(name, staging)) for name, cls in STAGE_CLASSES.items()]


def local_executor(items: list[ScanItem], resolved: ResolvedScan, staging: Path) -> Iterator[ScanItem]:  # fmt: skip
    """Run every item through every stage in this process, yielding each when finished."""
    stages = build_stages(resolved, staging)
    for item in items:
        for stage in stages:
            stage.run([item])
        yield item
