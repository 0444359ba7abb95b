"""Findings: one row per (checkpoint revision, protected artwork), across every scan of a location.

An analyst works per finding, not per match: FineXtract may recover one artwork in several groups
of one checkpoint (several `matches` rows) and every rescan adds rows again. `derive_findings`
folds the `matches` and `checkpoints` tables, the scans' listings and the `triage` decisions into
one row per finding; `dmsec query` and `connect()` expose it as the view `findings`, and every
scan (and every `dmsec triage`) rewrites `findings/findings.parquet`, so pandas and pyarrow read
it like the other tables.

findings (one row per checkpoint revision x artwork; new first, then by confidence)
    finding_id: 16 hex digits of sha256(source|repo_id|revision|artwork_id) (stable over rescans)
    source, repo_id, revision, kind, base_model, url (the hub page), uploader, license: the ref
    artwork_id, artwork_owner, artwork_title, artwork_source_uri
    scan_id: the newest scan whose matches give the values below; best_match_id: its closest
    `matches` row (the images of the recovery, the artwork and the CGI-DM evidence)
    best_similarity, median_similarity: closest and median score of that scan's matches of the
    artwork (one per FineXtract group that hit it); method, metric, threshold
    n_groups: groups that hit it; support: generations that hit it (summed over those groups)
    cgidm_status, cgidm_score, cgidm_masked_score, cgidm_baseline_gap, cgidm_error: the verifier
    evidence: the kinds of evidence present (see below); confidence: "high" | "medium" | "low"
    first_seen_scan, first_seen_at: the first scan of this location that matched it
    last_seen_scan: the newest scan that still had it (it matched it, or listed the revision again
    while the newest scan of that revision still matched it; a revision gone from the hub or
    rescanned without the match stops advancing); n_scans: scans whose matches include it
    new: true when first seen by the newest scan of this location
    triage_status (null: untriaged), triage_note, triage_by, triage_at: the latest decision

    margin: how much closer the best recovery is to this artwork than to the next registered work
    its group matched (to the threshold when it matched no other); band_reason: the signs, with
    their values, that placed the finding in its band and what high would have needed

Evidence and confidence: `dmsec.results.confidence` (signs `repeated`, `distinct`, `cgi-dm`,
`loss-gap`; the high band always needs a membership sign, `cgi-dm` or `loss-gap`). `evidence` is
"match" then the signs; `derive_findings` applies `DEFAULT_RULE` unless given another rule.
Its precision per band on the art zoo's reporting split (`benchmarks/scan_quality.py`, scan
defaults, 2026-12-05, commit 9780897): high 0.97 (70 of 72), medium 0.39 (14 of 36), low no
finding; recall 0.87 of the heavy fine-tunes' training works (docs/findings.md).
What the signs are worth on non-members: `benchmarks/authentication.py` (verifier signs on
members vs same-set hold-outs) and `benchmarks/scan_quality.py` (every sign and band on true vs
false findings against a registry of every work of the artists involved).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dmsec.results.confidence import CONFIDENCE, DEFAULT_RULE, ConfidenceRule, FindingEvidence
from dmsec.results.store import ResultsStore, atomic_write_parquet
from dmsec.results.triage import latest_decisions, read_triage

FINDINGS_FILE = Path("findings") / "findings.parquet"
LISTED_FILE = "listed.parquet"
_UTC = pa.timestamp("us", tz="UTC")

FINDINGS = pa.schema(
    [
        pa.field("finding_id", pa.string(), nullable=False),
        pa.field("new", pa.bool_(), nullable=False),
        pa.field("confidence", pa.string(), nullable=False),
        pa.field("evidence", pa.list_(pa.field("element", pa.string())), nullable=False),
        pa.field("band_reason", pa.string(), nullable=False),
        pa.field("triage_status", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("repo_id", pa.string(), nullable=False),
        pa.field("revision", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("base_model", pa.string()),
        pa.field("url", pa.string()),
        pa.field("uploader", pa.string()),
        pa.field("license", pa.string()),
        pa.field("artwork_id", pa.int64(), nullable=False),
        pa.field("artwork_owner", pa.string()),
        pa.field("artwork_title", pa.string()),
        pa.field("artwork_source_uri", pa.string()),
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("best_match_id", pa.string(), nullable=False),
        pa.field("best_similarity", pa.float64(), nullable=False),
        pa.field("median_similarity", pa.float64(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("n_groups", pa.int32(), nullable=False),
        pa.field("support", pa.int32(), nullable=False),
        pa.field("margin", pa.float64(), nullable=False),
        pa.field("cgidm_status", pa.string(), nullable=False),
        pa.field("cgidm_score", pa.float64()),
        pa.field("cgidm_masked_score", pa.float64()),
        pa.field("cgidm_baseline_gap", pa.float64()),
        pa.field("cgidm_error", pa.string()),
        pa.field("first_seen_scan", pa.string(), nullable=False),
        pa.field("first_seen_at", _UTC, nullable=False),
        pa.field("last_seen_scan", pa.string(), nullable=False),
        pa.field("n_scans", pa.int32(), nullable=False),
        pa.field("triage_note", pa.string()),
        pa.field("triage_by", pa.string()),
        pa.field("triage_at", _UTC),
    ],
    metadata={b"dmsec.schema": b"findings/2"},
)
LISTED = pa.schema([pa.field(n, pa.string(), nullable=False) for n in ("source", "repo_id", "revision")])  # fmt: skip

_MATCH_COLUMNS = ["match_id", "candidate_id", "scan_id", "source", "repo_id", "revision", "artwork_id",
                  "artwork_owner", "artwork_title", "artwork_source_uri", "similarity", "method",
                  "metric", "threshold", "support", "cgidm_status", "cgidm_error", "cgidm_score",
                  "cgidm_masked_score", "cgidm_baseline_gap", "matched_at"]  # fmt: skip
_CKPT_COLUMNS = ["scan_id", "source", "repo_id", "revision", "kind", "base_model", "url", "status",
                 "n_matches", "ref_json"]  # fmt: skip

RevKey = tuple[str, str, str]


def finding_id(source: str, repo_id: str, revision: str, artwork_id: int) -> str:
    """The stable id of a finding: 16 hex digits of sha256(source|repo_id|revision|artwork_id)."""
    return hashlib.sha256(f"{source}|{repo_id}|{revision}|{int(artwork_id)}".encode()).hexdigest()[:16]  # fmt: skip


def evidence_kinds(support: int, cgidm_status: str | None, score: float | None,
                   masked: float | None, gap: float | None) -> list[str]:  # fmt: skip
    """The kinds of evidence a finding has under `DEFAULT_RULE` (no margin: `distinct` off)."""
    return DEFAULT_RULE.assess(FindingEvidence(support, None, cgidm_status, score, masked, gap)).evidence  # fmt: skip


def confidence_of(kinds: Iterable[str]) -> str:
    """The band `DEFAULT_RULE` gives these evidence kinds."""
    return DEFAULT_RULE.band([k for k in kinds if k != "match"])


def write_listed(store: ResultsStore, scan_id: str, keys: Iterable[RevKey]) -> Path:
    """Record which checkpoint revisions scan `scan_id` listed (`scans/<id>/listed.parquet`)."""
    rows = [dict(zip(LISTED.names, k, strict=True)) for k in sorted(set(keys))]
    path = store.scan_dir(scan_id) / LISTED_FILE
    atomic_write_parquet(path, pa.Table.from_pylist(rows, schema=LISTED))
    return path


def _read(store: ResultsStore, table: str, columns: list[str]) -> list[dict[str, Any]]:
    return [r for p in store.committed_files(table) for r in pq.read_table(p, columns=columns).to_pylist()]  # fmt: skip


def _listings(store: ResultsStore) -> dict[str, set[RevKey]]:
    """scan id -> the revisions it listed (scans before listings were recorded: absent)."""
    out = {}
    for path in sorted((store.root / "scans").glob(f"*/{LISTED_FILE}")):
        out[path.parent.name] = {(r["source"], r["repo_id"], r["revision"]) for r in pq.read_table(path).to_pylist()}  # fmt: skip
    return out


def _ref_fields(ref_json: str | None, source: str, repo_id: str) -> tuple[str | None, str | None]:
    """(uploader, license) from a ref: `extra` uploader/creator/author, else the owner part of an
    "owner/name" repo id on Hugging Face."""
    ref = json.loads(ref_json) if ref_json else {}
    extra = ref.get("extra") or {}
    uploader = extra.get("uploader") or extra.get("creator") or extra.get("author")
    if not uploader and source.startswith("hf") and "/" in repo_id:
        uploader = repo_id.split("/", 1)[0]
    return uploader or None, ref.get("license")


def _distance(metric: str, score: float) -> float:
    """A match score as a distance, lower is closer: a Hamming distance (PDQ) as is, a similarity
    negated (the rule of `dmsec.scan.hits.closer`, as a sort key)."""
    return score if metric == "hamming" else -score


def _closest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the closest match (lowest Hamming distance for PDQ, else highest score)."""
    return min(rows, key=lambda r: (_distance(r["metric"], r["similarity"]), r["match_id"]))


