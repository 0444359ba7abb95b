"""The scan's result tables: one versioned schema per table, in one place.

Layout under a results folder (Hive-style partitions by the scan's start date, UTC)::

    checkpoints/scan_date=2026-11-26/<scan_id>-p00000.parquet
    candidates/scan_date=2026-11-26/<scan_id>-p00000.parquet
    matches/scan_date=2026-11-26/<scan_id>-p00000.parquet
    security/scan_date=2026-11-26/<scan_id>-p00000.parquet   (only parts with verdicts)
    scans/<scan_id>/config.yaml  run.json      resolved config; versions, seeds, counts
    scans/<scan_id>/listed.parquet              the revisions the scan listed (source, repo_id,
                                                revision): a finding's last_seen follows them
    scans/<scan_id>/summary.json                the scan's summary (`dmsec scan --summary-json`)
    findings/findings.parquet                   derived: one row per revision x artwork
                                                (`dmsec.results.findings`), rewritten by every
                                                scan and triage
    triage/<time>-<id>.parquet                  analysts' decisions, one row per file
                                                (`dmsec.results.triage`)
    ledger.parquet                              what was scanned with which config (dmsec.hub)
    reports/<scan_id>.html                      the self-contained report

`scan_date` is the partition column: it lives in the folder name, not inside the files (pyarrow,
pandas and DuckDB with `hive_partitioning` add it back). Images are PNG bytes inside the tables,
so a results folder is complete on its own.

checkpoints (one row per checkpoint per scan)
    scan_id, source, repo_id, revision, kind, base_model, url: the ref
    prompt, prompt_source: the condition text FineXtract used (null: ∅, or a class id for a
        class-conditional model) and where it was found: card, readme, kohya, civitai, widget,
        none (nothing published: unconditional guidance), class (`dmsec.models.prompts`); null
        when the checkpoint never reached extraction
    scan_config_hash: hash of the settings that change results (the ledger's key)
    status: "ok" | "skipped" (refused by policy, e.g. pickle-only) | "error"
    error_stage, error: where and why it was skipped or failed; retryable: retried next run
    n_samples, n_groups, n_candidates, n_matches, n_artworks: counts
    best_similarity, best_cgidm_score: strongest match and its CGI-DM score (null: none)
    pull_s, extract_s, match_s, authenticate_s: seconds per stage; device; started_at, finished_at
    ref_json: the whole `CheckpointRef` as JSON (files, tags, license, ...)
candidates (FineXtract's recovered images kept: the top-k groups and every group that matched)
    candidate_id, scan_id, source, repo_id, revision, rank (0 = largest group), group_size,
    score (share of generations in the group), sample_index, seed, method, clustering_threshold,
    image (PNG), image_sha256, pdq (hex PDQ hash, null without pdqhash), width, height
matches (candidate x protected artwork, one row per (group, artwork))
    match_id, candidate_id, scan_id, source, repo_id, revision, candidate_rank, artwork_id,
    artwork_owner, artwork_title, artwork_source_uri, artwork_sha256, artwork_image (PNG, null if
    its source was unreadable), sample_index, seed, recovered_image (PNG of the best-matching
    generation), similarity, method (embedder), metric, threshold, support (generations of the
    group that hit the artwork), cgidm_status ("ok" | "error" | "disabled"), cgidm_error,
    cgidm_score, cgidm_masked_score, cgidm_baseline_gap, cgidm_steps, evidence_image (PNG),
    matched_at
security (one row per scanner verdict on a checkpoint's file: our pickle scan, the hub's own)
    scan_id, source, repo_id, revision, file (path within the checkpoint; "*" for the whole repo),
    scanner ("picklescan", "hf-hub", ...), scanner_version, verdict ("safe" | "unsafe" |
    "error"), globals (the `module.name` imports outside the allow-list, or the hub flagged),
    detail, found_at. An unsafe pickle also ends its checkpoint as an `error` row of the pull.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 2  # 2: checkpoints.prompt, prompt_source
TABLES = ("checkpoints", "candidates", "matches", "security")
#: tables every part has (`security` only where a scanner gave a verdict)
PART_TABLES = ("checkpoints", "candidates", "matches")
PARTITION = "scan_date"
_UTC = pa.timestamp("us", tz="UTC")


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    meta = {b"dmsec.schema": f"{name}/{SCHEMA_VERSION}".encode()}
    return pa.schema(fields, metadata=meta)


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_REF = [
    _f("scan_id", pa.string(), False),
    _f("source", pa.string(), False),
    _f("repo_id", pa.string(), False),
    _f("revision", pa.string(), False),
]

CHECKPOINTS = _schema(
    "checkpoints",
    [
        *_REF,
        _f("kind", pa.string(), False),
        _f("base_model", pa.string()),
        _f("url", pa.string()),
        _f("prompt", pa.string()),
        _f("prompt_source", pa.string()),
        _f("scan_config_hash", pa.string(), False),
        _f("status", pa.string(), False),
        _f("error_stage", pa.string()),
        _f("error", pa.string()),
        _f("retryable", pa.bool_(), False),
        _f("n_samples", pa.int32(), False),
        _f("n_groups", pa.int32()),
        _f("n_candidates", pa.int32(), False),
        _f("n_matches", pa.int32(), False),
        _f("n_artworks", pa.int32(), False),
        _f("best_similarity", pa.float64()),
        _f("best_cgidm_score", pa.float64()),
        _f("pull_s", pa.float64(), False),
        _f("extract_s", pa.float64(), False),
        _f("match_s", pa.float64(), False),
        _f("authenticate_s", pa.float64(), False),
        _f("device", pa.string()),
        _f("started_at", _UTC, False),
        _f("finished_at", _UTC, False),
        _f("ref_json", pa.string(), False),
    ],
)

CANDIDATES = _schema(
    "candidates",
    [
        _f("candidate_id", pa.string(), False),
        *_REF,
        _f("rank", pa.int32(), False),
        _f("group_size", pa.int32(), False),
        _f("score", pa.float64(), False),
        _f("sample_index", pa.int32(), False),
        _f("seed", pa.int64(), False),
        _f("method", pa.string(), False),
        _f("clustering_threshold", pa.float64()),
        _f("image", pa.binary(), False),
        _f("image_sha256", pa.string(), False),
        _f("pdq", pa.string()),
        _f("width", pa.int32(), False),
        _f("height", pa.int32(), False),
    ],
)

MATCHES = _schema(
    "matches",
    [
        _f("match_id", pa.string(), False),
        _f("candidate_id", pa.string(), False),
        *_REF,
        _f("candidate_rank", pa.int32(), False),
        _f("artwork_id", pa.int64(), False),
        _f("artwork_owner", pa.string()),
        _f("artwork_title", pa.string()),
        _f("artwork_source_uri", pa.string()),
        _f("artwork_sha256", pa.string()),
        _f("artwork_image", pa.binary()),
        _f("sample_index", pa.int32(), False),
        _f("seed", pa.int64(), False),
        _f("recovered_image", pa.binary(), False),
        _f("similarity", pa.float64(), False),
        _f("method", pa.string(), False),
        _f("metric", pa.string(), False),
        _f("threshold", pa.float64(), False),
        _f("support", pa.int32(), False),
        _f("cgidm_status", pa.string(), False),
        _f("cgidm_error", pa.string()),
        _f("cgidm_score", pa.float64()),
        _f("cgidm_masked_score", pa.float64()),
        _f("cgidm_baseline_gap", pa.float64()),
        _f("cgidm_steps", pa.int32()),
        _f("evidence_image", pa.binary()),
        _f("matched_at", _UTC, False),
    ],
)

SECURITY = _schema(
    "security",
    [
        *_REF,
        _f("file", pa.string(), False),
        _f("scanner", pa.string(), False),
        _f("scanner_version", pa.string(), False),
        _f("verdict", pa.string(), False),
        _f("globals", pa.list_(pa.string()), False),
        _f("detail", pa.string(), False),
        _f("found_at", _UTC, False),
    ],
)

SCHEMAS: dict[str, pa.Schema] = {
    "checkpoints": CHECKPOINTS,
    "candidates": CANDIDATES,
    "matches": MATCHES,
    "security": SECURITY,
}


class SchemaError(ValueError):
    """Rows or a table do not fit a result table's schema; the message names the column."""


