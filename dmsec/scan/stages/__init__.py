"""The scan's stages, in order: callable classes over `ScanItem`s.

Each is built once per worker from `ResolvedScan.stage_kwargs` (the library's own configs) and
called on batches, unchanged in Ray Data (`pipelines/scan.py`), the local executor and tests:
`PullStage` -> `ExtractStage` -> `MatchStage` -> `AuthenticateStage`.
"""

from dmsec.scan.stages.authenticate import AuthenticateStage
from dmsec.scan.stages.base import Stage
from dmsec.scan.stages.extract import ExtractStage
from dmsec.scan.stages.match import MatchStage
from dmsec.scan.stages.pull import PullStage

#: stage name -> class, in scan order (the names of `dmsec.scan.records.STAGES`)
STAGE_CLASSES: dict[str, type[Stage]] = {
    "pull": PullStage,
    "extract": ExtractStage,
    "match": MatchStage,
    "authenticate": AuthenticateStage,
}

__all__ = ["STAGE_CLASSES", "AuthenticateStage", "ExtractStage", "MatchStage", "PullStage", "Stage"]
