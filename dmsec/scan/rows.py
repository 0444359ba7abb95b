"""Finished `ScanItem`s -> rows of the result tables (`dmsec.results.schema`), images as PNG bytes.

Runs where the results are written (the scan's driver): it reads the staged PNG files the stages
left and puts their bytes into the rows, so the tables are complete on their own.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image

from dmsec.results.schema import to_table
from dmsec.scan.records import ScanItem, utc_now


def _time(text: str | None) -> datetime:
    return datetime.fromisoformat(text or utc_now())


def _png(path: str | None) -> bytes | None:
    if not path:
        return None
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


def checkpoint_row(item: ScanItem) -> dict[str, Any]:
    """The `checkpoints` row of one finished item."""
    ref = item.ref
    sims = [m["similarity"] for m in item.matches]
    higher = not item.matches or item.matches[0]["metric"] != "hamming"
    scores = [m["cgidm_score"] for m in item.matches if m.get("cgidm_score") is not None]
    return {
        "scan_id": item.scan_id,
        "source": ref["source"],
        "repo_id": ref["repo_id"],
        "revision": ref["revision"],
        "kind": ref["kind"],
        "base_model": ref.get("base_model"),
        "url": ref.get("url"),
        "scan_config_hash": item.config_hash,
        "status": item.status,
        "error_stage": item.error_stage,
        "error": item.error,
        "retryable": bool(item.retryable),
        "n_samples": item.n_samples,
        "n_groups": item.n_groups,
        "n_candidates": len(item.candidates),
        "n_matches": len(item.matches),
        "n_artworks": len({m["artwork_id"] for m in item.matches}),
        "best_similarity": (max(sims) if higher else min(sims)) if sims else None,
        "best_cgidm_score": max(scores) if scores else None,
        **{
            f"{s}_s": float(item.timings.get(s, 0.0))
            for s in ("pull", "extract", "match", "authenticate")
        },  # fmt: skip
        "device": item.device,
        "started_at": _time(item.started_at),
        "finished_at": _time(item.finished_at),
        "ref_json": json.dumps(ref, sort_keys=True),
    }


def candidate_rows(item: ScanItem, method: str) -> list[dict[str, Any]]:
    """The `candidates` rows of one finished item (its kept FineXtract groups)."""
    rows = []
    for c in item.candidates:
        image = _png(c["image_path"])
        if image is None:
            continue
        with Image.open(Path(c["image_path"])) as im:
            width, height = im.size
        rows.append(
            {
                "candidate_id": c["candidate_id"],
                **_ref_columns(item),
                "rank": c["rank"],
                "group_size": c["group_size"],
                "score": c["score"],
                "sample_index": c["sample_index"],
                "seed": c["seed"],
                "method": method,
                "clustering_threshold": item.clustering_threshold,
                "image": image,
                "image_sha256": c["image_sha256"],
                "pdq": c.get("pdq"),
                "width": width,
                "height": height,
            }
        )
    return rows


def match_rows(item: ScanItem) -> list[dict[str, Any]]:
    """The `matches` rows of one finished item."""
    now = _time(item.finished_at)
    rows = []
    for m in item.matches:
        recovered = _png(m["recovered_path"])
        if recovered is None:
            continue
        rows.append(
            {
                "match_id": m["match_id"],
                "candidate_id": m["candidate_id"],
                **_ref_columns(item),
                "candidate_rank": m["candidate_rank"],
                "artwork_id": m["artwork_id"],
                "artwork_owner": m.get("artwork_owner"),
                "artwork_title": m.get("artwork_title"),
                "artwork_source_uri": m.get("artwork_source_uri"),
                "artwork_sha256": m.get("artwork_sha256"),
                "artwork_image": _png(m.get("artwork_path")),
                "sample_index": m["sample_index"],
                "seed": m["seed"],
                "recovered_image": recovered,
                "similarity": m["similarity"],
                "method": m["method"],
                "metric": m["metric"],
                "threshold": m["threshold"],
                "support": m["support"],
                "cgidm_status": m.get("cgidm_status") or "error",
                "cgidm_error": m.get("cgidm_error")
                or (
                    None
                    if m.get("cgidm_status")
                    else "not authenticated (the checkpoint failed first)"
                ),
                "cgidm_score": m.get("cgidm_score"),
                "cgidm_masked_score": m.get("cgidm_masked_score"),
                "cgidm_baseline_gap": m.get("cgidm_baseline_gap"),
                "cgidm_steps": m.get("cgidm_steps"),
                "evidence_image": _png(m.get("evidence_path")),
                "matched_at": now,
            }
        )
    return rows


def _ref_columns(item: ScanItem) -> dict[str, str]:
    return {
        "scan_id": item.scan_id,
        "source": item.ref["source"],
        "repo_id": item.ref["repo_id"],
        "revision": item.ref["revision"],
    }


def part_tables(items: list[ScanItem], method: str) -> dict[str, pa.Table]:
    """The three result tables for a batch of finished items."""
    return {
        "checkpoints": to_table("checkpoints", [checkpoint_row(it) for it in items]),
        "candidates": to_table(
            "candidates", [r for it in items for r in candidate_rows(it, method)]
        ),  # fmt: skip
        "matches": to_table("matches", [r for it in items for r in match_rows(it)]),
    }
