"""`ScanItem`: one checkpoint's state as it flows through the scan's stages.

Stages exchange one column, `item`, holding each checkpoint's `ScanItem` as JSON: a stable schema
for Ray Data whatever a stage adds, and only file paths for images (generations, evidence, the
protected artwork), never pixels. Status moves from "pending" to "ok", "skipped" or "error"; a
stage leaves any item that is no longer pending untouched, so a failure anywhere is carried to the
end and becomes that checkpoint's row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from dmsec.errors import DmsecError

STATUSES = ("pending", "ok", "skipped", "error")
STAGES = ("pull", "extract", "match", "authenticate")


def utc_now() -> str:
    """Now, UTC, ISO 8601."""
    return datetime.now(UTC).isoformat()


def is_retryable(exc: BaseException) -> bool:
    """Whether a failure may pass by itself (hub, network, memory), so the ledger retries it.

    A bad checkpoint or a bad config fails the same way again and is not retried at this revision.
    """
    from dmsec.hub.source import HubError

    if isinstance(exc, HubError | MemoryError | ConnectionError | TimeoutError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return True
    return not isinstance(exc, DmsecError | ValueError | KeyError | TypeError)


def describe(exc: BaseException) -> str:
    """One line naming the error type and its message (at most 500 characters)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:500]}" if text else type(exc).__name__


@dataclass
class ScanItem:
    """One checkpoint in one scan: its ref, where its files are, what each stage found."""

    ref: dict[str, Any]
    scan_id: str
    config_hash: str
    order: int = 0
    status: str = "pending"
    error_stage: str | None = None
    error: str | None = None
    retryable: bool = False
    local_path: str | None = None
    base_path: str | None = None
    base_key: str | None = None
    staging_dir: str | None = None
    device: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    n_samples: int = 0
    n_groups: int | None = None
    clustering_threshold: float | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"`status` must be one of {STATUSES}; got {self.status!r}")

    # -- identity ------------------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, str, str]:
        """(source, repo_id, revision)."""
        return (self.ref["source"], self.ref["repo_id"], self.ref["revision"])

    @property
    def name(self) -> str:
        """A short label for progress lines."""
        return str(self.ref["repo_id"])

    @property
    def pending(self) -> bool:
        """True until a stage ends the item (error, skipped) or the driver marks it ok."""
        return self.status == "pending"

    # -- state changes -------------------------------------------------------------------------
    def fail(self, stage: str, reason: str, *, retryable: bool = False) -> None:
        """End this item as an error of `stage`."""
        self.status, self.error_stage, self.error, self.retryable = (
            "error",
            stage,
            reason,
            retryable,
        )

    def skip(self, stage: str, reason: str) -> None:
        """End this item as deliberately not scanned (e.g. refused by the pull policy)."""
        self.status, self.error_stage, self.error = "skipped", stage, reason

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the block to `timings[stage]`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    # -- serialisation -------------------------------------------------------------------------
    def to_json(self) -> str:
        """Compact JSON (the stage batches' `item` column)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ScanItem:
        """Inverse of `to_json`; unknown fields are errors."""
        data = json.loads(text)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ScanItem fields: {sorted(unknown)}")
        return cls(**data)


def items_from_batch(batch: Mapping[str, Sequence[Any]]) -> list[ScanItem]:
    """A stage batch (a mapping with an `item` column of JSON strings) -> items."""
    if "item" not in batch:
        raise ValueError(f"a scan batch needs an `item` column; got {sorted(batch)}")
    return [ScanItem.from_json(str(text)) for text in batch["item"]]


def batch_from_items(items: Sequence[ScanItem]) -> dict[str, list[str]]:
    """Items -> a stage batch."""
    return {"item": [item.to_json() for item in items]}