def _last_seen(first: str, matched: set[str], scanned: list[str], listed: list[str]) -> str:
    """The newest scan at or after `first` in which the finding still stood (module docstring)."""
    last = first
    for scan in sorted({*scanned, *listed}):
        if scan < first:
            continue
        before = [s for s in scanned if s <= scan]
        if before and before[-1] in matched:
            last = scan
    return last


def margin_of(best: dict[str, Any], others: Iterable[dict[str, Any]]) -> float:
    """How much closer `best` (a `matches` row) is to its artwork than its group is to any other
    registered work (`others`: that group's other matches), in the metric's own units; to the
    threshold when the group matched no other work."""
    nearest = min((_distance(m["metric"], m["similarity"]) for m in others if m["artwork_id"] != best["artwork_id"]),
                  default=_distance(best["metric"], best["threshold"]))  # fmt: skip
    return float(nearest - _distance(best["metric"], best["similarity"]))


def derive_findings(root: str | Path, rule: ConfidenceRule = DEFAULT_RULE) -> pa.Table:
    """The `findings` table of the local results folder `root` (see the module docstring), each
    finding placed in its band by `rule`.

    The newest scan (of the finished scan records and the scans with committed rows) decides
    which findings are new; a scan still running counts once it has committed rows.
    """
    store = ResultsStore(root)
    finished = [r["scan_id"] for r in store.scan_records() if r.get("status") == "finished"]
    matches = _read(store, "matches", _MATCH_COLUMNS)
    ckpts = _read(store, "checkpoints", _CKPT_COLUMNS)
    listings = _listings(store)
    decisions = latest_decisions(read_triage(store.root))
    every_scan = sorted({*finished, *(r["scan_id"] for r in ckpts)})
    newest = every_scan[-1] if every_scan else None
    by_finding: dict[tuple[str, str, str, int], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))  # fmt: skip
    for m in matches:
        by_finding[(m["source"], m["repo_id"], m["revision"], m["artwork_id"])][
            m["scan_id"]
        ].append(m)
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in matches:
        by_group[(m["scan_id"], m["candidate_id"])].append(m)
    ckpt_of = {(r["scan_id"], r["source"], r["repo_id"], r["revision"]): r for r in ckpts}
    scanned: dict[RevKey, list[str]] = defaultdict(list)
    for r in ckpts:  # scans that really looked (an error before matching proves nothing)
        if r["status"] == "ok" or r["n_matches"]:
            scanned[(r["source"], r["repo_id"], r["revision"])].append(r["scan_id"])
    rows = []
    for (source, repo_id, revision, artwork_id), per_scan in by_finding.items():
        rev = (source, repo_id, revision)
        seen = sorted(per_scan)
        first, current = seen[0], seen[-1]
        found = per_scan[current]
        best = _closest(found)
        ckpt = ckpt_of.get((current, *rev), {})
        uploader, license_ = _ref_fields(ckpt.get("ref_json"), source, repo_id)
        support = sum(int(m["support"]) for m in found)
        margin = margin_of(best, by_group[(current, best["candidate_id"])])
        assessed = rule.assess(FindingEvidence(support, margin, best["cgidm_status"], best["cgidm_score"],
                                               best["cgidm_masked_score"], best["cgidm_baseline_gap"]))  # fmt: skip
        fid = finding_id(source, repo_id, revision, artwork_id)
        decision = decisions.get(fid, {})
        listed = [s for s, keys in listings.items() if rev in keys]
        rows.append({
            "finding_id": fid, "new": first == newest, "confidence": assessed.confidence,
            "evidence": assessed.evidence, "band_reason": assessed.band_reason, "triage_status": decision.get("status"), "source": source,
            "repo_id": repo_id, "revision": revision, "kind": ckpt.get("kind"),
            "base_model": ckpt.get("base_model"), "url": ckpt.get("url"), "uploader": uploader,
            "license": license_, "artwork_id": int(artwork_id),
            "artwork_owner": best["artwork_owner"], "artwork_title": best["artwork_title"],
            "artwork_source_uri": best["artwork_source_uri"], "scan_id": current,
            "best_match_id": best["match_id"], "best_similarity": float(best["similarity"]),
            "median_similarity": float(statistics.median(m["similarity"] for m in found)),
            "method": best["method"], "metric": best["metric"], "threshold": best["threshold"],
            "n_groups": len(found), "support": support, "margin": margin, "cgidm_status": best["cgidm_status"],
            "cgidm_score": best["cgidm_score"], "cgidm_masked_score": best["cgidm_masked_score"],
            "cgidm_baseline_gap": best["cgidm_baseline_gap"], "cgidm_error": best["cgidm_error"],
            "first_seen_scan": first,
            "first_seen_at": min(m["matched_at"] for m in per_scan[first]),
            "last_seen_scan": _last_seen(first, set(seen), sorted(scanned[rev]), listed),
            "n_scans": len(seen), "triage_note": decision.get("note"),
            "triage_by": decision.get("decided_by"), "triage_at": decision.get("decided_at"),
        })  # fmt: skip
    rows.sort(key=finding_order)
    return pa.Table.from_pylist(rows, schema=FINDINGS)


def finding_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """New first, then untriaged, by confidence, closest match, checkpoint and artwork."""
    return (not row["new"], row["triage_status"] is not None, CONFIDENCE.index(row["confidence"]),
            _distance(row["metric"], row["best_similarity"]), row["repo_id"], row["artwork_id"])  # fmt: skip


def write_findings(root: str | Path, rule: ConfidenceRule = DEFAULT_RULE) -> tuple[pa.Table, Path]:  # fmt: skip
    """Derive the findings of `root` and write them to `<root>/findings/findings.parquet`."""
    table = derive_findings(root, rule)
    path = ResultsStore(root).root / FINDINGS_FILE
    atomic_write_parquet(path, table)
    return table, path
