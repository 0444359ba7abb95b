"""How a scan reports progress on stdout: plain lines for people, or JSON lines for log shippers.

    log = scan_log("json", scan_id, echo)       # `dmsec scan --log-format json`
    log.message("resolving source ...")         # {"scan_id", "stage": "scan", "status": "info", "message"}
    log.checkpoint(3, 10, item)                 # one object per stage the checkpoint went through
    log.summary(summary)                        # {"scan_id", "stage": "summary", "status", "seconds", ...}

`text` (the default) prints what the scan always printed: a line per message and per finished
checkpoint (`progress_line`), then the summary table. `json` prints one JSON object per line and
nothing else on stdout; a checkpoint gives one object per stage it went through: scan id, source,
checkpoint (repo id), revision, stage, status ("ok" for a stage it passed; the item's status and
error for the stage that ended it) and seconds. Problems logged by the stages still go to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from dmsec.plugins import Registry
from dmsec.scan.records import STAGES, ScanItem
from dmsec.scan.summary import ScanSummary, progress_line

Echo = Callable[[str], None]


class ScanLog:
    """Plain lines (`text`); see the module docstring."""

    name: ClassVar[str] = "text"

    def __init__(self, scan_id: str, echo: Echo = print) -> None:
        self.scan_id, self.echo = scan_id, echo

    def message(self, text: str) -> None:
        """A line about the scan as a whole (listing, recovery, a zoo trained on first use)."""
        self.echo(text)

    def checkpoint(self, done: int, total: int, item: ScanItem) -> None:
        """One finished checkpoint."""
        self.echo(progress_line(done, total, item))

    def summary(self, summary: ScanSummary) -> None:
        """The end of the scan."""
        self.echo("")
        self.echo(summary.table())


class JsonScanLog(ScanLog):
    """One JSON object per line (`json`); see the module docstring."""

    name: ClassVar[str] = "json"

    def _emit(self, **fields: Any) -> None:
        self.echo(json.dumps({"scan_id": self.scan_id, **fields}, default=str, separators=(",", ":")))  # fmt: skip

    def message(self, text: str) -> None:
        self._emit(stage="scan", status="info", message=text)

    def checkpoint(self, done: int, total: int, item: ScanItem) -> None:
        for record in stage_records(item):
            self._emit(**record, done=done, total=total)

    def summary(self, summary: ScanSummary) -> None:
        counts = summary.findings_counts()
        self._emit(stage="summary", status="finished", seconds=round(summary.wall_s, 3),
                   checkpoints=summary.counts(), listed=summary.listed,
                   already_scanned=summary.already_scanned, rows=summary.rows,
                   partial_listing=summary.listing_error is not None,
                   findings=counts["total"], new_findings=counts["new"],
                   errors=len(summary.errors()), results=summary.out, report=summary.report)  # fmt: skip


def stage_records(item: ScanItem) -> list[dict[str, Any]]:
    """One record per stage `item` went through, in stage order: source, checkpoint, revision,
    stage, status, seconds (and the error of the stage that ended it)."""
    records = []
    for stage in STAGES:
        if stage not in item.timings and stage != item.error_stage:
            continue
        ended_here = stage == item.error_stage
        record: dict[str, Any] = {"source": item.ref["source"], "checkpoint": item.name,
                                  "revision": item.ref["revision"], "stage": stage,
                                  "status": item.status if ended_here else "ok",
                                  "seconds": round(item.timings.get(stage, 0.0), 3)}  # fmt: skip
        if ended_here:
            record["error"] = item.error
            record["retryable"] = bool(item.retryable)
        records.append(record)
    return records


LOG_FORMATS: Registry[ScanLog] = Registry("log format")
LOG_FORMATS.register(ScanLog)
LOG_FORMATS.register(JsonScanLog)


def scan_log(log_format: str, scan_id: str, echo: Echo = print) -> ScanLog:
    """The scan log `log_format` names ("text" or "json")."""
    return LOG_FORMATS.get(log_format)(scan_id, echo)