def schema_of(table: str) -> pa.Schema:
    """The schema of result table `table`."""
    if table not in SCHEMAS:
        raise SchemaError(f"`table` must be one of {TABLES}; got {table!r}")
    return SCHEMAS[table]


def to_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) as an Arrow table of `table`'s schema; missing or extra columns are errors."""
    schema = schema_of(table)
    names = set(schema.names)
    for i, row in enumerate(rows):
        extra, missing = set(row) - names, names - set(row)
        if extra or missing:
            raise SchemaError(f"{table} row {i}: unknown columns {sorted(extra)}, missing {sorted(missing)}")  # fmt: skip
        for f in schema:
            if not f.nullable and row[f.name] is None:
                raise SchemaError(f"{table} row {i}: `{f.name}` must not be null")
    return pa.Table.from_pylist(rows, schema=schema)


def check_table(table: str, data: pa.Table) -> None:
    """Raise `SchemaError` naming the first column of `data` that differs from the schema."""
    schema = schema_of(table)
    for f in schema:
        if f.name not in data.schema.names:
            raise SchemaError(f"{table}: column `{f.name}` is missing")
        got = data.schema.field(f.name).type
        if not got.equals(f.type):
            raise SchemaError(f"{table}: column `{f.name}` is {got}, expected {f.type}")
    extra = set(data.schema.names) - set(schema.names) - {PARTITION}
    if extra:
        raise SchemaError(f"{table}: unknown columns {sorted(extra)}")
