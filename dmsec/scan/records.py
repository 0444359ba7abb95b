"""`ScanItem`: one checkpoint's state as it flows through the scan's stages, and its rows.

Stages exchange one column, `item`, holding each checkpoint's `ScanItem` as JSON: a stable schema
for Ray Data whatever a stage adds, and only file paths for images (generations, evidence, the
protected artwork), never pixels. What the stages find are typed records (`dmsec.scan.hits`:
`Group`, `Candidate`, `Match`). Status moves from "pending" to "ok", "skipped" or "error"; a
stage leaves any item that is no longer pending untouched, so a failure anywhere is carried to the
end and becomes that checkpoint's row. `part_tables` turns finished items into the result tables
(`dmsec.results.schema`), `security` included (the scanners' verdicts on its files).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from dmsec.errors import DmsecError
from dmsec.results.schema import to_table
from dmsec.scan.hits import Candidate, Group, Match, best_cgidm_score, best_similarity

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
    extract_method: str | None = None  # the extractor's name
    extract_seed: int | None = None  # generation i started from generation_seed(this, i)
    # what the extraction ran with: clustering space, w, k, the condition (prompt or class) and
    # where it came from ("card", "config", or None for ∅), and `chosen_from_model`: the
    # settings the config left null, chosen from the checkpoint's model, with why
    extract_settings: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 0
    n_groups: int | None = None
    clustering_threshold: float | None = None
    groups: list[Group] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    security: list[dict[str, Any]] = field(default_factory=list)  # `SecurityVerdict.to_dict()`s
    allow_pickle: bool = False  # the pull verified this checkpoint's pickles (policy opt-in)
    prompt: str | None = None  # the condition text FineXtract used (None: ∅ or a class)
    prompt_source: str | None = None  # where it came from (`dmsec.models.prompts`)
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
        data["groups"] = [Group(**g) for g in data.get("groups", [])]
        data["candidates"] = [Candidate(**c) for c in data.get("candidates", [])]
        data["matches"] = [Match(**m) for m in data.get("matches", [])]
        return cls(**data)

    # -- rows ----------------------------------------------------------------------------------
    def ref_columns(self) -> dict[str, str]:
        """scan_id, source, repo_id, revision: the columns every table starts with."""
        return {"scan_id": self.scan_id, "source": self.ref["source"],
                "repo_id": self.ref["repo_id"], "revision": self.ref["revision"]}  # fmt: skip

    def to_row(self) -> dict[str, Any]:
        """The `checkpoints` row of this finished item."""
        ref = self.ref
        return {**self.ref_columns(), "kind": ref["kind"], "base_model": ref.get("base_model"),
                "url": ref.get("url"), "prompt": self.prompt, "prompt_source": self.prompt_source,
                "scan_config_hash": self.config_hash,
                "status": self.status, "error_stage": self.error_stage, "error": self.error,
                "retryable": bool(self.retryable), "n_samples": self.n_samples,
                "n_groups": self.n_groups, "n_candidates": len(self.candidates),
                "n_matches": len(self.matches),
                "n_artworks": len({m.artwork_id for m in self.matches}),
                "best_similarity": best_similarity(self.matches),
                "best_cgidm_score": best_cgidm_score(self.matches),
                **{f"{s}_s": float(self.timings.get(s, 0.0)) for s in STAGES},
                "device": self.device, "started_at": _time(self.started_at),
                "finished_at": _time(self.finished_at),
                "ref_json": json.dumps(ref, sort_keys=True)}  # fmt: skip

    def candidate_rows(self) -> list[dict[str, Any]]:
        """The `candidates` rows of this finished item (its kept groups)."""
        rows = (c.to_row(self.ref_columns(), self.extract_method or "", self.clustering_threshold)
                for c in self.candidates)  # fmt: skip
        return [r for r in rows if r is not None]

    def security_rows(self) -> list[dict[str, Any]]:
        """The `security` rows of this finished item (scanner verdicts on its files)."""
        found = _time(self.finished_at)
        return [{**self.ref_columns(), "file": v["file"], "scanner": v["scanner"],
                 "scanner_version": v["scanner_version"], "verdict": v["verdict"],
                 "globals": list(v["globals"]), "detail": v["detail"], "found_at": found}
                for v in self.security]  # fmt: skip

    def match_rows(self) -> list[dict[str, Any]]:
        """The `matches` rows of this finished item."""
        rows = (m.to_row(self.ref_columns(), _time(self.finished_at)) for m in self.matches)
        return [r for r in rows if r is not None]


def _time(text: str | None) -> datetime:
    return datetime.fromisoformat(text or utc_now())


def part_tables(items: Sequence[ScanItem]) -> dict[str, pa.Table]:
    """The result tables for a batch of finished items."""
    return {
        "checkpoints": to_table("checkpoints", [it.to_row() for it in items]),
        "candidates": to_table("candidates", [r for it in items for r in it.candidate_rows()]),
        "matches": to_table("matches", [r for it in items for r in it.match_rows()]),
        "security": to_table("security", [r for it in items for r in it.security_rows()]),
    }


def items_from_batch(batch: Mapping[str, Sequence[Any]]) -> list[ScanItem]:
    """A stage batch (a mapping with an `item` column of JSON strings) -> items."""
    if "item" not in batch:
        raise ValueError(f"a scan batch needs an `item` column; got {sorted(batch)}")
    return [ScanItem.from_json(str(text)) for text in batch["item"]]


def batch_from_items(items: Sequence[ScanItem]) -> dict[str, list[str]]:
    """Items -> a stage batch."""
    return {"item": [item.to_json() for item in items]}
