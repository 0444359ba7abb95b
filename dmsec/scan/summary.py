"""Progress lines while a scan runs, the summary table at its end and its JSON for schedulers.

`ScanSummary.to_json()` is what `dmsec scan --summary-json PATH` writes (and every scan keeps as
`scans/<scan_id>/summary.json`): counts, the new findings, the errors, durations, what each
checkpoint's extraction ran with (space, w, k, the condition and where it came from) and where
the results are. `exit_code(fail_on)` is the opt-in exit status for schedulers (`FAIL_ON`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dmsec.scan.records import STAGES, ScanItem

#: `dmsec scan --fail-on X`: the exit status when X happened (both: 5); 0 otherwise
FAIL_ON = {"new-findings": 3, "errors": 4}


def what_to_do(checkpoint: dict[str, Any]) -> str:
    """The next step for a checkpoint that ended in an error."""
    if checkpoint.get("retryable"):
        return "nothing: the next scan retries it (the hub, network or memory failed)"
    return (
        "look at the checkpoint (`error` says why); it is not retried at this revision and "
        "config: fix the file or the config, or accept the error row"
    )


def progress_line(done: int, total: int, item: ScanItem) -> str:
    """One line per finished checkpoint: position, status, name, findings, time per stage."""
    times = " ".join(f"{s} {item.timings[s]:.1f}s" for s in STAGES if s in item.timings)
    found = f"{len(item.candidates)} candidates, {len(item.matches)} matches"
    why = f"  [{item.error_stage}: {item.error}]" if item.error else ""
    if item.status == "error":
        why += " retried next scan" if item.retryable else " not retried: see the summary"
    return f"[{done}/{total}] {item.status:<7} {item.name:<28} {found}  ({times}){why}"


@dataclass
class ScanSummary:
    """What one scan did: per-checkpoint lines, counts, rows written, where the report is."""

    scan_id: str
    out: str
    listed: int = 0
    already_scanned: int = 0
    listing_error: str | None = None  # a listing page failed: the listing is partial
    wall_s: float = 0.0
    report: str | None = None
    started_at: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  # `findings` rows, new first

    def add(self, item: ScanItem) -> None:
        """Record one finished item, as its `checkpoints` row reports it (the best similarity
        under the match metric: the lowest Hamming distance for PDQ, the highest cosine else)."""
        row = item.to_row()
        self.checkpoints.append(
            {
                "repo_id": row["repo_id"],
                "kind": row["kind"],
                "status": row["status"],
                "candidates": row["n_candidates"],
                "matches": row["n_matches"],
                "artworks": row["n_artworks"],
                "best_similarity": row["best_similarity"],
                "best_cgidm": row["best_cgidm_score"],
                "seconds": sum(item.timings.values()),
                "timings": dict(item.timings),
                "error": item.error,
                "error_stage": item.error_stage,
                "retryable": bool(item.retryable),
                "extract": dict(item.extract_settings),
            }
        )

    def errors(self) -> list[dict[str, Any]]:
        """The checkpoints of this scan that ended in an error, with what to do about each."""
        return [{"repo_id": c["repo_id"], "stage": c["error_stage"], "error": c["error"],
                 "retryable": c["retryable"], "what_to_do": what_to_do(c)}
                for c in self.checkpoints if c["status"] == "error"]  # fmt: skip

    def new_findings(self) -> list[dict[str, Any]]:
        """Findings first seen by this scan (the `findings` rows whose `new` is true)."""
        return [f for f in self.findings if f["new"]]

    def findings_counts(self) -> dict[str, Any]:
        """Findings of the results location: total, new, untriaged, per confidence, per decision."""
        return {
            "total": len(self.findings),
            "new": len(self.new_findings()),
            "untriaged": sum(f["triage_status"] is None for f in self.findings),
            "confidence": dict(Counter(f["confidence"] for f in self.findings)),
            "triage": dict(Counter(f["triage_status"] or "untriaged" for f in self.findings)),
        }

    def to_json(self) -> str:
        """The summary for schedulers (`--summary-json`)."""
        keep = ("finding_id", "confidence", "evidence", "repo_id", "revision", "url", "uploader",
                "artwork_id", "artwork_title", "artwork_owner", "best_similarity", "support",
                "cgidm_score", "triage_status")  # fmt: skip
        data = {
            "scan_id": self.scan_id, "results": self.out, "report": self.report,
            "started_at": self.started_at, "wall_s": round(self.wall_s, 2),
            "listed": self.listed, "already_scanned": self.already_scanned,
            "listing": {"partial": self.listing_error is not None, "error": self.listing_error},
            "checkpoints": self.counts(), "rows": self.rows, "findings": self.findings_counts(),
            "new_findings": [{k: f[k] for k in keep} for f in self.new_findings()],
            "errors": self.errors(),
            "extractions": [{"repo_id": c["repo_id"], **c["extract"]} for c in self.checkpoints if c["extract"]],
            "stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds().items()},
        }  # fmt: skip
        return json.dumps(data, indent=2, default=str)

    def exit_code(self, fail_on: tuple[str, ...] | list[str] = ()) -> int:
        """0, or (only for what `fail_on` names) 3: new findings not dismissed, 4: checkpoint
        errors, 5: both (see `FAIL_ON`)."""
        unknown = set(fail_on) - set(FAIL_ON)
        if unknown:
            raise ValueError(f"`fail_on` must be among {tuple(FAIL_ON)}; got {sorted(unknown)}")
        new = "new-findings" in fail_on and any(f["triage_status"] != "dismissed" for f in self.new_findings())  # fmt: skip
        errors = "errors" in fail_on and bool(self.errors())
        return 5 if new and errors else 3 if new else 4 if errors else 0

    def counts(self) -> dict[str, int]:
        """Checkpoints per status."""
        return dict(Counter(c["status"] for c in self.checkpoints))

    def stage_seconds(self) -> dict[str, float]:
        """Total seconds per stage over all checkpoints (workers' time, not wall time)."""
        return {s: sum(c["timings"].get(s, 0.0) for c in self.checkpoints) for s in STAGES}

    def table(self) -> str:
        """The summary table printed at the end of a scan."""
        head = f"{'checkpoint':<30}{'kind':<6}{'status':<9}{'cand':>5}{'match':>6}{'art':>4}{'best sim':>10}{'cgi-dm':>8}{'time':>8}"  # fmt: skip
        lines = [head, "-" * len(head)]
        for c in sorted(self.checkpoints, key=lambda c: c["repo_id"]):
            sim = f"{c['best_similarity']:.4f}" if c["best_similarity"] is not None else "-"
            cgi = f"{c['best_cgidm']:.3f}" if c["best_cgidm"] is not None else "-"
            lines.append(f"{c['repo_id'][:29]:<30}{c['kind'] or '':<6}{c['status']:<9}{c['candidates']:>5}{c['matches']:>6}{c['artworks']:>4}{sim:>10}{cgi:>8}{c['seconds']:>7.1f}s")  # fmt: skip
            if c["error"] and c["status"] == "error":
                lines.append(f"    {c['error'][:110]}")
                lines.append(f"    what to do: {what_to_do(c)}")
            elif c["error"]:
                lines.append(f"    {c['error'][:110]} (deliberately not scanned)")
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "nothing new"
        lines.append("-" * len(head))
        lines.append(f"scan {self.scan_id}: {counts}; {self.already_scanned} of {self.listed} listed were already scanned; {self.wall_s:.0f} s")  # fmt: skip
        if self.listing_error is not None:
            lines.append(f"listing PARTIAL: {self.listing_error[:110]}; the rest is listed again next scan")  # fmt: skip
        rows = ", ".join(f"{n} {t}" for t, n in self.rows.items()) or "no rows"
        lines.append(f"results: {self.out} ({rows} written)")
        lines.extend(self.findings_lines())
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)

    def findings_lines(self, limit: int = 20) -> list[str]:
        """The findings part of the summary: counts, then the new findings (at most `limit`)."""
        if not self.findings:
            return ["findings: none"]
        n = self.findings_counts()
        conf = ", ".join(f"{n['confidence'].get(c, 0)} {c}" for c in ("high", "medium", "low"))
        lines = [f"findings: {n['total']} ({n['new']} new, {n['untriaged']} untriaged; confidence {conf})"]  # fmt: skip
        new = self.new_findings()
        for f in new[:limit]:
            lines.append(f"  NEW {f['finding_id']} {f['confidence']:<6} {f['repo_id'][:28]:<28} -> {str(f['artwork_title'])[:24]:<24} sim {f['best_similarity']:.4f} support {f['support']}")  # fmt: skip
        if len(new) > limit:
            lines.append(f"  ... and {len(new) - limit} more new: dmsec query \"SELECT * FROM findings WHERE new\"")  # fmt: skip
        if new:
            lines.append(f"  triage with: dmsec triage FINDING_ID --status confirmed|dismissed|escalated --note TEXT --results {self.out}")  # fmt: skip
        return lines
