"""Synthetic result rows that fit the schemas, with real PNG images (made in code, seeded)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import torch

from dmsec.images import png_bytes
from dmsec.results.schema import to_table

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SCAN_A = "20260102T030405Z-aaaaaa"
SCAN_B = "20260103T030405Z-bbbbbb"


def png(seed: int, size: int = 16) -> bytes:
    """A small grey PNG."""
    return png_bytes(torch.rand(1, size, size, generator=torch.Generator().manual_seed(seed)))


def checkpoint_row(scan_id: str, repo_id: str, **extra: Any) -> dict[str, Any]:
    ref = {"source": "local", "repo_id": repo_id, "revision": "r1", "kind": "full"}
    row = {
        "scan_id": scan_id, "source": "local", "repo_id": repo_id, "revision": "r1",
        "kind": "full", "base_model": "base", "url": f"file:///hub/{repo_id}",
        "prompt": "a sks emoji", "prompt_source": "card",
        "scan_config_hash": "h1", "status": "ok", "error_stage": None, "error": None,
        "retryable": False, "n_samples": 64, "n_groups": 5, "n_candidates": 1, "n_matches": 1,
        "n_artworks": 1, "best_similarity": 0.995, "best_cgidm_score": 0.7, "pull_s": 0.1,
        "extract_s": 2.0, "match_s": 0.1, "authenticate_s": 1.0, "device": "cpu",
        "started_at": NOW, "finished_at": NOW, "ref_json": json.dumps(ref),
    }  # fmt: skip
    row.update(extra)
    return row


def candidate_row(scan_id: str, repo_id: str, cid: str, seed: int = 0) -> dict[str, Any]:
    return {
        "candidate_id": cid, "scan_id": scan_id, "source": "local", "repo_id": repo_id,
        "revision": "r1", "rank": 0, "group_size": 12, "score": 0.2, "sample_index": 3,
        "seed": 3, "method": "finextract", "clustering_threshold": 0.98, "image": png(seed),
        "image_sha256": "0" * 64, "pdq": None, "width": 16, "height": 16,
    }  # fmt: skip


def match_row(scan_id: str, repo_id: str, cid: str, mid: str, **extra: Any) -> dict[str, Any]:
    row = {
        "match_id": mid, "candidate_id": cid, "scan_id": scan_id, "source": "local",
        "repo_id": repo_id, "revision": "r1", "candidate_rank": 0, "artwork_id": 7,
        "artwork_owner": "Studio X", "artwork_title": "Seven", "artwork_source_uri": "/a/7.png",
        "artwork_sha256": "1" * 64, "artwork_image": png(100), "sample_index": 3, "seed": 3,
        "recovered_image": png(101), "similarity": 0.995, "method": "zoo",
        "metric": "inner_product", "threshold": 0.99, "support": 4, "cgidm_status": "ok",
        "cgidm_error": None, "cgidm_score": 0.7, "cgidm_masked_score": 0.6,
        "cgidm_baseline_gap": 0.05, "cgidm_steps": 50, "evidence_image": png(102),
        "matched_at": NOW,
    }  # fmt: skip
    row.update(extra)
    return row


def part(scan_id: str, repos: list[str], matches_per_repo: int = 1) -> dict[str, Any]:
    """Tables for one part: each repo has one candidate and `matches_per_repo` matches."""
    ckpts, cands, matches = [], [], []
    for i, repo in enumerate(repos):
        cid = f"c{scan_id[-4:]}{i:03d}"
        ckpts.append(checkpoint_row(scan_id, repo, n_matches=matches_per_repo))
        cands.append(candidate_row(scan_id, repo, cid, seed=i))
        for j in range(matches_per_repo):
            matches.append(
                match_row(scan_id, repo, cid, f"m{scan_id[-4:]}{i:03d}{j}", artwork_id=7 + j)
            )
    return {
        "checkpoints": to_table("checkpoints", ckpts),
        "candidates": to_table("candidates", cands),
        "matches": to_table("matches", matches),
    }
