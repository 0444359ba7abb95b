"""Progress lines while a scan runs and the summary table at its end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dmsec.scan.records import STAGES, ScanItem


def progress_line(done: int, total: int, item: ScanItem) -> str:
    """One line per finished checkpoint: position, status, name, findings, time per stage."""
    times = " ".join(f"{s} {item.timings[s]:.1f}s" for s in STAGES if s in item.timings)
    found = f"{len(item.candidates)} candidates, {len(item.matches)} matches"
    why = f"  [{item.error_stage}: {item.error}]" if item.error else ""
    return f"[{done}/{total}] {item.status:<7} {item.name:<28} {found}  ({times}){why}"


@dataclass
class ScanSummary:
    """What one scan did: per-checkpoint lines, counts, rows written, where the report is."""

    scan_id: str
    out: str
    listed: int = 0
    already_scanned: int = 0
    wall_s: float = 0.0
    report: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

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
            }
        )

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
            if c["error"]:
                lines.append(f"    {c['error'][:110]}")
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "nothing new"
        lines.append("-" * len(head))
        lines.append(f"scan {self.scan_id}: {counts}; {self.already_scanned} of {self.listed} listed were already scanned; {self.wall_s:.0f} s")  # fmt: skip
        rows = ", ".join(f"{n} {t}" for t, n in self.rows.items()) or "no rows"
        lines.append(f"results: {self.out} ({rows} written)")
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)
