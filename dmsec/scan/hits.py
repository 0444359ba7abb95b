"""What the scan finds in one checkpoint, as typed records that mirror the result tables.

`Group` is one FineXtract group (rank, size, share of generations, representative, its seed,
every member); `Candidate` a kept group's representative image (a `candidates` row); `Match` a
group x protected-artwork hit (a `matches` row), whose verifier evidence the authenticate stage
fills in. Images travel as file paths, never pixels; `to_row()` reads the staged PNG bytes into
the row (it runs where results are written, the scan's driver), so the tables stand on their own.

`closer(metric, a, b)` is the one rule for which of two match scores is the better: a Hamming
distance (PDQ) is better lower, a similarity higher. The match stage orders matches by it, and a
checkpoint's `best_similarity` (its row, the printed summary) is the best under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image


def closer(metric: str, a: float, b: float) -> bool:
    """Whether score `a` is a closer match than `b` under `metric`."""
    return a < b if metric == "hamming" else a > b


def read_png(path: str | None) -> bytes | None:
    """The bytes of a staged file, or None when there is none."""
    if not path:
        return None
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


@dataclass
class Group:
    """One FineXtract group of a checkpoint's generations, largest first (`rank` 0)."""

    rank: int
    size: int
    score: float  # share of all generations in the group
    representative: int  # generation index
    seed: int  # initial-noise seed of the representative
    members: list[int] = field(default_factory=list)  # generation indices, sorted


@dataclass
class Candidate:
    """A kept group's representative image; `to_row` is its `candidates` row."""

    candidate_id: str
    rank: int
    group_size: int
    score: float
    sample_index: int
    seed: int
    image_path: str
    image_sha256: str
    pdq: str | None = None

    def to_row(self, ref: Mapping[str, str], method: str, clustering_threshold: float | None) -> dict[str, Any] | None:  # fmt: skip
        """The row (`ref`: scan_id, source, repo_id, revision); None if the image is gone."""
        image = read_png(self.image_path)
        if image is None:
            return None
        with Image.open(Path(self.image_path)) as im:
            width, height = im.size
        return {"candidate_id": self.candidate_id, **ref, "rank": self.rank,
                "group_size": self.group_size, "score": self.score,
                "sample_index": self.sample_index, "seed": self.seed, "method": method,
                "clustering_threshold": clustering_threshold, "image": image,
                "image_sha256": self.image_sha256, "pdq": self.pdq, "width": width,
                "height": height}  # fmt: skip


@dataclass
class Match:
    """One (group, protected artwork) hit; `to_row` is its `matches` row.

    `similarity` is the best-matching generation's score under `metric`; `support` how many
    generations of the group hit the artwork. The verifier's evidence (`cgidm_*`, the evidence
    image) is filled in by the authenticate stage; `cgidm_status` stays None if it never ran.
    """

    match_id: str
    candidate_id: str
    candidate_rank: int
    artwork_id: int
    artwork_owner: str | None
    artwork_title: str | None
    artwork_source_uri: str | None
    artwork_sha256: str | None
    artwork_path: str | None  # the artwork staged as PNG; None when its source was unreadable
    sample_index: int
    seed: int
    recovered_path: str
    similarity: float
    method: str  # the embedder
    metric: str
    threshold: float
    support: int
    cgidm_status: str | None = None  # "ok" | "error" | "disabled"
    cgidm_error: str | None = None
    cgidm_score: float | None = None
    cgidm_masked_score: float | None = None
    cgidm_baseline_gap: float | None = None
    cgidm_steps: int | None = None
    evidence_path: str | None = None

    def to_row(self, ref: Mapping[str, str], matched_at: datetime) -> dict[str, Any] | None:
        """The row (`ref`: scan_id, source, repo_id, revision); None if the generation is gone."""
        recovered = read_png(self.recovered_path)
        if recovered is None:
            return None
        error = self.cgidm_error
        if self.cgidm_status is None and error is None:
            error = "not authenticated (the checkpoint failed first)"
        return {"match_id": self.match_id, "candidate_id": self.candidate_id, **ref,
                "candidate_rank": self.candidate_rank, "artwork_id": self.artwork_id,
                "artwork_owner": self.artwork_owner, "artwork_title": self.artwork_title,
                "artwork_source_uri": self.artwork_source_uri,
                "artwork_sha256": self.artwork_sha256, "artwork_image": read_png(self.artwork_path),
                "sample_index": self.sample_index, "seed": self.seed,
                "recovered_image": recovered, "similarity": self.similarity,
                "method": self.method, "metric": self.metric, "threshold": self.threshold,
                "support": self.support, "cgidm_status": self.cgidm_status or "error",
                "cgidm_error": error, "cgidm_score": self.cgidm_score,
                "cgidm_masked_score": self.cgidm_masked_score,
                "cgidm_baseline_gap": self.cgidm_baseline_gap, "cgidm_steps": self.cgidm_steps,
                "evidence_image": read_png(self.evidence_path), "matched_at": matched_at}  # fmt: skip


def best_similarity(matches: Sequence[Match]) -> float | None:
    """The closest match's score under its metric (`closer`), or None without matches."""
    best: float | None = None
    for m in matches:
        if best is None or closer(m.metric, m.similarity, best):
            best = m.similarity
    return best


def best_cgidm_score(matches: Sequence[Match]) -> float | None:
    """The highest CGI-DM score among the matches (higher = more likely a member), or None."""
    scores = [m.cgidm_score for m in matches if m.cgidm_score is not None]
    return max(scores) if scores else None
